"""Where waiting tasks wait: each in exactly one queue, indexed by node and key.

A submission's waiting tasks sit in its ``ready`` queue (to decide in the next
round), at a node (``at_node``: assigned to it and counted in the view's parked
work; ``deferred_at``: waiting for it at its bound), or waiting for room
anywhere (``anywhere``, by demand signature). ``by_key`` indexes the node
queues by (node, key), so a key's tasks move with it at the cost of those
tasks alone, and ``deep`` names the nodes whose queue holds more than may wait
there (work stealing takes from them while a slot idles elsewhere).

Reads and writes: each `SubmissionState`'s queues and indexes, the view's
parked counts, ``_dirty``, ``_held``; reads the view's capacities.
"""

from __future__ import annotations

import collections
import heapq
import math
from typing import Any

from raysched.brain.state import BrainState, Queue, SubmissionState, WaitingTask
from raysched.policies import Decision

# Work stealing: while a slot idles, a node's queue is too deep once its last task would wait for the node longer
# than this share of the locality wait (expected wait = tasks queued / slots x median task time). On 100,000
# Zipf-keyed tasks over 1,000 simulated nodes, hash finished 4% after random at 1.0, and 2% before it (with 1.9x
# its cache hits) at 0.25.
DEEP_QUEUE_SHARE_OF_WAIT = 0.25


