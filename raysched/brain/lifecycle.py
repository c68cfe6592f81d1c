"""A submission's life in the brain: it registers, calls with finished and new tasks, heartbeats, ends.

Every call (`place`) releases the caller's finished tasks, takes its new
ones and runs one round (`raysched.brain.rounds`). A submission that neither
calls nor heartbeats for SUBMISSION_EXPIRY_S, or whose driver's Ray job died,
is ended and its reservations released.

Reads and writes: ``_subs``, ``_order``, ``_shared_depth``, each submission's
pacing (``overcommit``, ``adaptive``, ``task_s``), ``calls`` and ``busy_s``;
releases a submission's reservations and parked counts in the view.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from raysched.brain.admission import shared_depth, shared_share
from raysched.brain.handout import ExecutorHandOut
from raysched.brain.rounds import Rounds
from raysched.brain.state import Held, Placement, Request, SubmissionState, UnknownSubmission, WaitingTask
from raysched.core.view import DEFAULT_OVERCOMMIT, check_demand, check_overcommit
from raysched.policies import Policy

log = logging.getLogger(__name__)

# A submission that has not called (or sent a heartbeat) for this long is presumed
# dead and its reservations are dropped; drivers heartbeat every HEARTBEAT_S from a thread.
SUBMISSION_EXPIRY_S = 60.0
HEARTBEAT_S = 5.0
HOT_KEYS_SHOWN = 10  # hot keys listed by status and the run's summary


def dead_drivers_from_ray() -> set[str]:
    """Job ids of drivers that have ended (Ray's job table), to release their work at once."""
    from ray._private import state

    return {job["JobID"] for job in state.jobs() if job.get("IsDead")}


def _positive_or_none(value: Any) -> float | None:
    """A figure from a driver's pacing, or None when it is no positive finite number (then it is not used)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and math.isfinite(number) else None


def ring_summary(policy: Policy) -> dict[str, Any]:
    """Ring size of a hash-style policy (nodes and virtual nodes), keys moved, and the hot keys that spread over
    several nodes with their share of the recent work, hottest first (for status and the run's summary)."""
    ring = getattr(policy, "ring", None)
    if ring is None:
        return {}
    summary: dict[str, Any] = {"ring_nodes": len(ring), "ring_vnodes": int(getattr(ring, "points", 0))}
    if hasattr(policy, "keys_moved"):
        summary["keys_moved"] = int(policy.keys_moved)
    hot_keys = getattr(policy, "hot_keys", None)
    if callable(hot_keys):
        summary["keys_spread"] = int(getattr(policy, "keys_spread", 0))
        summary["hot_keys"] = [
            {"key": key, "nodes": nodes, "share": round(share, 4)} for key, nodes, share in hot_keys(HOT_KEYS_SHOWN)
        ]
    return summary


def _check_new(sub: SubmissionState, new: Sequence[WaitingTask], finished: list[int]) -> None:
    """Refuse a call that sends a task the brain holds already (a task finishing in this call may come again)."""
    finishing = set(finished)
    seen: set[int] = set()
    for w in new:
        if (w.uid in sub.ledger and w.uid not in finishing) or w.uid in sub.waiting or w.uid in seen:
            raise ValueError(f"task {w.uid} is already held by the brain for this submission")
        seen.add(w.uid)


class Submissions(Rounds, ExecutorHandOut):
    """Registers submissions, answers their calls, keeps them alive, and ends them."""

    expiry_s: float  # a submission silent for this long is ended

    def register(
        self,
        submission_id: str,
        policy: Policy,
        info: Mapping[str, Any],
        held: Sequence[Held] = (),
        waiting: Sequence[Request] = (),
        overcommit: float = DEFAULT_OVERCOMMIT,
    ) -> dict[str, Any]:
        """Start (or resume after a brain restart) a submission: reserve what it runs, take what it waits for.

        Registering an id that exists first releases everything the old one held.
        """
        if not callable(getattr(policy, "choose", None)):
            raise TypeError("policy must have a choose(task, view) method")
        held_tasks = [(int(uid), str(node), check_demand(demand), str(key)) for uid, node, demand, key in held]
        new = [self._to_waiting(uid, demand, key, 0.0) for uid, demand, key in waiting]
        with self._lock:
            self._end(submission_id)
            now = self.clock()
            sub = SubmissionState(
                policy=policy, info=dict(info), overcommit=check_overcommit(overcommit), last_seen=now
            )
            sub.executors_allowed = sub.on_executors = info.get("executors") == "on" and self.executors is not None
            idle_s = _positive_or_none(info.get("executor_idle_s"))
            if self.executors is not None and idle_s is not None:
                self.executors.idle_s = idle_s  # the latest submission's setting holds for the shared executors
            for uid, node, demand, key in held_tasks:
                if node in self.view:
                    self.view.reserve(node, demand, key)
                    sub.ledger[uid] = (node, demand, key)
            self._subs[submission_id] = sub
            self._order.append(submission_id)
            self._shared_depth = shared_depth(self._subs.values())
            self._take(sub, new, now)
            return {"brain_id": self.brain_id}

    def heartbeat(self, submission_id: str) -> bool:
        """Keep a submission alive between calls (sent by its driver's heartbeat thread)."""
        with self._lock:
            sub = self._subs.get(submission_id)
            if sub is None:
                return False
            sub.last_seen = self.clock()
            return True

    def unregister(self, submission_id: str) -> dict[str, Any]:
        """End a submission, releasing whatever it still holds; its final counters."""
        with self._lock:
            sub = self._subs.get(submission_id)
            final = (
                {}
                if sub is None
                else {
                    "decisions": sub.decisions,
                    "done": sub.done,
                    "spills": dict(sub.spills),
                    **ring_summary(sub.policy),
                    "executor_events": [
                        dict(e)
                        for e in (self.executors.events if self.executors else ())
                        if e["at"] >= sub.registered_at
                    ],
                }
            )
            self._end(submission_id)
            self.metrics.publish(self, force=True)  # a run's last figures are not left unpublished
            return final

    def _executor_events_since(self, since: float) -> list[dict[str, Any]]:
        events = self.executors.events if self.executors is not None else ()
        return [dict(e) for e in events if e["at"] >= since]

    def place(
        self,
        submission_id: str,
        finished: Iterable[int],
        requests: Sequence[Request],
        pacing: Mapping[str, float] | None = None,
        lost_executors: Sequence[str] = (),
    ) -> Placement:
        """Release finished tasks, take new ones, run a round; answer what this submission can run now.

        Requests are validated before anything changes (a bad one changes
        nothing). A policy that raises or misbehaves marks its own submission
        broken (PolicyError on its calls); other submissions go on.
        """
        new = self._to_waitings(requests)
        overcommit = None if not pacing or "overcommit" not in pacing else check_overcommit(pacing["overcommit"])
        with self._lock:
            started = time.perf_counter()
            now = self.clock()
            self._expire_idle(now)
            sub = self._subs.get(submission_id)
            if sub is None:
                raise UnknownSubmission(submission_id)
            finished = list(finished)
            if new:
                _check_new(sub, new, finished)
            sub.last_seen = now
            if pacing:
                self._pace(sub, pacing, overcommit)
            self._release(sub, finished)
            if self.executors is not None:
                for name in lost_executors:
                    self.executors.lost(str(name))
                self._deliver(self.executors.finished(submission_id, finished))
            if sub.error is None:
                self._take(sub, new, now)
            decisions_before = self.decisions
            self._round(now, first=submission_id)
            if sub.error is not None:
                self._withdraw(sub)  # all or nothing: no placement this driver never hears of stays reserved
                raise sub.error
            placed = self._hand_out(submission_id, sub)
            via, handles = self._executors_answer(sub, placed)
            answer = Placement(
                placed=placed,
                infeasible=sub.infeasible,
                waiting=len(sub.waiting) + (self.executors.waiting(submission_id) if self.executors else 0),
                brain_id=self.brain_id,
                depth=shared_share(sub) if len(self._subs) > 1 and sub.adaptive else None,
                via=via,
                executors=handles,
            )
            sub.infeasible = []
            spent = time.perf_counter() - started
            self.calls += 1
            self.busy_s += spent
            self.metrics.decided(self.decisions - decisions_before, spent)
            self.metrics.publish(self)
            return answer

    def _pace(self, sub: SubmissionState, pacing: Mapping[str, float], overcommit: float | None) -> None:
        """Take what a driver's pacing says (only calls that carry pacing change the shared depth)."""
        if overcommit is not None:
            if overcommit > sub.overcommit:
                self._dirty.update(self.view.nodes)  # a deeper queue: room may have appeared everywhere
            sub.overcommit = overcommit
        if "adaptive" in pacing:
            sub.adaptive = bool(pacing["adaptive"])
        if "executors" in pacing:  # the driver's auto rule may turn them off (several demands)
            sub.on_executors = sub.executors_allowed and bool(pacing["executors"])
        if "batch" in pacing:
            batch = _positive_or_none(pacing["batch"])
            sub.batch = max(1, int(batch)) if batch is not None else 1
        if "task_p50_s" in pacing:
            sub.task_s = _positive_or_none(pacing["task_p50_s"])
        self._shared_depth = shared_depth(self._subs.values())
        pace = getattr(sub.policy, "pace", None)
        if callable(pace):
            try:
                pace(dict(pacing))
            except Exception as err:
                self._broken(sub, err)

    def place_packed(self, submission_id: str, payload: bytes) -> Placement:
        """`place` with its arguments pickled by the driver into one blob (cheaper to ship through Ray)."""
        finished, requests, pacing, *rest = pickle.loads(payload)
        return self.place(submission_id, finished, requests, pacing, rest[0] if rest else ())

    def release_dead_drivers(self, dead_jobs: set[str]) -> list[str]:
        """End submissions whose driver's Ray job is dead (killed hard: it will never unregister).

        Without this, a killed driver's reservations would hold its nodes until
        the submission expires (a minute), blocking a `--resume` of the same job.
        """
        with self._lock:
            gone = [sid for sid, sub in self._subs.items() if sub.info.get("driver_job") in dead_jobs]
            for sid in gone:
                log.warning("raysched brain: the driver of submission %s is gone; releasing its work", sid)
                self._end(sid)
            return gone

    def _end(self, submission_id: str) -> None:
        sub = self._subs.pop(submission_id, None)
        if sub is None:
            return
        self._order.remove(submission_id)
        self._shared_depth = shared_depth(self._subs.values())
        if self.executors is not None:
            self._deliver(self.executors.drop_submission(submission_id))  # its executors serve others now
        for node, demand, key in sub.ledger.values():
            if node in self.view:
                self.view.release(node, demand, key)
                self._dirty.add(node)
        for node, demand in sub.replicas.values():  # its services' replicas (`raysched.brain.replicas`)
            if node in self.view:
                self.view.release(node, demand)
                self._dirty.add(node)
        for w in sub.waiting.values():
            if w.counted and w.home is not None and w.home in self.view:
                self.view.unpark(w.home, w.task.key)
        self._held -= len(sub.waiting)

    def _expire_idle(self, now: float) -> None:
        for sid in [s for s, sub in self._subs.items() if now - sub.last_seen > self.expiry_s]:
            log.warning("raysched brain: submission %s sent nothing for %.0f s; releasing its work", sid, self.expiry_s)
            self._end(sid)
