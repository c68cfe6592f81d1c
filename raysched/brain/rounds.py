"""Delay scheduling in rounds: which waiting tasks are asked about, when, and what their policy answers.

**Late binding** (as Sparrow does). A driver sends each task once. The brain
places it at once if its policy finds room, and otherwise keeps it: parked
for its home node (hash, with the locality wait of delay scheduling) or for
room anywhere (the other policies). Parked tasks are asked about again only
when something they wait for changes: room on their home, room anywhere for
their demand, the end of their locality wait, a membership change. So waiting
costs no decisions, and one brain serves many drivers.

**Rounds.** Every call releases the caller's finished tasks, takes its new
tasks, then runs one round over *all* submissions, interleaving them one task
at a time, so room that one driver frees is shared fairly. Placements wait in
each submission's outbox until its driver's next call.

A task waits for its home node for its policy's locality wait, counted only
while some node has a free slot; past it, work conservation offers it a free
slot elsewhere, and the last tasks of a queue too deep to run within a share
of the wait are stolen at once.

Reads and writes: every submission's waiting tasks, ledger, outbox and
counters; the view's reservations; ``_dirty``, ``_held``, ``_idle_since``,
``_round_no`` and ``decisions``. Reads ``_shared_depth`` (admission) and
``_condemned_capacity`` (membership).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping

from raysched.brain.admission import admission
from raysched.brain.queues import WaitingQueues
from raysched.brain.state import PolicyError, Queue, SubmissionState, WaitingTask
from raysched.core.view import capacity_holds
from raysched.policies import Decision, InfeasibleError, TaskDemand, check_feasible

KEY_SCAN = 16  # tasks looked at from the end of a deep queue for a key that has not run yet
STEAL_SCAN = 512  # tasks looked at for the key warm the shortest time on a node a slot steals from
MAX_DEMANDS_MEMO = 1024  # distinct validated demands the brain remembers (cleared when full)
CHOSE = Decision(None)  # what a policy's plain ``choose`` answer says beside its node: no spill, no key moved


def _demand_memo(demand: object) -> tuple | None:
    """A demand as a memo key, for demands of plain numbers only (anything else, True included, which equals 1
    yet is invalid, is validated on its own): names and amounts with their types."""
    if type(demand) is not dict:
        return None
    memo = []
    for name, amount in demand.items():
        kind = type(amount)
        if type(name) is not str or (kind is not float and kind is not int):
            return None
        memo.append((name, kind, amount))
    return tuple(memo)


class Rounds(WaitingQueues):
    """Takes new tasks, decides waiting ones round by round, and releases finished ones.

    ``bulk`` (the default) takes the shared-work paths: a demand validated once per brain, a key's new tasks
    parked as one group, a lone submission's round without interleaving, a plain ``choose`` answer without a
    Decision or a task copy. ``bulk = False`` decides and files every task on its own: the reference the
    tests hold the bulk paths to (the same placements, task by task, under the same seed).
    """

    bulk = True

    def _to_waiting(self, uid: int, demand: Mapping[str, float], key: str, now: float) -> WaitingTask:
        """Validate one request (before the lock: a bad request changes nothing)."""
        if isinstance(uid, bool) or not isinstance(uid, int):
            raise ValueError(f"task id must be an integer, got {uid!r}")
        try:
            task = TaskDemand(demand, key)
        except (TypeError, ValueError) as err:
            raise ValueError(f"bad resource demand for task {uid}: {err}") from None
        return WaitingTask(uid, task, now)

    def _to_waitings(self, requests: Iterable[tuple[int, Mapping[str, float], str]]) -> list[WaitingTask]:
        """Validate a call's requests, each distinct demand once per brain (drivers send few demands, one task
        per call at steady state): a demand new to the brain is validated as `_to_waiting` does (same errors)."""
        if not self.bulk:
            return [self._to_waiting(uid, demand, key, 0.0) for uid, demand, key in requests]
        validated = self._demands
        out = []
        for uid, demand, key in requests:
            memo = _demand_memo(demand)
            task = validated.get(memo) if memo is not None else None
            if task is None or type(uid) is not int or type(key) is not str:
                w = self._to_waiting(uid, demand, key, 0.0)
                if memo is not None and memo not in validated:
                    if len(validated) >= MAX_DEMANDS_MEMO:
                        validated.clear()  # a driver sending ever new demands: start over, bounded
                    validated[memo] = w.task.with_key("")
            else:
                w = WaitingTask(uid, task.with_key(key), 0.0)
            out.append(w)
        return out

    def _withdraw(self, sub: SubmissionState) -> None:
        """Release placements made for ``sub`` that were never delivered to its driver."""
        for uid, node, _spill, _wait in sub.outbox:
            entry = sub.ledger.pop(uid, None)
            if entry is not None and node in self.view:
                self.view.release_checked(node, entry[1], entry[2])
                self._dirty.add(node)
        sub.outbox = []

    def _release(self, sub: SubmissionState, finished: Iterable[int]) -> None:
        view = self.view
        for uid in finished:
            entry = sub.ledger.pop(uid, None)
            if entry is None:
                sub.unknown_finishes += 1  # never placed by this brain (or reported twice): nothing to release
                continue
            sub.done += 1
            node, demand, key = entry
            if node in view:
                view.release_checked(node, demand, key)
                self._dirty.add(node)

    def _take(self, sub: SubmissionState, new: list[WaitingTask], now: float) -> None:
        """New tasks: infeasible ones answered at once; with a homing policy, each assigned a home.

        The whole batch counts as held work from the start, so the first
        batch of a run sees bounds as generous as the steady state's.
        """
        view = self.view
        feasible = []
        for w in new:
            w.arrived = w.since = now
            try:
                check_feasible(view, w.task.resources, w.task.signature)
            except InfeasibleError as err:
                sub.infeasible.append((w.uid, str(err)))
                continue
            sub.waiting[w.uid] = w
            self._held += 1
            feasible.append(w)
        if sub.assign is None or sub.error is not None:
            for w in feasible:
                self._link(sub, w, sub.ready, None)
            return
        # Tasks of one key and one demand arriving together are assigned as one (the key stays whole). Grouped by
        # key alone, a key's GPU task took the home its CPU tasks' demand found, a node that can never hold it,
        # and under the pure ring (no work conservation) it blocked that node's queue for good.
        groups: dict[tuple[str, tuple], list[WaitingTask]] = {}
        arrivals: dict[str, int] = {}
        for w in feasible:
            key = w.task.key
            groups.setdefault((key, w.task.signature), []).append(w)
            arrivals[key] = arrivals.get(key, 0) + 1
        if sub.arrived is not None:
            try:
                sub.arrived(arrivals)
            except Exception as err:
                self._broken(sub, err)
                return
        for group in groups.values():
            first = group[0]
            if len(group) > 1 and sub.assign_groups:
                decision = self._assign(sub, first, len(group))
                if decision is not None:
                    if decision.moved_from is not None:
                        self._move_key(sub, first.task.key, decision.moved_from, decision.waits_for, now)
                    if self.bulk:
                        self._park_new(sub, group, decision, now)
                    else:
                        for w in group:
                            self._park(sub, w, decision, now)
                    continue
            for w in group:
                decision = self._assign(sub, w, 1)
                if decision is None:
                    self._link(sub, w, sub.ready, None)
                    continue
                if decision.moved_from is not None:
                    self._move_key(sub, w.task.key, decision.moved_from, decision.waits_for, now)
                self._park(sub, w, decision, now)

    def _assign(self, sub: SubmissionState, w: WaitingTask, count: int) -> Decision | None:
        """The policy's assignment of a new task (or ``count`` of one key); None if it cannot or broke."""
        if sub.error is not None:
            return None
        self._before_policy(sub)
        try:
            assign = sub.assign
            assert assign is not None
            return assign(w.task, self.view, count) if sub.assign_groups else assign(w.task, self.view)
        except Exception as err:
            self._broken(sub, err)
            return None

    def _admission(self, sub: SubmissionState) -> float:
        """How much a node may hold while placing for ``sub`` (`raysched.brain.admission.admission`)."""
        return admission(sub, len(self._subs), self._shared_depth)

    def _before_policy(self, sub: SubmissionState) -> None:
        """The view as this submission's policy must see it: its admission, and the work held unassigned."""
        view = self.view
        view.overcommit = self._admission(sub)
        view.pending = max(0, self._held - view.total_parked - 1)  # minus the task being decided

    def _delay_clock(self, w: WaitingTask, now: float) -> float:
        """How long a task has waited in delay scheduling's sense: only while some node had a free slot."""
        if self._idle_since is None:
            return 0.0
        return max(0.0, now - max(w.since, self._idle_since))

    def _track_idle(self, now: float) -> None:
        """Start (or stop) delay scheduling's clock: while some node has a free slot, waits cost."""
        if self.view.idle_somewhere:
            if self._idle_since is None:
                self._idle_since = now
        else:
            self._idle_since = None

    def _round(self, now: float, first: str | None = None) -> None:
        """Decide what can be placed now, interleaving submissions one task at a time, the caller's first.

        The caller hears of its placements in this very answer; another
        submission only at its next call (a poll, up to 50 ms later). Starting
        with the caller gives the slot its own release freed back to it at
        once; every driver calls as its tasks finish, so over a run the
        submissions still take turns. Work a round creates for itself (a key
        moved to a node with room) gets one more round at once, so it never
        waits for the next call.
        """
        order = self._order
        if first is not None and first in self._subs and len(order) > 1:
            order = [first, *(sid for sid in order if sid != first)]
        for _ in range(3):
            self._round_no += 1
            dirty, self._dirty = self._dirty, set()
            if len(order) == 1 and self.bulk:
                self._decide_feed(self._subs[order[0]], now, dirty)
            else:
                self._interleave(order, now, dirty)
            if self._settled():
                break
        for sub in self._subs.values():
            if len(sub.expiries) > len(sub.waiting) + 64:  # stale timers: keep the heap within its live size
                sub.expiries = [e for e in sub.expiries if e[2].ticket == e[3] and e[2].uid in sub.waiting]
                heapq.heapify(sub.expiries)
        self._track_idle(now)

    def _settled(self) -> bool:
        """Nothing the last round did asks for another: no node's room changed, no task is ready to decide."""
        return not self._dirty and all(not sub.ready for sub in self._subs.values())

    def _decide_feed(self, sub: SubmissionState, now: float, dirty: set[str]) -> None:
        """One round for a lone submission: decide its candidates in turn (`_interleave` with one feed)."""
        round_no = self._round_no
        for w in self._candidates(sub, now, dirty):
            if sub.error is not None:
                return
            w.seen_round = round_no
            sub.placed_last = self._decide(sub, w, now)

    def _interleave(self, order: list[str], now: float, dirty: set[str]) -> None:
        """One round over several submissions: one candidate of each in turn, in ``order``."""
        feeds = {sid: self._candidates(self._subs[sid], now, dirty) for sid in order}
        while feeds:
            for sid in list(feeds):
                sub = self._subs[sid]
                w = next(feeds[sid], None)
                if w is None or sub.error is not None:
                    del feeds[sid]
                    continue
                w.seen_round = self._round_no
                sub.placed_last = self._decide(sub, w, now)

    def _candidates(self, sub: SubmissionState, now: float, dirty: set[str]) -> Iterator[WaitingTask]:
        """The tasks of one submission worth deciding now; a queue stops at its first task that stays.

        Room can only have appeared on ``dirty`` nodes (releases, joins, new
        parks), so a task waiting for room anywhere is asked about again only
        when one of them fits it now. A task past its locality wait is asked
        again only when a node with a free slot could take it (work
        conservation), and then it runs: there or where its policy prefers.
        """
        view = self.view
        roomy = sorted(dirty)

        self._expire(sub, now)
        no_room: set[tuple] = set()  # demands that found no room in this round (policies that promise it)
        while sub.ready:  # new tasks, and tasks whose node left
            w = next(iter(sub.ready.values()))
            self._unlink(sub, w)
            if w.task.signature in no_room or (sub.no_room_means_none and w.task.signature in sub.anywhere):
                # An equal demand just found no room, or waits for room already: wait unasked, behind it
                # (first come, first placed: new tasks never take the room older ones wait for).
                self._park(sub, w, Decision(None), now)
                continue
            yield w
            if not sub.placed_last and sub.no_room_means_none:
                no_room.add(w.task.signature)
        view.overcommit = self._admission(sub)
        for node in roomy:  # homes that may have room: first their assigned tasks, then those deferred
            for queues in (sub.at_node, sub.deferred_at):
                queue = queues.get(node)
                while queue:
                    w = next(iter(queue.values()))
                    if w.seen_round == self._round_no or not view.fits_now(node, w.task.resources):
                        break
                    yield self._unpark(sub, w)
                    if not sub.placed_last:
                        break
                    queue = queues.get(node)
        if roomy:  # tasks waiting for room anywhere
            for group in list(sub.anywhere):
                queue = sub.anywhere.get(group)
                room: list[str] | None = None  # the dirty nodes that fit this queue's demand, dropped as they fill
                while queue:
                    w = next(iter(queue.values()))
                    if w.seen_round == self._round_no:
                        break
                    view.overcommit = self._admission(sub)
                    if room is None:
                        room = [node for node in roomy if node in view and view.fits_now(node, w.task.resources)]
                    while room and not (room[-1] in view and view.fits_now(room[-1], w.task.resources)):
                        room.pop()
                    if not room:
                        break
                    self._unlink(sub, w)
                    w.retry = True
                    yield w
                    if not sub.placed_last and sub.no_room_means_none:
                        break
                    queue = sub.anywhere.get(group)
        if (sub.overdue or sub.deep) and view.idle_somewhere:
            yield from self._offers(sub, now)

    def _offers(self, sub: SubmissionState, now: float) -> Iterator[WaitingTask]:
        """Free slots for work waiting at busy nodes (work conservation), cheapest loss of locality first.

        1. A node whose queue holds more than a round of tasks gives a whole
           key that has not run yet to a node with a free slot: no warm state
           is lost, the key keeps one node (the policy agrees, ``movable``).
        2. Overdue tasks, oldest first: once a task's wait is over (counted
           while some slot idled), the first free slot that fits it takes it.
        3. The last tasks of a queue that would wait past a share of the
           locality wait go to free slots at once.
        A demand that finds no free slot stops the search for equal demands in
        this round.
        """
        view = self.view
        full: set[tuple] = set()
        waiting: set[str] = set()  # nodes whose steal waits for the next call
        if sub.movable is not None:
            for node in list(sub.deep):
                if not view.idle_somewhere:
                    return
                if self._depth(sub, node) > self._slots(node):  # more than a round queued there
                    self._give_away_a_key(sub, node, now)
        for w in list(sub.overdue.values()):
            if w.seen_round == self._round_no or w.task.signature in full or w.uid not in sub.waiting:
                continue
            free = self._free_slot(sub, w)
            if free is None:
                full.add(w.task.signature)
                if not view.idle_somewhere:
                    return
                continue
            if w.home in waiting:
                continue
            steal = self._steal(sub, w, free, waiting)
            if steal is None:
                continue
            yield steal
        for node in list(sub.deep):  # the last tasks of queues deeper than the wait: stolen at once
            queue = sub.deferred_at.get(node) or sub.at_node.get(node)
            while queue and self._depth(sub, node) > self._steal_above(sub, node) and view.idle_somewhere:
                w = next(reversed(queue.values()))
                if w.seen_round == self._round_no or w.task.signature in full:
                    break
                free = self._free_slot(sub, w)
                if free is None:
                    full.add(w.task.signature)
                    break
                if free == node:  # its own node has a free slot: it serves its queue itself
                    break
                steal = self._steal(sub, w, free, waiting)
                if steal is None:
                    break
                yield steal
                queue = sub.deferred_at.get(node) or sub.at_node.get(node)

    def _steal(self, sub: SubmissionState, w: WaitingTask, free: str, waiting: set[str]) -> WaitingTask | None:
        """Take the task a free slot on ``free`` runs in ``w``'s stead (`_youngest_key`) off its queue, offered
        that slot. One taken in ``w``'s stead counts as having waited for its node, so its key's other tasks there
        follow it, counted or deferred alike (``w`` itself, when deferred, moves alone, as it always did: moving its
        key too made a million simulated Zipf tasks on 10,000 nodes take 2.8x as long and 1 GB more). None when
        the steal from that node waits for the next call (the node joins ``waiting``)."""
        node = w.home
        steal = self._youngest_key(sub, w)
        if steal is None:
            if node is not None:
                waiting.add(node)
            return None
        self._unpark(sub, steal)
        if steal is not w:
            steal.last_home = node
        steal.offer = free
        return steal

    def _youngest_key(self, sub: SubmissionState, w: WaitingTask) -> WaitingTask | None:
        """The task to steal in ``w``'s stead: the first queued at its node, with its demand, of the key that has
        been warm there the shortest time (`warm_for`), when shorter than ``w``'s key. A steal moves the key (its
        waiting tasks follow), so the node's old keys stay home and the newcomers leave first: after a node dies,
        its keys, not their new neighbours' keys. Looks at up to `STEAL_SCAN` tasks (a steal is rare; a key that
        came lately may wait at the head of the queue, as a dead node's tasks do). None while the youngest key's
        tasks were decided in this very round (a dead node's keys just given to this node): the steal from that
        node waits for the next call, once."""
        warm_for, node = sub.warm_for, w.home
        if warm_for is None or node is None:
            return w
        best, youngest = w, warm_for(w.task.key)
        keys = sub.keys_at.get(node, ())
        queues = (sub.deferred_at.get(node), sub.at_node.get(node))
        scanned = itertools.islice(itertools.chain(*(q.values() for q in queues if q)), STEAL_SCAN)
        # The keys younger than w's, and their ages: only their tasks can be taken instead. A hot key's home
        # queues hundreds of its own tasks among a few keys, so the keys are the cheaper question.
        if len(keys) < STEAL_SCAN:
            ages = {key: age for key in keys if (age := warm_for(key)) < youngest}
            if not ages:  # none (the usual answer)
                sub.steal_waits.pop(node, None)
                return w
            younger = [other for other in scanned if other.task.key in ages]
        else:
            window = list(scanned)
            ages = {key: age for key in {other.task.key for other in window} if (age := warm_for(key)) < youngest}
            younger = [other for other in window if other.task.key in ages]
        round_no, signature = self._round_no, w.task.signature
        decided_now = math.inf  # the youngest age among tasks decided in this round
        for other in younger:
            if youngest <= 0:
                break
            age = ages[other.task.key]
            if age < youngest and other.task.signature == signature:
                if other.seen_round != round_no:
                    best, youngest = other, age
                else:
                    decided_now = min(decided_now, age)
        if decided_now < youngest and sub.steal_waits.setdefault(node, self.calls) == self.calls:
            return None
        sub.steal_waits.pop(node, None)
        return best

    def _give_away_a_key(self, sub: SubmissionState, node: str, now: float) -> None:
        """Move one key that has not run yet, whole, from ``node``'s queue to a node with a free slot."""
        assert sub.movable is not None
        depth = self._depth(sub, node)
        for queue in (sub.deferred_at.get(node, Queue()), sub.at_node.get(node, Queue())):
            for w in itertools.islice(reversed(queue.values()), KEY_SCAN):
                key = w.task.key
                tasks = len(sub.by_key.get((node, key), ()))
                if tasks >= depth or not sub.movable(key):
                    continue
                free = self._free_slot(sub, w)
                if free is None or free == node:
                    return
                takes = self._takes_slot(sub, w.task, free)
                if takes is None:
                    return
                if not takes:
                    continue  # the policy keeps the key off that node (hash: its cache is full of other keys)
                self._move_key(sub, key, node, free, now)
                if sub.key_moved is not None:
                    sub.key_moved(key, free)
                return

    def _takes_slot(self, sub: SubmissionState, task: TaskDemand, node: str) -> bool | None:
        """Does the policy let work conservation use a free slot of ``node`` for ``task`` (`takes_slot`; yes
        without the hook)? None when the hook raised: the submission is broken."""
        if sub.takes_slot is None:
            return True
        try:
            return bool(sub.takes_slot(task, node, self.view))
        except Exception as err:
            self._broken(sub, err)
            return None

    def _free_slot(self, sub: SubmissionState, w: WaitingTask) -> str | None:
        """A node with a free slot (not just room in its queue) that fits the task now, if any."""
        view = self.view
        view.overcommit = 1.0
        free = view.fitting_nodes(w.task.resources, limit=1)
        view.overcommit = self._admission(sub)
        return free[0] if free else None

    def _expire(self, sub: SubmissionState, now: float) -> None:
        """Tasks whose locality wait just ended become overdue (delay scheduling's clock runs only while a
        slot idles). They stay queued at their home; `_offers` hands them free slots elsewhere.

        A task waits for its home; the wait counts only from the moment some
        node has a free slot it could have used (waiting while every node is
        busy costs nothing). Tasks whose own wait is over but found no idle node
        yet are kept "ripe" until one appears.
        """
        if not sub.expiries and not sub.ripe:
            return
        idle_since = self._idle_since
        wait = sub.locality_wait_s or 0.0
        while sub.expiries and sub.expiries[0][0] <= now:
            _, _, w, ticket = heapq.heappop(sub.expiries)
            if w.ticket != ticket or w.uid not in sub.waiting:
                continue
            if idle_since is None:
                sub.ripe[w.uid] = w
                continue
            due = max(w.since, idle_since) + wait
            if due > now:
                heapq.heappush(sub.expiries, (due, next(self._seq), w, ticket))
                continue
            w.overdue = True
            sub.overdue[w.uid] = w
        if idle_since is not None and sub.ripe and idle_since + wait <= now:
            for w in sub.ripe.values():
                if w.uid in sub.waiting and not w.overdue:
                    w.overdue = True
                    sub.overdue[w.uid] = w
            sub.ripe.clear()

    def _decide(self, sub: SubmissionState, w: WaitingTask, now: float) -> bool:
        """Ask the policy about one task: place it, or park it again. True when placed."""
        view = self.view
        offer, w.offer = w.offer, None
        if not view.could_ever_fit(w.task.resources, w.task.signature):  # its nodes left after it arrived
            return self._no_node_left(sub, w, now)
        self._before_policy(sub)
        task = w.task
        waited = self._delay_clock(w, now)
        if not self.bulk or waited or w.last_home is not None or task.waited_s or task.waiting_for is not None:
            task = task.waited(waited, w.last_home)  # else the task as it arrived says the same: no copy
        try:
            if sub.decide is not None:
                decision = sub.decide(task, view)
                node = decision.node
            else:
                node = sub.policy.choose(task, view)
                decision = CHOSE if self.bulk else Decision(node)  # a plain node id says no more than CHOSE
        except Exception as err:
            self._broken(sub, err)
            return False
        self.decisions += 1
        sub.decisions += 1
        if decision.moved_from is not None:
            self._move_key(sub, w.task.key, decision.moved_from, node or decision.waits_for, now)
            if offer is None:
                w.since, w.overdue = now, False
                sub.overdue.pop(w.uid, None)
        if node is None and offer is not None:
            takes: bool | None = sub.work_conserving and not decision.stay and view.fits_now(offer, w.task.resources)
            if takes:
                takes = self._takes_slot(sub, task, offer)
                if takes is None:
                    return False
            if takes:
                node, decision = offer, Decision(offer, spill="wait")
            else:  # the policy declined a free slot: the task waits for its home, offered nothing more
                w.overdue, w.declined = False, True
                sub.overdue.pop(w.uid, None)
        if node is None:
            self._park(sub, w, decision, now)
            return False
        if node not in view or not view.fits_now(node, w.task.resources):
            self._broken(
                sub,
                None,
                f"chose {str(node)[:16]!r} for task {w.uid}, which is no live node with room "
                "for it; a policy must return a node where view.fits_now(node, demand) holds, "
                "or None to wait",
            )
            return False
        self._forget(sub, w)
        view.reserve_checked(node, w.task.resources, w.task.key)
        sub.ledger[w.uid] = (node, w.task.resources, w.task.key)
        sub.outbox.append((w.uid, node, decision.spill, now - w.arrived))
        if decision.spill:
            sub.spills[decision.spill] += 1
            home = w.last_home
            if decision.spill == "wait" and sub.spilled is not None and sub.spilled(w.task, node, view) and home:
                self._move_key(sub, w.task.key, home, node, now)  # the key lives there now: its tasks follow
        self.metrics.placed(node)
        return True

    def _no_node_left(self, sub: SubmissionState, w: WaitingTask, now: float) -> bool:
        """No live node could hold this task any more: wait while a dropped node that could may come back
        (reported, not yet confirmed dead by Ray), else it is infeasible. Never placed: returns False."""
        demand = w.task.resources
        if any(capacity_holds(cap, demand) for cap in self._condemned_capacity.values()):
            self._park(sub, w, Decision(None), now)  # asked again on the next membership change
            return False
        try:
            check_feasible(self.view, demand)
        except InfeasibleError as err:
            self._forget(sub, w)
            sub.infeasible.append((w.uid, str(err)))
        return False

    def _broken(self, sub: SubmissionState, err: BaseException | None, what: str = "") -> None:
        """Mark a submission whose policy raised or misbehaved: its calls raise PolicyError, others go on."""
        name = sub.info.get("policy", getattr(sub.policy, "name", "?"))
        if err is not None:
            what = f"raised {type(err).__name__}: {err}"
        if sub.error is None:
            sub.error = PolicyError(f"policy {name} {what}")
