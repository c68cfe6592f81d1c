"""Cluster membership and node health: the view holds exactly the live nodes, minus those reported dead.

The brain follows Ray's list of live nodes (`sync_nodes`). A driver that sees
a node lose work reports it (`report_node_failure`); the brain probes the
node's raylet and drops it before Ray's own health checks agree, until Ray
confirms it dead or the grace period ends. Any change asks every parked task
again: homes may have moved.

Reads and writes: the view's nodes, ``_condemned`` and ``_condemned_capacity``,
``_suspects``, ``membership_changes``; resets every submission's queues on a
change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from raysched.brain.handout import ExecutorHandOut
from raysched.brain.queues import WaitingQueues
from raysched.brain.state import Capacity, Queue

log = logging.getLogger(__name__)

# A node reported dead (or stuck) by a driver stays out of the view until Ray
# agrees it is dead, or for this long if Ray keeps reporting it alive (a spurious
# report must not exclude a live node forever). Ray's default health checks
# declare a dead node within about 15-18 s, well inside this.
CONDEMN_GRACE_S = 30.0
NO_NODE = ""  # the node of work placed on a node that left (never a node id: nothing is released for it)
_SKIPPED_RESOURCES = ("object_store_memory",)
_SKIPPED_PREFIXES = ("node:", "accelerator_type:")


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
        node["NodeID"]: schedulable_capacity(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")
    }


class Membership(WaitingQueues, ExecutorHandOut):
    """Keeps the view's nodes in step with Ray and with drivers' reports of dead nodes."""

    condemn_grace_s: float
    membership_changes: list[tuple[float, str, str]]  # (time, "join"|"leave"|"rejoin", node)
    _condemned: dict[str, tuple[float, str]]  # node -> (since, reason), before Ray agrees
    _suspects: dict[str, str]  # node -> reason: reported, waiting for the probe
    _node_probe: Callable[[Iterable[str]], set[str]] | None
    _nodes_source: Callable[[], Mapping[str, Capacity]] | None
    _wake: threading.Event  # wakes the watcher at once (a report to probe)

    def refresh_nodes(self) -> None:
        """Re-read live nodes from the source and apply the difference."""
        assert self._nodes_source is not None
        self.sync_nodes(self._nodes_source())

    def sync_nodes(self, live: Mapping[str, Capacity]) -> None:
        """Make the view hold exactly the live nodes (minus those reported dead), with their capacities.

        A reported node that Ray still lists as alive after the grace period
        comes back (a spurious report must not exclude a live node forever).
        """
        with self._lock:
            now = self.clock()
            confirmed = [n for n in self._condemned if n not in live]
            for node in confirmed:
                del self._condemned[node]  # Ray agrees: forget the report
                self._condemned_capacity.pop(node, None)
            rejoined = [n for n, (since, _) in self._condemned.items() if now - since >= self.condemn_grace_s]
            for node in rejoined:
                del self._condemned[node]
                self._condemned_capacity.pop(node, None)
            wanted = {node: dict(cap) for node, cap in live.items() if node not in self._condemned}
            changed = bool(confirmed)  # tasks that waited for a reported node learn it is gone for good
            for node in [n for n in self.view.nodes if n not in wanted]:
                self._drop(node, "leave")
                changed = True
            for node, capacity in wanted.items():
                if node not in self.view:
                    self._note_membership("rejoin" if node in rejoined else "join", node)
                    self.view.set_node(node, capacity)
                    self._dirty.add(node)
                    changed = True
                elif dict(self.view.capacity(node)) != capacity:
                    self.view.set_node(node, capacity)
                    self._dirty.add(node)
                    changed = True
            if changed:
                self._membership_changed()

    def report_node_failure(self, node_id: str, reason: str = "lost") -> bool:
        """A driver saw a node lose a task, or make no progress: drop it before health checks agree.

        With a probe (the actor has one: `raysched.brain.node_health`), the report is
        a suspicion: the node is dropped only if its raylet fails its health
        check, within a fraction of a second. Without one it is dropped at once.
        Either way a dropped node that Ray still lists as alive comes back
        after the grace period. True when the report was taken.
        """
        with self._lock:
            if node_id not in self.view:
                return False
            if self._node_probe is None:
                self._condemn(node_id, reason)
                return True
            self._suspects[node_id] = str(reason)[:40]
        self._wake.set()
        return True

    def check_suspects(self) -> list[str]:
        """Probe the reported nodes (outside the lock: a probe may take a second) and drop the dead ones."""
        with self._lock:
            suspects, self._suspects = self._suspects, {}
        if not suspects or self._node_probe is None:
            return []
        try:
            gone = self._node_probe(list(suspects))
        except Exception as err:  # cannot tell: leave the nodes to Ray's own health checks
            log.warning("raysched brain: probing %d reported node(s) failed (%s)", len(suspects), err)
            return []
        dropped = []
        with self._lock:
            for node in sorted(gone):
                if node in suspects and node in self.view:
                    self._condemn(node, suspects[node])
                    dropped.append(node)
        return dropped

    def _condemn(self, node_id: str, reason: str) -> None:
        self._condemned[node_id] = (self.clock(), str(reason)[:40])
        self._condemned_capacity[node_id] = dict(self.view.capacity(node_id))
        self._drop(node_id, "leave")
        self._membership_changed()

    def _drop(self, node: str, kind: str) -> None:
        self.view.remove_node(node)  # its parked counts go with it; the tasks are re-decided
        self._forget_reservations(node)
        if self.executors is not None:
            self._executors_released(self.executors.node_gone(node))
        self._dirty.discard(node)
        self._note_membership(kind, node)

    def _forget_reservations(self, node: str) -> None:
        """Work placed on a node that left no longer holds anything there: its ledger entries (and service
        replicas' reservations) name no node. A node reported dead that comes back under the same id (a false
        alarm, after the grace period) starts with an empty ledger; a task placed there before it left that
        finishes afterwards must not release what the fresh ledger never held (the driver's call failed with
        a LedgerError)."""
        for sub in self._subs.values():
            ledger = sub.ledger
            for uid in [uid for uid, entry in ledger.items() if entry[0] == node]:
                _, demand, key = ledger[uid]
                ledger[uid] = (NO_NODE, demand, key)
            for name, (held, demand) in list(sub.replicas.items()):
                if held == node:
                    sub.replicas[name] = (NO_NODE, demand)

    def _note_membership(self, kind: str, node: str) -> None:
        self.membership_changes.append((time.time(), kind, node))
        del self.membership_changes[:-1000]
        self.metrics.membership(kind)

    def _membership_changed(self) -> None:
        """Nodes came or went: every parked task is asked again (homes may have moved; rare)."""
        for sub in self._subs.values():
            for w in sub.waiting.values():
                if w.counted and w.home is not None and w.home in self.view:
                    self.view.unpark(w.home, w.task.key)
                w.home = w.last_home = w.queue = w.group = None
                w.counted = False
                w.ticket += 1
            sub.ready = Queue()
            for w in sub.waiting.values():
                self._link(sub, w, sub.ready, None)
            sub.at_node.clear()
            sub.deferred_at.clear()
            sub.anywhere.clear()
            sub.by_key.clear()
            sub.keys_at.clear()
            sub.expiries.clear()
            sub.overdue.clear()
            sub.ripe.clear()
            sub.deep.clear()
