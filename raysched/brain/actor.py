"""The placement brain: one view of the cluster, every submission's policy, and their waiting tasks.

A plain class (tested without Ray); `brain_handle` runs it as the detached
named actor ``raysched-brain`` in namespace ``raysched``, shared by every
submission on the cluster, so each sees the others' load. Drivers talk to it
only through `raysched.brain.client.BrainClient`.

The brain is stacked from one class per idea, each in its module:
`raysched.brain.state` (the shared data), `queues` (where waiting tasks
wait), `admission` (how deep a node's queue may be), `rounds` (delay
scheduling), `lifecycle` (submissions and their calls) and `membership` (live
nodes and node health). This module composes them and runs the result as an
actor.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from raysched.brain.executor_host import kill_executor, spawn_executor
from raysched.brain.executors import DEFAULT_IDLE_S, ExecutorPool
from raysched.brain.lifecycle import SUBMISSION_EXPIRY_S, Submissions, dead_drivers_from_ray, ring_summary
from raysched.brain.membership import CONDEMN_GRACE_S, Membership, live_nodes_from_ray
from raysched.brain.metrics import BrainMetrics, NoMetrics
from raysched.brain.node_health import unreachable_raylets
from raysched.brain.replicas import Replicas
from raysched.brain.state import Capacity
from raysched.cluster import NAMESPACE
from raysched.core.collector import collect_less
from raysched.core.view import ResourceView

log = logging.getLogger(__name__)

BRAIN_NAME = "raysched-brain"


class PlacementBrain(Membership, Submissions, Replicas):
    """Holds the resource view, each submission's policy, ledger and waiting tasks; answers placements.

    Also runs the thread that follows Ray (`_watch`): membership, reported nodes, dead drivers.
    """

    _dead_drivers: Callable[[], set[str]] | None  # job ids of drivers that have ended
    _stop: threading.Event  # stops the watcher

    def __init__(
        self,
        nodes_source: Callable[[], Mapping[str, Capacity]] | None = None,
        *,
        dead_drivers: Callable[[], set[str]] | None = None,
        node_probe: Callable[[Iterable[str]], set[str]] | None = None,
        refresh_s: float = 1.0,
        expiry_s: float = SUBMISSION_EXPIRY_S,
        condemn_grace_s: float = CONDEMN_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        metrics: BrainMetrics | None = None,
        export_metrics: bool = False,
        spawn_executor: Callable[[str, str, Mapping[str, float]], Any] | None = None,
        kill_executor: Callable[[Any], None] = lambda handle: None,
        executor_idle_s: float = DEFAULT_IDLE_S,
        own_process: bool = False,
    ) -> None:
        if own_process:  # the brain's actor: a process of its own that holds every waiting task
            collect_less()
        self.brain_id = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.view = ResourceView()
        self.clock = clock
        self.expiry_s = expiry_s
        self.condemn_grace_s = condemn_grace_s
        if metrics is None and export_metrics:
            from raysched.brain.metrics import RayMetrics

            metrics = RayMetrics()
        self.metrics = metrics or NoMetrics()
        self._subs = {}
        self._order = []
        self._condemned = {}
        self._condemned_capacity = {}
        self._suspects = {}
        self._node_probe = node_probe
        self._wake = threading.Event()
        self._lock = threading.RLock()
        self._nodes_source = nodes_source
        self._dead_drivers = dead_drivers
        self._dirty = set()
        self._held = 0
        self._idle_since = None
        self._shared_depth = 1.0
        self._round_no = 0
        self._seq = itertools.count()
        self._demands = {}
        self.decisions = 0
        self.calls = 0
        self.busy_s = 0.0
        self.membership_changes = []
        self.executors = (
            None
            if spawn_executor is None
            else ExecutorPool(spawn_executor, kill_executor, self.view.capacity, clock, executor_idle_s)
        )
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if nodes_source is not None:
            self.refresh_nodes()
            self._watcher = threading.Thread(
                target=self._watch, args=(refresh_s,), daemon=True, name="raysched-membership"
            )
            self._watcher.start()

    def _watch(self, period_s: float) -> None:
        """Follow Ray's membership until close(); a failing GCS read is logged once per streak."""
        failing = False
        while not self._stop.is_set():
            self._wake.wait(period_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.check_suspects()
                self.refresh_nodes()
                self.retire_idle_executors()
                if self._dead_drivers is not None and self._subs:
                    self.release_dead_drivers(self._dead_drivers())
            except Exception as err:  # a GCS hiccup must not kill the watcher; the next round retries
                if not failing:
                    log.warning(
                        "raysched brain: reading cluster membership failed (%s: %s); retrying", type(err).__name__, err
                    )
                failing = True
                continue
            if failing:
                log.warning("raysched brain: reading cluster membership works again")
            failing = False

    def retire_idle_executors(self) -> int:
        """Retire executors idle for their idle time (run by the watcher every refresh); how many."""
        if self.executors is None:
            return 0
        with self._lock:
            return self.executors.retire_idle(in_use=bool(self._subs))

    def close(self) -> None:
        """Stop the membership watcher (the brain keeps answering calls)."""
        self._stop.set()
        self._wake.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)

    def status(self) -> dict[str, Any]:
        """A snapshot for `raysched status`: nodes, assigned work, submissions, membership."""
        with self._lock:
            view = self.view
            nodes = [
                {
                    "node_id": node,
                    "alive": True,
                    "capacity": dict(view.capacity(node)),
                    "reserved": dict(view.reserved(node)),
                    "tasks_in_flight": view.tasks_in_flight(node),
                    "tasks_waiting": view.parked(node),
                    "weight": view.weight(node),
                }
                for node in view.nodes
            ]
            now = self.clock()
            submissions = [
                {
                    "submission_id": sid,
                    **sub.info,
                    "in_flight": len(sub.ledger),
                    "waiting": len(sub.waiting),
                    "done": sub.done,
                    "decisions": sub.decisions,
                    "unknown_finishes": sub.unknown_finishes,
                    "overcommit": sub.overcommit,
                    "spills": dict(sub.spills),
                    "replicas": {name: node for name, (node, _) in sorted(sub.replicas.items())},
                    "idle_s": round(now - sub.last_seen, 1),
                    **ring_summary(sub.policy),
                }
                for sid, sub in self._subs.items()
            ]
            return {
                "brain_id": self.brain_id,
                "started_at": self.started_at,
                "rss_bytes": _rss_bytes(),
                "decisions": self.decisions,
                "calls": self.calls,
                "busy_s": round(self.busy_s, 3),
                "nodes": nodes,
                "condemned": sorted(self._condemned),
                "suspected": sorted(self._suspects),
                "reported_dead": [
                    {"node_id": n, "reason": reason, "for_s": round(now - since, 1)}
                    for n, (since, reason) in sorted(self._condemned.items())
                ],
                "submissions": submissions,
                "executors": self.executors.status() if self.executors is not None else [],
                "executor_counts": (
                    {"created": self.executors.created, "retired": self.executors.retired}
                    if self.executors is not None
                    else {}
                ),
                "membership_changes": list(self.membership_changes[-20:]),
            }

    def waiting_per_submission(self) -> dict[str, int]:
        """Tasks held for each submission (for metrics)."""
        return {sid: len(sub.waiting) for sid, sub in self._subs.items()}

    def ping(self) -> str:
        return self.brain_id


