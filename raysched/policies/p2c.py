"""p2c: power of two choices — two random fitting nodes, the less loaded wins.

With n nodes and n tasks, random placement's max load grows like
log n / log log n; two choices cut it to log log n (Mitzenmacher), at the
cost of one extra sample. Load = dominant share (``view.load``), then tasks in
flight, then node id, so ties break stably. Seeded; sampling as in random.
"""
from __future__ import annotations

import random

from raysched.policies.base import PolicyOptions, TaskDemand, check_feasible
from raysched.policies.random_policy import sample_fitting
from raysched.view import ResourceView

__all__ = ["P2CPolicy"]


class P2CPolicy:
    """Power of two choices over fitting nodes."""

    name = "p2c"
    none_means_no_room = True  # None only when no node has room: the brain may skip equal demands

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options if options is not None else PolicyOptions()
        self.rng = random.Random(self.options.seed)

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        check_feasible(view, task.resources)
        a = sample_fitting(self.rng, task, view)
        if a is None:
            return None
        b = sample_fitting(self.rng, task, view, exclude=a)
        if b is None:
            return a
        la, lb = view.load(a), view.load(b)
        if la != lb:
            return a if la < lb else b
        ta, tb = view.tasks_in_flight(a), view.tasks_in_flight(b)
        if ta != tb:
            return a if ta < tb else b
        return min(a, b)
