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
        """This submission's placements to answer now, each with its executor (``sub.via``) where it has one.

        Placements on one node travel in batches of the driver's batch size (its pacing), each batch as one
        call: one executor is handed out per batch, in the order they were placed.
        """
        placed, sub.outbox = sub.outbox, []
        pool = self.executors
        if pool is None or (not pool.executors and not sub.on_executors):
            out = placed
        else:
            out = []
            runs: dict[str, list[Placed]] = {}
            for entry in placed:
                runs.setdefault(entry[1], []).append(entry)
            for node, entries in runs.items():
                for i in range(0, len(entries), sub.batch):
                    out.extend(self._hand_out_batch(sid, sub, node, entries[i : i + sub.batch]))
        out.extend(sub.served)
        sub.served = []
        return out

    def _hand_out_batch(self, sid: str, sub: SubmissionState, node: str, batch: list[Placed]) -> list[Placed]:
        pool = self.executors
        assert pool is not None
        by_demand: dict[Any, list[Placed]] = {}
        for entry in batch:
            demand = sub.ledger[entry[0]][1]
            by_demand.setdefault(tuple(sorted(demand.items())), []).append(entry)
        out: list[Placed] = []
        for shape, entries in by_demand.items():
            demand = dict(shape)
            uids = [uid for uid, *_ in entries]
            e = pool.hand_out(sid, uids, node, demand) if sub.on_executors else False
            if e is None:
                for uid, _node, spill, waited in entries:
                    pool.wait(sid, uid, node, spill, waited, demand)
                continue
            if isinstance(e, Executor):
                for uid in uids:
                    sub.via[uid] = e.name
            else:  # plain tasks: idle executors there give them their room
                pool.room_for_tasks(node)
            out.extend(entries)
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