def _rss_bytes() -> int:
    """This process's resident memory (the brain's, when run as an actor)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def brain_home() -> str:
    """The node the brain should live on: the head (where the GCS lives: if it dies the cluster is gone
    anyway), else the driver's own node. A brain on a worker would die with that worker and stall every
    submission until Ray restarts it, 15 s or more with its default health checks."""
    import ray

    for node in ray.nodes():
        if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
            return str(node["NodeID"])
    return ray.get_runtime_context().get_node_id()


def brain_handle() -> Any:
    """Get or create the named brain actor on the connected cluster (creation is asynchronous)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_cls = ray.remote(PlacementBrain)
    here = brain_home()
    return actor_cls.options(
        name=BRAIN_NAME,
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        max_restarts=-1,
        max_task_retries=0,
        num_cpus=0,
        # Hard: Ray's soft affinity may start it on a worker, which would take the brain down with it.
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(
        nodes_source=live_nodes_from_ray,
        dead_drivers=dead_drivers_from_ray,
        node_probe=unreachable_raylets,
        export_metrics=True,
        spawn_executor=spawn_executor,
        kill_executor=kill_executor,
        own_process=True,
    )


def find_brain() -> Any | None:
    """The running brain actor, or None when there is none."""
    import ray

    try:
        return ray.get_actor(BRAIN_NAME, namespace=NAMESPACE)
    except ValueError:
        return None
