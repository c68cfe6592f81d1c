"""raysched: a placement layer and workload runner for Ray."""
from raysched.job import Task, task

__all__ = ["Task", "task"]
__version__ = "0.1.0"
