"""The names of the summary's figures (its rows); the unit is part of the name.

Simulate, bench and the plots read figures out of a summary by these names, so each is spelled once.
"""

from __future__ import annotations

M_ATTEMPTS = "attempts"
M_OK = "tasks ok"
M_FAILED = "tasks failed"
M_RETRIED = "attempts retried"
M_INFEASIBLE = "tasks infeasible"
M_CANCELLED = "tasks cancelled"
M_MAKESPAN = "makespan (s)"
M_STARTUP = "start-up (s)"
M_THROUGHPUT = "throughput (tasks/s)"
M_NODES = "nodes used"
M_IMBALANCE = "imbalance (max/mean)"
M_IMBALANCE_CAPACITY = "imbalance by capacity (max/mean)"
M_CV = "CV tasks/node (pop. std/mean)"
M_KEYS = "keys"
M_AFFINITY = "key affinity (%)"
M_SPILLED = "spilled (%)"
M_SPILLED_BOUND = "spilled: bound"
M_SPILLED_WAIT = "spilled: wait"
M_SPILLED_SPREAD = "spilled: spread"
M_KEYS_SPREAD = "keys spread (hot)"
M_SPREAD_MOST = "most nodes for one hot key"
M_HIT_RATE = "cache hit rate (%)"
M_REPLICAS = "replicas used"
M_REPLICA_IMBALANCE = "replica imbalance (max/mean)"
M_REPLICA_AFFINITY = "key affinity by replica (%)"
M_CALLS_OK = "calls ok"
M_CALL_THROUGHPUT = "throughput (calls/s)"
M_CALLS_OFF_OWNER = "calls off ring owner (%)"
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
#: The timing columns whose quantiles the summary shows, in its order (over every ok row, tasks and calls).
LATENCY_COLUMNS: tuple[str, ...] = ("run_s", "wait_s", "brain_wait_s", "latency_s")
#: The timings of calls to a service, in call terms: (figure, column), quantiles over ok calls only.
CALL_TIMINGS: tuple[tuple[str, str], ...] = (
    ("call latency", "latency_s"),  # the caller's send to the result back in the driver
    ("queue wait", "wait_s"),  # the send to the call's start on its replica (the router's wait included)
    ("service time", "run_s"),  # the method's own run on the replica
)


def rate_name(metric: str) -> str:
    """A task metric summed per second of the makespan: ``items`` -> ``items/s``."""
    return f"{metric}/s"


M_ITEMS = rate_name("items")
M_BYTES = rate_name("bytes")


def latency_name(column: str, quantile: str) -> str:
    """One latency figure: ``latency_name("wait_s", "p95")`` -> ``wait_s p95 (s)``."""
    return f"{column} {quantile} (s)"


def latency_names(column: str) -> list[str]:
    """The quantile figures of one timing column, in `QUANTILES` order."""
    return [latency_name(column, name) for name, _ in QUANTILES]
