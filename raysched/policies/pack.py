"""pack: most-allocated / best fit — the node left fullest after placing the
task, so few nodes stay busy and whole nodes stay free for big tasks.

Greedy's twin: same ordered index, read from the full end (see greedy.py).
"""
from __future__ import annotations

from raysched.policies.greedy import GreedyPolicy
from raysched.scoring import most_allocated_score

__all__ = ["PackPolicy"]


class PackPolicy(GreedyPolicy):
    """Bin-pack by most-allocated score."""

    name = "pack"
    most_allocated = True
    score = staticmethod(most_allocated_score)
