"""Per-node figures a driver sends with its brain calls, as pacing entries ``<prefix><node id>``: a pair per node
(an amount and how many tasks it is over), read back leniently (they are hints: a bad entry is ignored)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["fold_recent_means", "read_pairs", "report_pairs"]


def report_pairs(amount_prefix: str, count_prefix: str, pairs: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Per-node (amount, tasks) as pacing entries for one brain call."""
    out: dict[str, float] = {}
    for node, (amount, tasks) in pairs.items():
        out[amount_prefix + node] = float(amount)
        out[count_prefix + node] = float(tasks)
    return out


def read_pairs(
    amount_prefix: str,
    count_prefix: str,
    stats: Mapping[str, object],
    valid: Callable[[float, float], bool],
    missing: float | None = None,
) -> dict[str, tuple[float, float]]:
    """The per-node (amount, tasks) a brain call carried: tasks a positive number, ``valid(amount, tasks)``; a node
    without its amount entry takes ``missing`` (None: the node is ignored)."""
    out: dict[str, tuple[float, float]] = {}
    for name, value in stats.items():
        if not name.startswith(count_prefix) or not isinstance(value, (int, float)) or not value > 0:
            continue
        node = name[len(count_prefix) :]
        amount = stats.get(amount_prefix + node, missing)
        if isinstance(amount, (int, float)) and valid(float(amount), float(value)):
            out[node] = (float(amount), float(value))
    return out


def fold_recent_means(
    means: dict[str, float], seen: dict[str, float], pairs: Mapping[str, tuple[float, float]], window: float
) -> None:
    """Fold each node's (amount, tasks) into its recent mean per task (about the last ``window`` tasks weigh in;
    a node's first report is its mean), and count its tasks in ``seen``."""
    for node, (amount, tasks) in pairs.items():
        before = seen.get(node, 0.0)
        mean = means.get(node, amount / tasks)
        means[node] = mean + min(1.0, tasks / min(window, before + tasks)) * (amount / tasks - mean)
        seen[node] = before + tasks
