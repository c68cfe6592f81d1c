"""p2c: power of two choices — two random fitting nodes, the less loaded wins.

With n nodes and n tasks, random placement's max load grows like
log n / log log n; two choices cut it to log log n (Mitzenmacher), at the
cost of one extra sample. The objective is the tuple (dominant share, tasks
placed, node id), so ties break stably. Seeded; sampling as in random.
"""

from __future__ import annotations

import random

from raysched.core.view import ResourceView
from raysched.policies.base import PolicyOptions, TaskDemand
from raysched.policies.random_policy import Fitting, sample_fitting

__all__ = ["P2CPolicy"]


class P2CPolicy:
    """Power of two choices over fitting nodes."""

    name = "p2c"
    none_means_no_room = True  # None only when no node has room: the brain skips equal demands

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options if options is not None else PolicyOptions()
        self.rng = random.Random(self.options.seed)
        self._fitting: Fitting = {}

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        a = sample_fitting(self.rng, task, view, self._fitting)
        if a is None:
            return None
        b = sample_fitting(self.rng, task, view, self._fitting, exclude=a)
        if b is None:
            return a
        return min((view.load(n), view.tasks_in_flight(n), n) for n in (a, b))[2]
