"""The simulated attempts of one policy: compact per-task arrays, then rows in the results schema.

A million tasks must not become a million Python objects while the clock
runs, so the engine writes each task's current attempt into typed arrays
(``array.array``: cheap item writes, numpy views for free). Attempts that did
not end ok (lost with a node, cancelled, infeasible) are few and kept as rows.
`frame` turns both into the DataFrame `raysched.analysis` reads from a CSV.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np
import pandas as pd

from raysched.results.schema import BASE_COLUMNS, Status

__all__ = ["CACHE_HIT", "SPILLS", "SPILL_CODE", "Recorder", "schema_columns"]

SPILLS = ("", "bound", "wait", "spread")
SPILL_CODE = {name: code for code, name in enumerate(SPILLS)}
CACHE_HIT = "cache_hit"  # the metric column of the modelled cache: 1 hit, 0 miss


def schema_columns(*names: str) -> tuple[str, ...]:
    """Column names of the results schema, checked: a misspelt one fails on import, not as a missing column."""
    unknown = [name for name in names if name not in BASE_COLUMNS]
    if unknown:
        raise KeyError(f"not in the results schema: {unknown}")
    return names


def _in_schema_order(**columns: Any) -> dict[str, Any]:
    """The columns of a row in the schema's order; a name the schema lacks (or one missing) is a KeyError."""
    schema_columns(*columns)
    return {name: columns[name] for name in BASE_COLUMNS}


def _filled(typecode: str, value: float, n: int) -> array:
    return array(typecode, [value]) * n


class Recorder:
    """Every attempt of one simulated run."""

    def __init__(self, run_id: str, job: str, policy: str, n: int, cached: bool) -> None:
        self.run_id, self.job, self.policy = run_id, job, policy
        self.node_ids: list[str] = []
        self._node_index: dict[str, int] = {}
        self.cached = cached
        self.attempt = _filled("i", 1, n)
        self.submitted = _filled("d", 0.0, n)
        self.started = _filled("d", math.nan, n)
        self.finished = _filled("d", math.nan, n)
        self.brain_wait = _filled("d", math.nan, n)
        self.spill = _filled("b", 0, n)
        self.hit = _filled("b", -1, n)
        self.node = _filled("i", -1, n)  # where the task ended ok (-1: not, or not yet)
        self.not_ok: set[int] = set()  # tasks that ended otherwise (failed, infeasible, cancelled): few
        self.other_rows: list[dict[str, Any]] = []  # attempts that did not end ok

    def node_index(self, node_id: str) -> int:
        index = self._node_index.get(node_id)
        if index is None:
            index = self._node_index[node_id] = len(self.node_ids)
            self.node_ids.append(node_id)
        return index

    # -- what the engine reports --------------------------------------------------------------
    def drawn(self, first: int, last: int, now: float) -> None:
        self.submitted[first:last] = _filled("d", now, last - first)

    def lost(self, pos: int, node: int, error: str, retry: bool, now: float) -> None:
        """The attempt was lost with its node: a retried (or, past the limit, failed) row; maybe a new attempt."""
        self._other(pos, Status.RETRIED if retry else Status.FAILED, error, self.node_ids[node])
        if retry:
            self.attempt[pos] += 1
            self.submitted[pos] = now
            self.spill[pos], self.brain_wait[pos], self.hit[pos] = 0, math.nan, -1
            self.started[pos] = self.finished[pos] = math.nan
        else:
            self.not_ok.add(pos)

    def closed(self, pos: int, status: Status, error: str) -> None:
        """The task ended without running (infeasible, or cancelled at the end)."""
        self._other(pos, status, error, None)
        self.not_ok.add(pos)

    def unfinished(self, drawn: int) -> list[int]:
        """Of the first ``drawn`` tasks, those that have not ended (ok or otherwise)."""
        open_ = np.flatnonzero(np.frombuffer(self.node, dtype=np.int32)[:drawn] < 0).tolist()
        return [pos for pos in open_ if pos not in self.not_ok]

    def _other(self, pos: int, status: Status, error: str, node: str | None) -> None:
        self.other_rows.append(
            dict(
                pos=pos,
                attempt=self.attempt[pos],
                status=status.value,
                error=error,
                node_chosen=node,
                submitted_at=self.submitted[pos],
                spill=SPILLS[self.spill[pos]],
                brain_wait_s=self.brain_wait[pos],
            )
        )

    # -- rows -------------------------------------------------------------------------------------
    def frame(
        self,
        task_ids: np.ndarray,
        keys: np.ndarray,
        demand_codes: np.ndarray,
        demand_texts: list[str],
        metrics: dict[str, np.ndarray],
    ) -> pd.DataFrame:
        """Every attempt as rows of the results schema (ok rows in task order, then the others)."""
        ok = np.flatnonzero(np.frombuffer(self.node, dtype=np.int32) >= 0)
        ids = np.array(self.node_ids, dtype=object)
        texts = np.array(demand_texts, dtype=object)
        started = np.frombuffer(self.started)[ok]
        finished = np.frombuffer(self.finished)[ok]
        submitted = np.frombuffer(self.submitted)[ok]
        nodes = ids[np.frombuffer(self.node, dtype=np.int32)[ok]]
        columns = _in_schema_order(
            run_id=self.run_id,
            job=self.job,
            policy=self.policy,
            task_id=task_ids[ok],
            key=keys[ok],
            attempt=np.frombuffer(self.attempt, dtype=np.int32)[ok],
            status=Status.OK.value,
            error="",
            node_chosen=nodes,
            node_ran=nodes,
            submitted_at=submitted,
            started_at=started,
            finished_at=finished,
            wait_s=started - submitted,
            run_s=finished - started,
            demand=texts[demand_codes[ok]],
            spill=np.array(SPILLS, dtype=object)[np.frombuffer(self.spill, dtype=np.int8)[ok]],
            brain_wait_s=np.frombuffer(self.brain_wait)[ok],
            replica="",  # the simulator replays tasks only: no row is a call to a service
            via="",  # nor says how a real attempt would have reached its node
            executor="",
            latency_s=math.nan,  # the simulator does not model a result's trip back to the driver
        )
        extra = self._metric_columns(ok, metrics)
        rows = pd.DataFrame({**columns, **extra}, index=pd.RangeIndex(len(ok)))
        if not self.other_rows:
            return rows
        others = pd.DataFrame(self.other_rows)
        pos = others.pop("pos").to_numpy()
        others = others.assign(
            run_id=self.run_id,
            job=self.job,
            policy=self.policy,
            task_id=task_ids[pos],
            key=keys[pos],
            node_ran=None,
            started_at=math.nan,
            finished_at=math.nan,
            wait_s=math.nan,
            run_s=math.nan,
            demand=texts[demand_codes[pos]],
            replica="",
            via="",
            executor="",
            latency_s=math.nan,
        )
        for name in extra:
            others[name] = math.nan
        return pd.concat([rows, others[list(rows.columns)]], ignore_index=True)

    def _metric_columns(self, ok: np.ndarray, metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """cache_hit (when the cache is modelled) and the trace's own metrics, which belong to the task."""
        out: dict[str, np.ndarray] = {}
        if self.cached:
            out[CACHE_HIT] = np.frombuffer(self.hit, dtype=np.int8)[ok].astype(np.int64)
        for name, values in metrics.items():
            out[name] = values[ok]
        return out
