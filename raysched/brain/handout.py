"""Handing out executors with placements (`raysched.brain.executors` holds the rules).

A submission that runs on executors gets, with each placement, the executor
its task runs on, and the actor handles of executors its driver has not seen.
A placement with no executor free for it waits in the pool and goes out on a
later call, when one drains; a placement whose node left goes out as a plain
pinned task (it then fails fast and is placed again).

Reads and writes: ``executors``; each submission's ``outbox``, ``via``, ``served`` and ``executors_sent``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from raysched.brain.executors import Executor, Waiting
from raysched.brain.state import BrainState, Placed, SubmissionState


class ExecutorHandOut(BrainState):
    """Executors handed out with placements, and placements that wait for one."""

    def _hand_out(self, sid: str, sub: SubmissionState) -> list[Placed]:
        """This submission's placements to answer now, each with its executor (``sub.via``) where it has one."""
        placed, sub.outbox = sub.outbox, []
        pool = self.executors
        if pool is None or (not pool.executors and not sub.on_executors):
            out = placed
        else:
            out = []
            for uid, node, spill, waited in placed:
                demand = sub.ledger[uid][1]
                e = pool.hand_out(sid, uid, node, demand) if sub.on_executors else False
                if e is None:
                    pool.wait(sid, uid, node, spill, waited, demand)
                    continue
                if isinstance(e, Executor):
                    sub.via[uid] = e.name
                else:  # a plain task: idle executors there give it their room
                    pool.room_for_task(node, demand)
                out.append((uid, node, spill, waited))
        out.extend(sub.served)
        sub.served = []
        return out

    def _deliver(self, served: Iterable[tuple[Waiting, Executor | bool]]) -> None:
        """Placements that waited for an executor go out on their submission's next call."""
        for (sid, uid, node, spill, waited, _shape), e in served:
            sub = self._subs.get(sid)
            if sub is None or uid not in sub.ledger:
                continue
            sub.served.append((uid, node, spill, waited))
            if isinstance(e, Executor):
                sub.via[uid] = e.name

    def _executors_answer(self, sub: SubmissionState, placed: list[Placed]) -> tuple[dict[int, str], dict[str, Any]]:
        """The answer's executor per placed uid, and the handles of executors new to this driver."""
        pool = self.executors
        if pool is None or not sub.via:
            return {}, {}
        via: dict[int, str] = {}
        handles: dict[str, Any] = {}
        for uid, _node, _spill, _waited in placed:
            name = sub.via.pop(uid, None)
            e = pool.executors.get(name) if name is not None else None
            if e is None:
                continue  # lost meanwhile: the task runs pinned, as a plain task
            via[uid] = e.name
            if e.name not in sub.executors_sent:
                sub.executors_sent.add(e.name)
                handles[e.name] = e.handle
        return via, handles

    def _executors_released(self, released: Iterable[Waiting]) -> None:
        """Placements that waited for executors of a node that left: they go out as plain tasks."""
        self._deliver((waiting, False) for waiting in released)
