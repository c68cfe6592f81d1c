"""The simulated cluster: its nodes (``--nodes``, ``--config``, or the run's sidecar) and churn events.

Node specs: ``COUNTxCPUS`` groups separated by commas, each with optional
extra resources: ``10000x16``, ``4x2,1x4``, ``2x8+GPU=1+ssd=2``. Nodes from a
spec or a config get virtual ids ``n000``, ``n001``, ... (short enough that
8-character node columns stay unique); nodes recorded in the sidecar keep their
Ray ids, so hash places keys on the very ring the recorded run had.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from raysched.brain.membership import schedulable_capacity
from raysched.config import ConfigError, load_config
from raysched.results.sidecar import read_runs
from raysched.sim import SimInputError

__all__ = [
    "AddNode",
    "Cluster",
    "KillNode",
    "check_kills",
    "parse_add_node",
    "parse_kill_node",
    "parse_nodes",
    "resolve_cluster",
    "virtual_ids",
]

Capacity = dict[str, float]
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_NAME = r"[A-Za-z_][\w.:-]*"
_GROUP = re.compile(rf"^\s*(\d+)\s*x\s*({_NUMBER})((?:\s*\+\s*{_NAME}\s*=\s*{_NUMBER})*)\s*$")
_EXTRA = re.compile(rf"\+\s*({_NAME})\s*=\s*({_NUMBER})")
_SPEC_HELP = "expected COUNTxCPUS[+NAME=AMOUNT...] groups separated by commas, e.g. 10000x16 or 4x2,1x4+ssd=2"
MAX_NODES = 1_000_000


@dataclass(frozen=True)
class KillNode:
    """Drop a node at virtual second ``at``: the named one, or else the busiest live one then."""

    at: float
    node: str | None = None


@dataclass(frozen=True)
class AddNode:
    """Add nodes at virtual second ``at``."""

    at: float
    capacities: tuple[Capacity, ...]


@dataclass(frozen=True)
class Cluster:
    """Initial nodes (id -> capacity, in id order) and where they came from (for messages and the sidecar)."""

    nodes: Mapping[str, Capacity]
    source: str
    virtual: bool = True  # False: the recorded Ray node ids


def parse_nodes(spec: str, what: str = "--nodes") -> list[Capacity]:
    """Capacities from a node spec; SimInputError naming ``what`` on a bad one."""
    capacities: list[Capacity] = []
    for group in str(spec).split(","):
        match = _GROUP.match(group)
        if match is None:
            raise SimInputError(f"bad {what} spec {spec!r}: {_SPEC_HELP}")
        count, cpus, extras = int(match.group(1)), _amount(spec, what, match.group(2)), match.group(3)
        capacity = {"CPU": cpus}
        for name, amount in _EXTRA.findall(extras):
            capacity[name] = _amount(spec, what, amount)
        if count < 1 or len(capacities) + count > MAX_NODES:
            raise SimInputError(f"bad {what} spec {spec!r}: node counts must be from 1 to {MAX_NODES:,} in all")
        capacities.extend(dict(capacity) for _ in range(count))
    return capacities


def _amount(spec: str, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SimInputError(f"bad {what} spec {spec!r}: {text!r} is not an amount >= 0; {_SPEC_HELP}")
    return value


def virtual_ids(count: int, start: int = 0) -> list[str]:
    """``n000``, ``n001``, ...: at most 8 characters up to ten million nodes."""
    width = max(3, len(str(max(start + count - 1, 0))))
    return [f"n{i:0{width}d}" for i in range(start, start + count)]


def resolve_cluster(nodes_spec: str | None, config_path: str | None, trace_path: Path, run_id: str) -> Cluster:
    """The initial cluster: --nodes, else --config's local_nodes, else the nodes the run's sidecar recorded."""
    if nodes_spec is not None and config_path is not None:
        raise SimInputError("give either --nodes or --config, not both")
    if nodes_spec is not None:
        capacities = parse_nodes(nodes_spec)
        return Cluster(dict(zip(virtual_ids(len(capacities)), capacities, strict=True)), f"--nodes {nodes_spec}")
    if config_path is not None:
        try:
            local = load_config(config_path).local_nodes
        except ConfigError as err:
            raise SimInputError(str(err)) from None
        capacities = [
            {
                "CPU": float(n.num_cpus),
                **({"GPU": float(n.num_gpus)} if n.num_gpus else {}),
                **{k: float(v) for k, v in n.resources.items()},
            }
            for n in local
        ]
        return Cluster(dict(zip(virtual_ids(len(capacities)), capacities, strict=True)), f"--config {config_path}")
    record = read_runs(trace_path).get(run_id)
    recorded = ((record or {}).get("cluster") or {}).get("nodes")
    if not recorded:
        raise SimInputError(
            f"no cluster recorded for run {run_id} (no sidecar {trace_path.with_suffix('.json').name} "
            "beside the CSV, or it lacks the run); give --nodes (e.g. 4x2) or --config"
        )
    try:
        nodes = {str(n["node_id"]): schedulable_capacity(n["capacity"]) for n in recorded}
    except (KeyError, TypeError, AttributeError):
        raise SimInputError(
            f"{trace_path.with_suffix('.json')}: the recorded cluster of run {run_id} is damaged; "
            "give --nodes or --config"
        ) from None
    return Cluster(dict(sorted(nodes.items())), f"the nodes recorded for run {run_id}", virtual=False)


def parse_kill_node(text: str) -> KillNode:
    """``T`` (the busiest live node at T) or ``T:NODE``."""
    at, _, node = str(text).partition(":")
    return KillNode(_when(at, "--kill-node", text, "T or T:NODE, e.g. 5 or 5:n003"), node.strip() or None)


def parse_add_node(text: str) -> AddNode:
    """``T:SPEC``: one node of CPUS[+NAME=AMOUNT...], or a COUNTxCPUS spec."""
    at, sep, spec = str(text).partition(":")
    example = "T:CPUS[+NAME=AMOUNT...] or T:COUNTxCPUS, e.g. 5:16 or 5:2x8+GPU=1"
    if not sep or not spec.strip():
        raise SimInputError(f"bad --add-node {text!r}: expected {example}")
    spec = spec.strip()
    capacities = parse_nodes(spec if "x" in spec.split("+")[0] else f"1x{spec}", "--add-node")
    return AddNode(_when(at, "--add-node", text, example), tuple(capacities))


def _when(text: str, flag: str, whole: str, example: str) -> float:
    try:
        at = float(text)
    except ValueError:
        at = math.nan
    if not math.isfinite(at) or at < 0:
        raise SimInputError(f"bad {flag} {whole!r}: the time must be virtual seconds >= 0; expected {example}")
    return at


def check_kills(kills: tuple[KillNode, ...], known: set[str]) -> None:
    """A named node must be one the simulation has (initially or added)."""
    for kill in kills:
        if kill.node is not None and kill.node not in known:
            some = ", ".join(sorted(known)[:4])
            raise SimInputError(f"--kill-node {kill.at:g}:{kill.node}: no such simulated node (nodes: {some}, ...)")
