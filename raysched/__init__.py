"""raysched: a placement layer and workload runner for Ray.

Job files use `Task`, `task` and `service`; programs run a job with `submit` (what `raysched submit`
does, without the terminal). `submit` is imported on first use: the workers that import a job file
never load the driver.
"""

from typing import TYPE_CHECKING, Any

from raysched.job import Task, task
from raysched.services import service

if TYPE_CHECKING:
    from raysched.submission import submit

__all__ = ["Task", "service", "submit", "task"]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    if name == "submit":
        from raysched.submission import submit

        return submit
    raise AttributeError(f"module 'raysched' has no attribute {name!r}")
