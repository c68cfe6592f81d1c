"""The policy protocol and what every policy shares.

A policy is filter + objective (Dask ``decide_worker``): keep the nodes where
the task fits now, pick the best by an objective whose ties break by node id,
and answer ``None`` when nothing fits now (the brain keeps the task and asks
again when room appears). Feasibility is the brain's job: a policy is only
asked about demands that some alive node could hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from raysched.core.names import short_node
from raysched.core.ring import DEFAULT_LOAD_FACTOR, check_load_factor
from raysched.core.view import ResourceView, check_demand, fmt_resources

__all__ = [
    "DEFAULT_LOAD_FACTOR",
    "DEFAULT_VNODES_PER_CPU",
    "Decision",
    "InfeasibleError",
    "Policy",
    "PolicyOptions",
    "TaskDemand",
    "check_feasible",
]

# Ring points per CPU of a node (a node without CPUs counts as one CPU).
DEFAULT_VNODES_PER_CPU = 100


@dataclass(frozen=True)
class TaskDemand:
    """What a policy sees of a task: its resource demand, its hash key, how long it has waited."""

    resources: Mapping[str, float]
    key: str = ""
    # Seconds this task has waited in the brain for a node (0 on its first decision).
    waited_s: float = 0.0
    # The node this task was assigned to and has waited for (its home), if any.
    waiting_for: str | None = None
    # Canonical positive demand, sorted by name: computed once, used per decision.
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    amounts: tuple[float, ...] = field(init=False, repr=False, compare=False)
    # The demand without the key, (names, amounts): tasks with equal signatures fit in the same places.
    # Computed once (the brain compares and files waiting tasks by it on every decision).
    signature: tuple[tuple[str, ...], tuple[float, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        res = check_demand(self.resources)
        if not isinstance(self.key, str):
            raise ValueError(f"key must be a string, got {type(self.key).__name__}")
        items = sorted((r, a) for r, a in res.items() if a > 0)
        object.__setattr__(self, "resources", res)
        object.__setattr__(self, "names", tuple(r for r, _ in items))
        object.__setattr__(self, "amounts", tuple(a for _, a in items))
        object.__setattr__(self, "signature", (self.names, self.amounts))

    def with_key(self, key: str) -> TaskDemand:
        """An equal demand under another key, validated once (a brain call's tasks mostly share a demand)."""
        if not isinstance(key, str):
            raise ValueError(f"key must be a string, got {type(key).__name__}")
        new = object.__new__(TaskDemand)
        new.__dict__.update(self.__dict__)
        new.__dict__["key"] = key
        return new

    def waited(self, seconds: float, waiting_for: str | None = None) -> TaskDemand:
        """This task after waiting ``seconds`` in the brain, for ``waiting_for`` (validated once, at arrival)."""
        new = object.__new__(TaskDemand)
        new.__dict__.update(self.__dict__)
        new.__dict__["waited_s"] = seconds
        new.__dict__["waiting_for"] = waiting_for
        return new

    def __hash__(self) -> int:
        return hash((self.names, self.amounts, self.key))  # a dict key in this process, never placement


@dataclass(frozen=True)
class PolicyOptions:
    """Knobs every built-in policy accepts (the CLI flags map one to one).

    seed: makes random/p2c reproducible (None = fresh entropy each run).
    load_factor: hash's bound c >= 1: lower = flatter load, more keys off
        their home node; None ("off") = pure ring, ignoring load.
    vnodes: hash ring points per CPU of a node: more = smoother ring, more memory.
    locality_wait: seconds a hash task waits for its busy home before it takes
        the next node clockwise with room; None = adaptive to the job's task times.
    keys_per_node: hash gives no node more distinct live keys than this while
        another has room (a node's cache size); None = learned from the tasks'
        ``cache_hit``, if they report it (`raysched.policies.key_capacity`).
    """

    seed: int | None = None
    load_factor: float | None = DEFAULT_LOAD_FACTOR
    vnodes: int = DEFAULT_VNODES_PER_CPU
    locality_wait: float | None = None
    keys_per_node: int | None = None

    def __post_init__(self) -> None:
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"--seed must be an integer, got {self.seed!r}")
        if self.load_factor is not None:
            if isinstance(self.load_factor, str):
                raise ValueError(
                    f"--load-factor must be a number >= 1 (e.g. {DEFAULT_LOAD_FACTOR}) or 'off', "
                    f"got {self.load_factor!r}"
                )
            try:
                object.__setattr__(self, "load_factor", check_load_factor(self.load_factor))
            except ValueError as err:
                raise ValueError(f"--load-factor: {err} (or 'off')") from None
        if isinstance(self.vnodes, bool) or not isinstance(self.vnodes, int) or not 1 <= self.vnodes <= 100_000:
            raise ValueError(
                f"--vnodes must be an integer from 1 to 100,000 (ring points per CPU), got {self.vnodes!r}"
            )
        wait = self.locality_wait
        if wait is not None and (
            isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait) or wait < 0
        ):
            raise ValueError(f"--locality-wait must be a number of seconds >= 0 or 'auto', got {wait!r}")
        cap = self.keys_per_node
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"--keys-per-node must be a whole number of keys >= 1, got {cap!r}")


