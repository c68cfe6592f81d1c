"""The placement brain: one view of the cluster, every placement decision, shared by all submissions.

`PlacementBrain` is a plain class (unit-tested without Ray); `brain_handle()`
runs it as the named, detached actor "raysched-brain" in namespace "raysched",
get-or-create, restarted by Ray if it dies. Drivers send it batches: the tasks
that finished (to release their reservations) and the tasks that wait for a
node (to place). The driver dispatches the placed tasks itself; every decision
and the ledger of work in flight stay here, so concurrent submissions see each
other's load.

A brain that restarts starts empty: it rebuilds nodes from the cluster, and each
driver re-registers with its policy and its work in flight when told
`UnknownSubmission`.
"""
from __future__ import annotations

import pickle
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from raysched.cluster import NAMESPACE
from raysched.policies import InfeasibleError, Policy, TaskDemand, check_feasible
from raysched.view import ResourceView

BRAIN_NAME = "raysched-brain"
# A submission that has not called for this long is presumed dead and its
# reservations are dropped (drivers call at least every HEARTBEAT_S).
SUBMISSION_EXPIRY_S = 60.0
HEARTBEAT_S = 5.0
_SKIPPED_RESOURCES = ("object_store_memory",)
_SKIPPED_PREFIXES = ("node:", "accelerator_type:")

Capacity = Mapping[str, float]
# (uid, resource demand, key) of a task waiting for a node
Request = tuple[int, Mapping[str, float], str]
# (uid, node id, resource demand) of a task already running, for re-registration
Held = tuple[int, str, Mapping[str, float]]


class PolicyError(ValueError):
    """A policy answered something that cannot be honoured (a dead node, a node without room)."""


class UnknownSubmission(LookupError):
    """The brain does not know this submission (it restarted, or the submission expired)."""


@dataclass
class Placement:
    """The brain's answer to one batch: a node per placed task, errors for impossible ones."""

    placed: list[tuple[int, str]] = field(default_factory=list)
    infeasible: list[tuple[int, str]] = field(default_factory=list)
    waiting: int = 0
    brain_id: str = ""


@dataclass
class _Submission:
    policy: Policy
    info: dict[str, Any]
    ledger: dict[int, tuple[str, Mapping[str, float]]] = field(default_factory=dict)
    done: int = 0
    last_seen: float = field(default_factory=time.monotonic)


def schedulable_capacity(resources: Mapping[str, float]) -> dict[str, float]:
    """The resources a task can demand, from a node's Ray resource totals."""
    return {
        name: float(amount)
        for name, amount in resources.items()
        if name not in _SKIPPED_RESOURCES and not name.startswith(_SKIPPED_PREFIXES)
    }


def live_nodes_from_ray() -> dict[str, dict[str, float]]:
    """Alive nodes and their capacities, as Ray's GCS reports them."""
    import ray

    return {
        node["NodeID"]: schedulable_capacity(node.get("Resources", {}))
        for node in ray.nodes()
        if node.get("Alive")
    }