class WaitingQueues(BrainState):
    """Puts waiting tasks in their one queue and takes them out, keeping the indexes beside the queues."""

    def _link(self, sub: SubmissionState, w: WaitingTask, queue: Queue, group: Any, front: bool = False) -> None:
        """Put a task in one queue (at its head when it was taken from there and stays)."""
        queue[w.uid] = w
        if front:
            queue.move_to_end(w.uid, last=False)
        w.queue, w.group = queue, group
        if w.home is not None and queue is not sub.ready:
            self._key_tasks(sub, w.home, w.task.key)[w.uid] = w
            self._depth_changed(sub, w.home)

    @staticmethod
    def _key_tasks(sub: SubmissionState, node: str, key: str) -> dict[int, WaitingTask]:
        """The tasks of ``key`` waiting at ``node`` (``by_key``), made with the key's entry in ``keys_at``."""
        same = sub.by_key.get((node, key))
        if same is None:
            same = sub.by_key[(node, key)] = {}
            sub.keys_at.setdefault(node, {})[key] = None
        return same

    def _unlink(self, sub: SubmissionState, w: WaitingTask) -> None:
        """Take a task out of the queue that holds it (and drop the queue once empty)."""
        queue = w.queue
        if queue is None:
            return
        queue.pop(w.uid, None)
        if not queue and w.group is not None:
            for queues in (sub.at_node, sub.deferred_at, sub.anywhere):
                if queues.get(w.group) is queue:
                    del queues[w.group]
        if w.home is not None:
            pair = (w.home, w.task.key)
            same = sub.by_key.get(pair)
            if same is not None:
                same.pop(w.uid, None)
                if not same:
                    del sub.by_key[pair]
                    keys = sub.keys_at[w.home]
                    del keys[w.task.key]
                    if not keys:
                        del sub.keys_at[w.home]
            self._depth_changed(sub, w.home)
        w.queue = w.group = None

    def _depth(self, sub: SubmissionState, node: str) -> int:
        return len(sub.at_node.get(node, ())) + len(sub.deferred_at.get(node, ()))

    def _depth_changed(self, sub: SubmissionState, node: str) -> None:
        """Track the nodes whose queues for ``sub`` hold more than one round of tasks (one per slot), or more
        than their last task should wait (`_steal_above`): while a slot idles elsewhere, work waits there
        that could run now (`_offers`)."""
        depth = self._depth(sub, node)
        if (
            depth > 1  # both limits are at least one task: a queue of one is never deep
            and sub.work_conserving
            and node in self.view
            and depth > min(self._slots(node), self._steal_above(sub, node))
        ):
            sub.deep[node] = None
        else:
            sub.deep.pop(node, None)

    def _slots(self, node: str) -> float:
        return max(1.0, self.view.capacity(node).get("CPU", 1.0))

    def _steal_above(self, sub: SubmissionState, node: str) -> float:
        """Tasks a node's queue may hold before its last one expects to wait past its share of the locality
        wait (expected wait = tasks queued / slots x median task time): beyond, they are stolen."""
        wait, task_s = sub.locality_wait_s, sub.task_s
        if wait is None or not task_s:
            return math.inf
        return max(1.0, self._slots(node) * DEEP_QUEUE_SHARE_OF_WAIT * wait / task_s)

    def _park(self, sub: SubmissionState, w: WaitingTask, decision: Decision, now: float) -> None:
        """Keep a task that cannot run yet, where the next chance to place it will find it."""
        self._unlink(sub, w)
        w.ticket += 1
        front, w.retry = w.retry, False
        home = decision.waits_for if sub.decide is not None or sub.assign is not None else None
        if home is not None and home in self.view:
            w.home, w.counted = home, decision.assigned
            if w.counted:
                self.view.park(home, w.task.key)
            queues = sub.at_node if w.counted else sub.deferred_at
            queue = queues.get(home)
            if queue is None:
                queue = queues[home] = Queue()
            self._link(sub, w, queue, home, front)
            if not front:
                self._dirty.add(home)
            wait = sub.locality_wait_s
            if wait is not None and not w.overdue and not w.declined and not sub.stays_home:
                heapq.heappush(sub.expiries, (w.since + wait, next(self._seq), w, w.ticket))
            if w.counted:
                self._older_first(sub, home)
            return
        group = w.task.signature if sub.no_room_means_none else w.uid
        self._link(sub, w, sub.anywhere.setdefault(group, Queue()), group, front)

    def _park_new(self, sub: SubmissionState, group: list[WaitingTask], decision: Decision, now: float) -> None:
        """Park new tasks of one key that share one assignment (``decision``) as `_park` parks each in turn,
        counting them in the ledger and filing them in their queue and key index once for the whole group."""
        home = decision.waits_for if sub.decide is not None or sub.assign is not None else None
        swaps = decision.assigned and home is not None and self._older_waits(sub, home, group[0])
        if len(group) == 1 or home is None or home not in self.view or swaps:
            for w in group:  # (older deferred tasks take the places of the group's tasks one by one)
                self._park(sub, w, decision, now)
            return
        counted = decision.assigned
        key = group[0].task.key
        if counted:
            self.view.park(home, key, len(group))
        queues = sub.at_node if counted else sub.deferred_at
        queue = queues.get(home)
        if queue is None:
            queue = queues[home] = Queue()
        same = self._key_tasks(sub, home, key)
        wait = sub.locality_wait_s
        if sub.stays_home:
            wait = None
        for w in group:  # new: in no queue yet, never retried, overdue or declined
            w.ticket += 1
            w.home, w.counted = home, counted
            queue[w.uid] = same[w.uid] = w
            w.queue, w.group = queue, home
            if wait is not None:
                heapq.heappush(sub.expiries, (w.since + wait, next(self._seq), w, w.ticket))
        self._depth_changed(sub, home)
        self._dirty.add(home)

    @staticmethod
    def _older_waits(sub: SubmissionState, node: str, new: WaitingTask) -> bool:
        """Does a task deferred at ``node`` wait there from before ``new`` came (one call's tasks tie)?"""
        deferred = sub.deferred_at.get(node)
        if not deferred:
            return False
        return next(iter(deferred.values())).arrived < new.arrived

    def _older_first(self, sub: SubmissionState, node: str) -> None:
        """A node's tasks run in the order they came, assigned or deferred: a task deferred at its bound that is
        older than the one just assigned there takes its place (the counts stay as they are). A node runs its
        assigned tasks before its deferred ones, so without this a busy node's newer tasks passed its deferred
        ones for the rest of the run (9 s of a 25 s run), and idle nodes stole them at its end, moving their keys."""
        assigned = sub.at_node.get(node)
        if not assigned:
            return
        new = next(reversed(assigned.values()))
        if not self._older_waits(sub, node, new):
            return
        old = next(iter(sub.deferred_at[node].values()))
        view = self.view
        self._unlink(sub, old)
        self._unlink(sub, new)
        view.unpark(node, new.task.key)
        view.park(node, old.task.key)
        old.counted, new.counted = True, False
        self._link(sub, old, sub.at_node.setdefault(node, Queue()), node)
        self._link(sub, new, sub.deferred_at.setdefault(node, Queue()), node)

    def _unpark(self, sub: SubmissionState, w: WaitingTask) -> WaitingTask:
        """Take a waiting task off its node (to decide it again; it goes back to the head if it stays)."""
        self._unlink(sub, w)
        if w.home is not None:
            if w.counted and w.home in self.view:
                self.view.unpark(w.home, w.task.key)
            w.last_home = w.home if w.counted else None
            w.home, w.counted = None, False
        w.retry = True
        return w

    def _move_key(self, sub: SubmissionState, key: str, old: str, new: str | None, now: float) -> None:
        """A policy moved a whole key off ``old`` to ``new``: its tasks waiting at ``old`` follow it.

        The policy chose ``new`` with room under its bound for them, so they are
        parked there directly (not decided again), and wait for it afresh.
        Costs the key's tasks at ``old``, nothing else (an index by node and key).
        A task ``new`` could never hold (a key's GPU task, its CPU tasks moving
        to a node without GPUs) stays at ``old``: followed, it waited there for
        good under a key capacity, which keeps work conservation off full caches.
        """
        view = self.view
        if new is None or new not in view:
            return
        for w in list(sub.by_key.get((old, key), {}).values()):
            if not view.could_hold(new, w.task.resources):
                continue
            counted = w.counted
            self._unpark(sub, w)
            w.retry, w.overdue, w.since = False, False, now
            sub.overdue.pop(w.uid, None)
            sub.ripe.pop(w.uid, None)
            self._park(sub, w, Decision(None, waits_for=new, assigned=counted), now)

    def _forget(self, sub: SubmissionState, w: WaitingTask) -> None:
        """The task leaves the brain's waiting structures (placed, or answered infeasible)."""
        del sub.waiting[w.uid]
        self._held -= 1
        self._unlink(sub, w)
        w.ticket += 1
        sub.overdue.pop(w.uid, None)
        sub.ripe.pop(w.uid, None)

    def queue_entries(self) -> int:
        """Entries in the brain's queues and timers: within about twice the waiting tasks, however long the run.

        (The indexes beside them, ``by_key``, ``overdue`` and ``ripe``, hold
        only tasks that are waiting: `check_structures` proves it.)
        """
        with self._lock:
            total = 0
            for sub in self._subs.values():
                total += len(sub.ready) + len(sub.expiries)
                for queues in (sub.at_node, sub.deferred_at, sub.anywhere):
                    total += sum(len(q) for q in queues.values())
            return total

    def check_structures(self) -> None:
        """Raise AssertionError unless every waiting structure holds exactly the live waiting tasks (for tests)."""
        with self._lock:
            for sub in self._subs.values():
                queued = [sub.ready, *sub.at_node.values(), *sub.deferred_at.values(), *sub.anywhere.values()]
                uids = [uid for q in queued for uid in q]
                assert sorted(uids) == sorted(sub.waiting), "a waiting task is in no queue, or in two"
                assert all(q for q in queued[1:]), "an empty queue was kept"
                for (node, key), tasks in sub.by_key.items():
                    assert tasks and all(w.home == node and w.task.key == key for w in tasks.values())
                assert {(n, k) for n, keys in sub.keys_at.items() for k in keys} == set(sub.by_key), (
                    "the keys by node differ from the key index"
                )
                assert all(sub.keys_at.values()), "an empty set of keys was kept"
                assert sum(len(t) for t in sub.by_key.values()) == sum(
                    len(q) for q in [*sub.at_node.values(), *sub.deferred_at.values()]
                ), "the key index differs from the node queues"
                assert set(sub.overdue) <= set(sub.waiting) and set(sub.ripe) <= set(sub.waiting)
                counted = collections.Counter(w.home for w in sub.waiting.values() if w.counted and w.home)
                assert all(len(sub.at_node.get(n, ())) == c for n, c in counted.items())
                assert len(sub.expiries) <= len(sub.waiting) + 64 + 1