@dataclass(frozen=True)
class Decision:
    """A policy's full answer, for policies that say more than a node id (hash).

    node: where the task runs now, or None to wait.
    waits_for: when waiting, the node it waits for (the brain retries the task
        when that node frees room); None = it waits for room anywhere.
    spill: when placed off its key's home: "bound" (the home was over its
        bounded load, so the key lives elsewhere for now) or "wait" (the home
        stayed busy past the locality wait); "" otherwise.
    moved_from: when this decision moved the task's whole key off a node, that
        node (the brain moves the key's other waiting tasks along).
    assigned: when waiting, whether the task counts as work assigned to
        ``waits_for`` (False: deferred, because that node is at its bounded load;
        it is assigned once the node is under its bound again).
    stay: when waiting, the task declines a free slot elsewhere that work
        conservation would offer it: its home frees a slot soon enough that
        leaving its warm state costs more than the wait (hash, a key that has run).
    """

    node: str | None
    waits_for: str | None = None
    spill: str = ""
    moved_from: str | None = None
    assigned: bool = True
    stay: bool = False


class InfeasibleError(ValueError):
    """No alive node could ever fit this demand: report it, never wait on it."""

    def __init__(
        self, demand: Mapping[str, float], node_id: str | None = None, capacity: Mapping[str, float] | None = None
    ) -> None:
        self.demand = dict(demand)
        self.node_id = node_id
        self.capacity = dict(capacity) if capacity is not None else None
        if node_id is None:
            msg = f"infeasible demand {fmt_resources(self.demand)}: there are no alive nodes"
        else:
            msg = (
                f"infeasible demand {fmt_resources(self.demand)}: no alive node could ever fit it; "
                f"the largest node {short_node(node_id)} has {fmt_resources(self.capacity or {})}. "
                "Lower the task's demand or add a node that has these resources."
            )
        super().__init__(msg)

    def __reduce__(self):  # keep it picklable across Ray
        return (type(self), (self.demand, self.node_id, self.capacity))


def check_feasible(
    view: ResourceView,
    demand: Mapping[str, float],
    signature: tuple[tuple[str, ...], tuple[float, ...]] | None = None,
) -> None:
    """Raise InfeasibleError unless some alive node could ever fit ``demand`` (the brain calls it first).

    "Could ever fit" and "the largest node" are the view's (`capacity_holds`, `largest_capacity`);
    ``signature`` is the validated demand's (`TaskDemand.signature`), the view's cache key.
    """
    if not view.could_ever_fit(demand, signature):
        if len(view) == 0:
            raise InfeasibleError(demand)
        node_id, cap = view.largest_node()
        raise InfeasibleError(demand, node_id, cap)


@runtime_checkable
class Policy(Protocol):
    """Public protocol for placement policies (``--policy module:Name``).

    ``choose`` returns the id of an alive node in ``view`` where the task
    should run, or None if nothing fits now. It must not modify the view: the
    brain reserves the demand on the chosen node, and it has already checked
    that some alive node could ever hold the demand.

    Optional, to make waiting cheap:

    * ``none_means_no_room = True`` promises that None means no node has room
      for this demand, whatever the key: the brain then asks again about tasks
      with that demand only after room appears somewhere.
    * ``decide(task, view) -> Decision`` says which node a waiting task waits
      for; the brain then asks again only when that node frees room (hash).
    * ``work_conserving = True`` lets the brain run a task whose locality wait
      is over on the first free slot that fits it, when ``decide`` still says
      wait; ``spilled(task, node, view)``, if present, hears where it ran and
      answers True when the task's key now lives there (its waiting tasks follow).
      Without the flag, a declined free slot leaves the task waiting for its home.
      ``takes_slot(task, node, view) -> bool``, if present, may refuse one such
      slot (hash under a key capacity: a node whose cache is full of other keys);
      ``warm_for(key) -> float``, if present, says how long the key's warm state
      has lived on its node: a slot stealing from a busy node takes the youngest.
    * ``arrived({key: count})`` hears of each batch of new tasks before any is
      assigned (hash estimates each key's share of the work from it).
    * ``pace(stats)`` receives the submission's observed task times
      (``{"task_p50_s": ..., "task_p90_s": ...}``) for adaptive settings.
    """

    name: str

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None: ...