class PlacementBrain:
    """Holds the resource view and each submission's policy and ledger; answers placements."""

    def __init__(
        self,
        overcommit: float = 1.0,
        nodes_source: Callable[[], Mapping[str, Capacity]] | None = None,
        refresh_s: float = 0.25,
    ) -> None:
        self.brain_id = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.view = ResourceView(overcommit=overcommit)
        self._submissions: dict[str, _Submission] = {}
        self._condemned: set[str] = set()  # reported dead by task errors, before Ray agrees
        self._lock = threading.RLock()
        self._nodes_source = nodes_source
        self.decisions = 0
        self.membership_changes: list[tuple[float, str, str]] = []  # (time, "join"|"leave", node)
        if nodes_source is not None:
            self.refresh_nodes()
            self._watcher = threading.Thread(target=self._watch, args=(refresh_s,), daemon=True)
            self._watcher.start()

    # -- membership -------------------------------------------------------------------------
    def _watch(self, period_s: float) -> None:
        while True:
            time.sleep(period_s)
            try:
                self.refresh_nodes()
            except Exception:  # a GCS hiccup must not kill the watcher; the next round retries
                continue

    def refresh_nodes(self) -> None:
        """Re-read live nodes from the source and apply the difference."""
        assert self._nodes_source is not None
        self.sync_nodes(self._nodes_source())

    def sync_nodes(self, live: Mapping[str, Capacity]) -> None:
        """Make the view hold exactly the live nodes (minus those reported dead), with their capacities."""
        with self._lock:
            self._condemned &= set(live)  # once Ray agrees a node is gone, forget the report
            wanted = {node: dict(cap) for node, cap in live.items() if node not in self._condemned}
            for node in [n for n in self.view.nodes if n not in wanted]:
                self._drop(node)
            for node, capacity in wanted.items():
                if node not in self.view:
                    self.membership_changes.append((time.time(), "join", node))
                    self.view.set_node(node, capacity)
                elif dict(self.view.capacity(node)) != capacity:
                    self.view.set_node(node, capacity)

    def report_node_failure(self, node_id: str) -> bool:
        """A driver saw a task die with its node: drop the node now, before health checks agree."""
        with self._lock:
            if node_id not in self.view:
                return False
            self._condemned.add(node_id)
            self._drop(node_id)
            return True

    def _drop(self, node: str) -> None:
        self.view.remove_node(node)
        self.membership_changes.append((time.time(), "leave", node))
        del self.membership_changes[:-1000]

    # -- submissions ------------------------------------------------------------------------
    def register(
        self, submission_id: str, policy: Policy, info: Mapping[str, Any], held: Sequence[Held] = ()
    ) -> dict[str, Any]:
        """Start (or resume after a brain restart) a submission; reserve what it already runs."""
        if not callable(getattr(policy, "choose", None)):
            raise TypeError("policy must have a choose(task, view) method")
        with self._lock:
            sub = _Submission(policy=policy, info=dict(info))
            for uid, node, demand in held:
                _check_demand(demand)
                if node in self.view:
                    self.view.reserve(node, demand)
                    sub.ledger[uid] = (node, dict(demand))
            self._submissions[submission_id] = sub
            return {"brain_id": self.brain_id, "overcommit": self.view.overcommit}

    def unregister(self, submission_id: str) -> None:
        """End a submission, releasing whatever it still holds."""
        with self._lock:
            sub = self._submissions.pop(submission_id, None)
            if sub is not None:
                for node, demand in sub.ledger.values():
                    if node in self.view:
                        self.view.release(node, demand)

    def _expire_idle(self, now: float) -> None:
        for sid in [s for s, sub in self._submissions.items() if now - sub.last_seen > SUBMISSION_EXPIRY_S]:
            self.unregister(sid)

    # -- the hot path -----------------------------------------------------------------------
    def place(self, submission_id: str, finished: Iterable[int], requests: Sequence[Request]) -> Placement:
        """Release finished tasks, then place as many requests as fit now, in order."""
        with self._lock:
            now = time.monotonic()
            self._expire_idle(now)
            sub = self._submissions.get(submission_id)
            if sub is None:
                raise UnknownSubmission(submission_id)
            sub.last_seen = now
            ledger, view = sub.ledger, self.view
            for uid in finished:
                entry = ledger.pop(uid, None)
                if entry is not None:
                    sub.done += 1
                    if entry[0] in view:
                        view.release(*entry)
            answer = Placement(brain_id=self.brain_id)
            # For policies whose None means "no node has room for this demand", one None
            # settles every later request with the same demand in this batch.
            full: set[tuple] | None = set() if getattr(sub.policy, "none_means_no_room", False) else None
            for uid, demand, key in requests:
                if uid in ledger:
                    raise ValueError(f"task {uid} is already placed on {ledger[uid][0][:8]}")
                if full is not None:
                    signature = tuple(sorted(demand.items()))
                    if signature in full:
                        answer.waiting += 1
                        continue
                _check_demand(demand)
                try:
                    check_feasible(view, demand)  # never let a user policy wait forever on the impossible
                    node = sub.policy.choose(TaskDemand(resources=demand, key=key), view)
                except InfeasibleError as err:
                    answer.infeasible.append((uid, str(err)))
                    continue
                except Exception as err:  # a user policy's bug: report it, keep the view intact
                    raise PolicyError(f"policy {sub.info.get('policy')} raised {type(err).__name__}: {err}") from None
                self.decisions += 1
                if node is None:
                    answer.waiting += 1
                    if full is not None:
                        full.add(signature)
                    continue
                if node not in view or not view.fits_now(node, demand):
                    raise PolicyError(f"policy {sub.info.get('policy')} chose {str(node)[:16]!r} for task {uid}, "
                                      "which is no live node with room for it; a policy must return a node "
                                      "where view.fits_now(node, demand) holds, or None to wait")
                view.reserve(node, demand)
                ledger[uid] = (node, demand)
                answer.placed.append((uid, node))
            return answer

    def place_packed(self, submission_id: str, payload: bytes) -> Placement:
        """`place` with its arguments pickled by the driver into one blob (cheaper to ship through Ray)."""
        finished, requests = pickle.loads(payload)
        return self.place(submission_id, finished, requests)

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A snapshot for `raysched status`: nodes, work in flight, submissions."""
        with self._lock:
            nodes = [
                {
                    "node_id": node,
                    "alive": True,
                    "capacity": dict(self.view.capacity(node)),
                    "reserved": dict(self.view.reserved(node)),
                    "tasks_in_flight": self.view.tasks_in_flight(node),
                    "weight": self.view.weight(node),
                }
                for node in self.view.nodes
            ]
            submissions = [
                {
                    "submission_id": sid,
                    **sub.info,
                    "in_flight": len(sub.ledger),
                    "done": sub.done,
                    "idle_s": round(time.monotonic() - sub.last_seen, 1),
                    **_ring_summary(sub.policy),
                }
                for sid, sub in self._submissions.items()
            ]
            return {
                "brain_id": self.brain_id,
                "started_at": self.started_at,
                "overcommit": self.view.overcommit,
                "rss_bytes": _rss_bytes(),
                "decisions": self.decisions,
                "nodes": nodes,
                "condemned": sorted(self._condemned),
                "submissions": submissions,
                "membership_changes": list(self.membership_changes[-20:]),
            }

    def ping(self) -> str:
        return self.brain_id


def _rss_bytes() -> int:
    """This process's resident memory (the brain's, when run as an actor)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _ring_summary(policy: Policy) -> dict[str, int]:
    """Ring size of a hash-style policy (nodes and virtual nodes), for status."""
    ring = getattr(policy, "ring", None)
    if ring is None:
        return {}
    return {"ring_nodes": len(ring), "ring_vnodes": int(getattr(ring, "points", 0))}


def _check_demand(demand: Mapping[str, float]) -> None:
    """Refuse malformed demands before they can touch the view."""
    for name, amount in demand.items():
        if not isinstance(name, str) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"bad resource demand {name!r}: {amount!r} (need a name and an amount >= 0)")


def brain_handle(overcommit: float = 1.0) -> Any:
    """Get or create the named brain actor on the connected cluster."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_cls = ray.remote(PlacementBrain)
    here = ray.get_runtime_context().get_node_id()
    return actor_cls.options(
        name=BRAIN_NAME,
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        max_restarts=-1,
        max_task_retries=0,
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True),
    ).remote(overcommit=overcommit, nodes_source=live_nodes_from_ray)


def find_brain() -> Any | None:
    """The running brain actor, or None when there is none."""
    import ray

    try:
        return ray.get_actor(BRAIN_NAME, namespace=NAMESPACE)
    except ValueError:
        return None
