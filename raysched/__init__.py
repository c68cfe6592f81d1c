"""raysched: a placement layer and workload runner for Ray.

Job files use `Task`, `task` and `service` (`Autoscale` for a service's autoscaling knobs); programs run
a job with `submit` (what `raysched submit` does, without the terminal) and call a deployed service with
`get_service` (`raysched deploy`). `submit` and `get_service` are imported on first use: the workers that
import a job file never load the driver.
"""

from typing import TYPE_CHECKING, Any

from raysched.job import Task, task
from raysched.services import Autoscale, service

if TYPE_CHECKING:
    from raysched.deployment import get_service
    from raysched.submission import submit

__all__ = ["Autoscale", "Task", "get_service", "service", "submit", "task"]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    if name == "submit":
        from raysched.submission import submit

        return submit
    if name == "get_service":
        from raysched.deployment import get_service

        return get_service
    raise AttributeError(f"module 'raysched' has no attribute {name!r}")
