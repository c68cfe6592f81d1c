"""raysched: a placement layer and workload runner for Ray.

Job files use `Task`, `task` and `service`; programs can run a job with `submit`
(what `raysched submit` does, without the terminal).
"""

from typing import Any

from raysched.job import Task, task
from raysched.services import service

__all__ = ["Task", "service", "submit", "task"]
__version__ = "0.2.0"


def submit(job_path: Any, settings: Any = None, **kwargs: Any) -> Any:
    """Run a job file: see `raysched.submission.submit` (imported lazily: workers never need it)."""
    from raysched.config import Settings
    from raysched.submission import submit as run

    return run(job_path, settings if settings is not None else Settings(), **kwargs)
