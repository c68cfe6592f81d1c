"""Pure scoring functions for placement (no view, no state: table-testable).

Conventions, as in Kubernetes' ``noderesources`` scorers:

* Only *demanded* resources (amount > 0) are scored, averaged with equal
  weight, each as a fraction of the node's capacity, so CPUs and bytes mix.
* Zero capacity for a demanded resource means the node can never host the
  task: the score is ``-inf`` (never chosen). Policies filter by fit first, so
  this is a guard, not a ranking.
* Overcommit (in-flight demand above capacity, allowed by
  ``ResourceView(overcommit > 1)``) is *not* clamped: least-allocated goes
  negative and most-allocated goes above 1, so overcommitted nodes still rank
  by how far over they are. (Kubernetes clamps to 0 because it never
  overcommits requests.)
"""
from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["dominant_share", "least_allocated_score", "most_allocated_score"]


def least_allocated_score(capacity: Mapping[str, float], reserved: Mapping[str, float], demand: Mapping[str, float]) -> float:
    """Mean fraction of capacity left after placing ``demand`` (greedy: higher wins).

    ``mean over r of (capacity[r] - reserved[r] - demand[r]) / capacity[r]``;
    0.0 for an empty demand (nothing to compare).
    """
    total, m = 0.0, 0
    for r, a in demand.items():
        if a > 0:
            c = capacity.get(r, 0.0)
            if c <= 0:
                return -math.inf
            total += (c - reserved.get(r, 0.0) - a) / c
            m += 1
    return total / m if m else 0.0


def most_allocated_score(capacity: Mapping[str, float], reserved: Mapping[str, float], demand: Mapping[str, float]) -> float:
    """Mean fraction of capacity in use after placing ``demand`` (pack: higher wins).

    ``mean over r of (reserved[r] + demand[r]) / capacity[r]``; 0.0 for an
    empty demand.
    """
    total, m = 0.0, 0
    for r, a in demand.items():
        if a > 0:
            c = capacity.get(r, 0.0)
            if c <= 0:
                return -math.inf
            total += (reserved.get(r, 0.0) + a) / c
            m += 1
    return total / m if m else 0.0


def dominant_share(capacity: Mapping[str, float], reserved: Mapping[str, float]) -> float:
    """Max over resources of reserved / capacity (DRF's dominant share).

    A positive reservation of a resource the node has 0 of gives ``inf``.
    """
    share = 0.0
    for r, used in reserved.items():
        if used > 0:
            c = capacity.get(r, 0.0)
            s = used / c if c > 0 else math.inf
            if s > share:
                share = s
    return share
