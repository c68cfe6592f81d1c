"""The policy protocol and what every policy shares.

A policy is filter + objective (Dask ``decide_worker``): keep the nodes where
the task fits now, pick the best by an objective whose ties break by node id,
answer ``None`` when nothing fits now (the caller waits), and raise
:class:`InfeasibleError` when no alive node could ever fit the demand.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from raysched.ring import DEFAULT_VNODES
from raysched.view import KEY_EPS, ResourceView, check_demand, fmt_resources

__all__ = [
    "InfeasibleError",
    "Policy",
    "PolicyOptions",
    "TaskDemand",
    "best_indexed_node",
    "check_feasible",
]


@dataclass(frozen=True)
class TaskDemand:
    """What a policy sees of a task: its resource demand and its hash key."""

    resources: Mapping[str, float]
    key: str = ""
    # Canonical positive demand, sorted by name: computed once, used per decision.
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    amounts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        res = check_demand(self.resources)
        if not isinstance(self.key, str):
            raise ValueError(f"key must be a string, got {type(self.key).__name__}")
        items = sorted((r, a) for r, a in res.items() if a > 0)
        object.__setattr__(self, "resources", res)
        object.__setattr__(self, "names", tuple(r for r, _ in items))
        object.__setattr__(self, "amounts", tuple(a for _, a in items))

    def __hash__(self) -> int:
        return hash((self.names, self.amounts, self.key))  # a dict key in this process, never placement


@dataclass(frozen=True)
class PolicyOptions:
    """Knobs every built-in policy accepts (the CLI flags map one to one).

    seed: makes random/p2c reproducible (None = fresh entropy each run).
    load_factor: hash's bound c >= 1: lower = flatter load, more keys off
        their home node; None ("off") = pure ring, ignoring load.
    vnodes: ring points per unit of weight: more = smoother ring, more memory.
    """

    seed: int | None = None
    load_factor: float | None = 1.25
    vnodes: int = DEFAULT_VNODES

    def __post_init__(self) -> None:
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"--seed must be an integer, got {self.seed!r}")
        if self.load_factor is not None:
            lf = self.load_factor
            if isinstance(lf, bool) or not isinstance(lf, (int, float)) or math.isnan(lf) or lf < 1:
                raise ValueError(f"--load-factor must be a number >= 1 (e.g. 1.25) or 'off', got {lf!r}")
            object.__setattr__(self, "load_factor", float(lf))
        if isinstance(self.vnodes, bool) or not isinstance(self.vnodes, int) or not 1 <= self.vnodes <= 1_000_000:
            raise ValueError(f"--vnodes must be an integer from 1 to 1,000,000, got {self.vnodes!r}")


class InfeasibleError(ValueError):
    """No alive node could ever fit this demand: report it, never wait on it."""

    def __init__(self, demand: Mapping[str, float], node_id: str | None = None, capacity: Mapping[str, float] | None = None) -> None:
        self.demand = dict(demand)
        self.node_id = node_id
        self.capacity = dict(capacity) if capacity is not None else None
        if node_id is None:
            msg = f"infeasible demand {fmt_resources(self.demand)}: there are no alive nodes"
        else:
            msg = (
                f"infeasible demand {fmt_resources(self.demand)}: no alive node could ever fit it; "
                f"the largest node {node_id[:8]} has {fmt_resources(self.capacity or {})}. "
                "Lower the task's demand or add a node that has these resources."
            )
        super().__init__(msg)

    def __reduce__(self):  # keep it picklable across Ray
        return (type(self), (self.demand, self.node_id, self.capacity))


def check_feasible(view: ResourceView, demand: Mapping[str, float]) -> None:
    """Raise InfeasibleError unless some alive node could ever fit ``demand``."""
    if not view.could_ever_fit(demand):
        if len(view) == 0:
            raise InfeasibleError(demand)
        node_id, cap = view.largest_node()
        raise InfeasibleError(demand, node_id, cap)


@runtime_checkable
class Policy(Protocol):
    """Public protocol for placement policies (``--policy module:Name``).

    ``choose`` returns the id of an alive node in ``view`` where the task
    should run, or None if nothing fits now. A policy may set the class
    attribute ``none_means_no_room = True`` to promise that None means no node
    has room for this demand (whatever the key); the brain then answers later
    requests with the same demand in a batch without asking again. It must not modify the view: the
    caller reserves the demand on the chosen node.
    """

    name: str

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None: ...


# Above this many capacity classes the indexed walk scores a bounded sample
# of classes (kube-scheduler's percentageOfNodesToScore idea) instead of all.
MAX_CLASSES = 64
SAMPLE_CLASSES = 16


def best_indexed_node(
    task: TaskDemand,
    view: ResourceView,
    most_allocated: bool,
    score: Callable[[Mapping[str, float], Mapping[str, float], Mapping[str, float]], float],
    rng: random.Random,
) -> str | None:
    """The fitting node with the best ``score``, ties to the smallest id.

    Uses the view's OrderedIndex: within a capacity class the best fitting node
    is the first fitting entry at or after the bound (one bisect), so a
    decision costs O(classes * log n), not O(n). Empty demands fit everywhere
    and rank by dominant share.
    """
    if not task.names:
        nodes = view.nodes
        if not nodes:
            return None
        load = view.load
        if most_allocated:
            return min(nodes, key=lambda n: (-load(n), n))
        return min(nodes, key=lambda n: (load(n), n))
    demand = task.resources
    amounts = task.amounts
    idx = view.ordered_index(task.names, descending=most_allocated)
    keys = idx.class_keys
    if len(keys) > MAX_CLASSES:
        picked = _best_over(view, idx, [keys[i] for i in rng.sample(range(len(keys)), SAMPLE_CLASSES)], demand, amounts, most_allocated, score)
        if picked is not None:
            return picked
    return _best_over(view, idx, keys, demand, amounts, most_allocated, score)


def _best_over(view, idx, class_keys, demand, amounts, most_allocated, score) -> str | None:
    fits = view.fits_now
    best: tuple[float, str] | None = None
    for caps in class_keys:
        start = view.class_candidates(idx, caps, amounts)
        if start is None:
            continue
        entries = idx.classes[caps]
        found = None
        if most_allocated:
            for j in range(start[0], len(entries)):
                node_id = entries[j][1]
                if fits(node_id, demand):
                    found = node_id
                    break
        else:
            bound = start[1] + KEY_EPS
            for key, node_id in entries:
                if key > bound:
                    break
                if fits(node_id, demand):
                    found = node_id
                    break
        if found is not None:
            cand = (-score(view.capacity(found), view.reserved(found), demand), found)
            if best is None or cand < best:
                best = cand
    return None if best is None else best[1]
