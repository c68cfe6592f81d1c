"""Each key's share of recent work, in bounded memory, and how many nodes that share needs.

Why: a key that carries more work than one node can do must run on several
nodes, or the rest of the cluster idles while its tasks queue. The spread follows the key's *demand*, as in
D-Choices / W-Choices (Nasir et al., ICDE 2016: the head keys get d choices
sized by their frequency), LARD/R and IPVS ``lblcr`` (a key's server set grows
under load and shrinks when calm) and Slicer (hot slices get more copies).

**Estimate.** Exponentially decayed counts: a task seen now weighs
``growth**t`` where ``t`` counts the tasks seen, so counts older than about
``horizon`` tasks fade (all counts are rescaled before the weights overflow).
Only the heaviest keys are kept: when more than ``2 x keep`` keys are held, the
lightest ``keep`` are forgotten (amortised O(log keep) per task), so a
million distinct keys cost ``keep`` entries. A forgotten key is a cold key:
exactly what the tail of a skewed distribution is.

**Spread.** A key of share ``p`` on a cluster of total ring weight ``W``
needs ``(1 + headroom) * p * W`` of weight: ``d = ceil(that / node weight)``
nodes (1 for a cold key: exact affinity). ``d`` grows at once and shrinks only
when the need falls to half of it (hysteresis: sets do not flap).
"""

from __future__ import annotations

import math

from raysched.core.numbers import EPS

__all__ = ["KeyDemand"]

_RESCALE_AT = 1e200
MIN_TASKS_PER_NODE = 2.0  # a key spreads over at most (its recent tasks / this) nodes


class KeyDemand:
    """Decayed per-key task counts for the heaviest keys, and each hot key's spread."""

    def __init__(self, horizon: float = 10_000.0, keep: int = 4096) -> None:
        if not horizon >= 1 or keep < 1:
            raise ValueError(f"horizon must be >= 1 and keep >= 1, got {horizon!r}, {keep!r}")
        self.horizon = float(horizon)
        self.keep = int(keep)
        self._growth = 1.0 + 1.0 / self.horizon
        self._unit = 1.0  # weight of a task seen now
        self._total = 0.0  # decayed count of every task seen
        self._counts: dict[str, float] = {}
        self._spread: dict[str, int] = {}  # hot keys only: nodes each may use now

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, key: str, count: int = 1) -> None:
        """``count`` new tasks of ``key`` arrived."""
        counts = self._counts
        if count == 1:  # most calls (one per decision): the loop below, once, without the loop
            unit = self._unit * self._growth
            counts[key] = counts.get(key, 0.0) + unit
            self._unit = unit
            self._total += unit
        else:
            growth = self._growth
            unit, total, held = self._unit, self._total, counts.get(key, 0.0)
            for _ in range(max(0, count)):  # one task at a time: the same sums as adding them one by one
                unit *= growth
                held += unit
                total += unit
            if count > 0:
                counts[key] = held
            self._unit, self._total = unit, total
        if self._unit > _RESCALE_AT:
            scale = 1.0 / self._unit
            self._unit = 1.0
            self._total *= scale
            for k in self._counts:
                self._counts[k] *= scale
        if len(self._counts) > 2 * self.keep:
            heaviest = sorted(self._counts.items(), key=lambda kv: kv[1], reverse=True)[: self.keep]
            self._counts = dict(heaviest)
            self._spread = {k: d for k, d in self._spread.items() if k in self._counts}

    def share(self, key: str) -> float:
        """The key's share of recent work, from 0 to 1 (0 for a key not among the heaviest)."""
        return self._counts.get(key, 0.0) / self._total if self._total > 0 else 0.0

    def spread(self, key: str, nodes_needed: float) -> int:
        """How many nodes the key may use, given the nodes its share needs now (with hysteresis).

        A key spreads only over as many nodes as it has shown tasks for, halved
        (each node of its set has had two of its tasks' worth of evidence): the
        first tasks of a run say little about a key's share.
        """
        tasks = self._counts.get(key, 0.0) / self._unit  # its recent tasks (decayed count)
        want = max(1, min(math.ceil(nodes_needed - EPS), int(tasks / MIN_TASKS_PER_NODE + 0.01)))
        have = self._spread.get(key, 1)
        if want > have or want * 2 <= have:
            have = want
        if have > 1:
            self._spread[key] = have
        else:
            self._spread.pop(key, None)
        return have

    def is_hot(self, key: str) -> bool:
        return key in self._spread

    def hot_count(self) -> int:
        """How many keys spread now (``len(hot())`` without the copy: asked on every hot key's decision)."""
        return len(self._spread)

    def hot(self) -> dict[str, int]:
        """Keys that spread now and over how many nodes (for status and the summary)."""
        return dict(self._spread)
