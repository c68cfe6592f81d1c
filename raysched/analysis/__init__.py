"""`raysched analyze`: results CSVs in, throughput, latency and balance per policy out.

`loading` reads results CSVs, `labels` names their runs, `figures` computes each run's figures,
`render` shows them (tables, JSON, tidy CSV) and `plots` draws them; `metric_names` spells the
figures' names. The names below are the library API
(`from raysched import analysis; analysis.summarize(analysis.load([...]))`).
"""

from raysched.analysis.errors import AnalysisInputError, AnalysisWarning
from raysched.analysis.figures import hit_rate, per_node, summarize
from raysched.analysis.labels import RunInfo, run_labels
from raysched.analysis.loading import COLUMNS, SOURCE, load
from raysched.analysis.metric_names import (
    M_AFFINITY,
    M_ATTEMPTS,
    M_BYTES,
    M_CANCELLED,
    M_CV,
    M_FAILED,
    M_HIT_RATE,
    M_IMBALANCE,
    M_INFEASIBLE,
    M_ITEMS,
    M_KEYS,
    M_KEYS_SPREAD,
    M_MAKESPAN,
    M_NODES,
    M_OK,
    M_RETRIED,
    M_SPILLED,
    M_SPILLED_BOUND,
    M_SPILLED_SPREAD,
    M_SPILLED_WAIT,
    M_SPREAD_MOST,
    M_THROUGHPUT,
    QUANTILES,
)
from raysched.analysis.render import (
    format_value,
    render_node_table,
    render_table,
    summary_to_dict,
    summary_to_json,
    summary_to_tidy,
)

__all__ = [
    "COLUMNS",
    "M_AFFINITY",
    "M_ATTEMPTS",
    "M_BYTES",
    "M_CANCELLED",
    "M_CV",
    "M_FAILED",
    "M_HIT_RATE",
    "M_IMBALANCE",
    "M_INFEASIBLE",
    "M_ITEMS",
    "M_KEYS",
    "M_KEYS_SPREAD",
    "M_MAKESPAN",
    "M_NODES",
    "M_OK",
    "M_RETRIED",
    "M_SPILLED",
    "M_SPILLED_BOUND",
    "M_SPILLED_SPREAD",
    "M_SPILLED_WAIT",
    "M_SPREAD_MOST",
    "M_THROUGHPUT",
    "QUANTILES",
    "SOURCE",
    "AnalysisInputError",
    "AnalysisWarning",
    "RunInfo",
    "format_value",
    "hit_rate",
    "load",
    "per_node",
    "render_node_table",
    "render_table",
    "run_labels",
    "summarize",
    "summary_to_dict",
    "summary_to_json",
    "summary_to_tidy",
]
