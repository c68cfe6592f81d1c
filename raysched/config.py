"""Submission settings from a YAML config file, with command-line flags on top.

Every key is documented in configs/local.yaml. Unknown keys are errors, not
silently ignored: a typo in a config should never change what runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from raysched.brain.executors import DEFAULT_IDLE_S as DEFAULT_EXECUTOR_IDLE_S
from raysched.cluster import DEFAULT_LOCAL_NODES, DEFAULT_SYSTEM_CONFIG, LocalNode
from raysched.core.ring import check_load_factor
from raysched.core.view import check_overcommit
from raysched.policies.base import DEFAULT_LOAD_FACTOR, DEFAULT_VNODES_PER_CPU, PolicyOptions


class ConfigError(ValueError):
    """A config file or flag value that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class Settings:
    """Everything `raysched submit` needs to know besides the job file: a config file's keys, flags on top.

    Build one with `load_config` (a YAML file, every key documented in configs/local.yaml) or by
    keyword, and pass it to `raysched.submit`; its keyword options override it. The fields are the
    flags' settings by their Python names (``load_factor`` for ``--load-factor``), in parsed form.

    Attributes:
        policy: where tasks go (and how calls to a service are routed): hash, random, p2c, greedy,
            pack or ``module:Name``.
        address: the cluster to join; None: ``$RAY_ADDRESS``, else an embedded local cluster.
        local_nodes: the embedded cluster's nodes (``local_nodes`` of the config).
        system_config: Ray system config for the embedded cluster's head.
        out: the results CSV; None: ``results/<job>-<policy>-<UTC time>.csv``.
        seed: seed for random and p2c; None: fresh entropy.
        vnodes: hash ring points per CPU of a node.
        load_factor: bounded loads' c for hash; None: off (pure ring).
        locality_wait: seconds a hash task waits for its busy home; None: adaptive (one median task time).
        keys_per_node: distinct keys hash gives a node at most (its cache size); None: learned from
            the tasks' ``cache_hit`` when they report it.
        max_inflight: tasks held at once; None: adaptive.
        retries: re-placements of a task whose function raised.
        max_failures: stop after this many tasks failed for good; None: never.
        overcommit: work a node may hold as a multiple of its capacity; None: adaptive queue depth.
        batch: tiny tasks per Ray task; None: auto, 1: off.
        service_policy: where service replicas go (a node policy).
        service_spread: a Ray node label whose values replicas spread over; None: no spreading.
    """

    policy: str = "hash"
    address: str | None = None
    local_nodes: tuple[LocalNode, ...] = DEFAULT_LOCAL_NODES
    system_config: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_SYSTEM_CONFIG))
    out: str | None = None
    seed: int | None = None
    vnodes: int = DEFAULT_VNODES_PER_CPU
    load_factor: float | None = DEFAULT_LOAD_FACTOR
    locality_wait: float | None = None  # None: adaptive
    keys_per_node: int | None = None  # None: learned from cache_hit (when tasks report it)
    max_inflight: int | None = None  # None: adaptive
    retries: int = 0
    max_failures: int | None = None
    overcommit: float | None = None  # None: adaptive queue depth (pacing)
    batch: int | None = None  # None: auto; 1: off
    service_policy: str = "greedy"  # where service replicas go (a node policy); calls are routed by `policy`
    service_spread: str | None = None  # a Ray node label whose values replicas spread over (failure domains)
    executors: str = "auto"  # tasks run as calls on shared long-lived executors: auto | on | off
    executor_idle_s: float = DEFAULT_EXECUTOR_IDLE_S  # an executor with no call for this long retires


KNOWN_KEYS = {f.name for f in fields(Settings)}
# What runs and where: the rest of the settings are the run's options, recorded with its results.
_WHAT_AND_WHERE = ("policy", "address", "local_nodes", "system_config", "out")
RUN_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(Settings) if f.name not in _WHAT_AND_WHERE)
# The options the placement policy itself reads.
POLICY_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(PolicyOptions))


def run_options(settings: Settings) -> dict[str, Any]:
    """The run's options by name, as its sidecar records them."""
    return {name: getattr(settings, name) for name in RUN_OPTIONS}


def policy_options(settings: Settings) -> PolicyOptions:
    """The policy's share of the settings (raises ValueError on a bad value)."""
    return PolicyOptions(**{name: getattr(settings, name) for name in POLICY_OPTIONS})


def parse_load_factor(value: Any) -> float | None:
    """`off` (or null) turns bounded loads off; otherwise a number >= 1."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return None  # YAML reads a bare `off` as False
    if value is True:
        raise ConfigError("load factor must be a number >= 1 or 'off', got true")
    try:
        return check_load_factor(value)
    except ValueError as err:
        raise ConfigError(f"{err} (or 'off')") from None


def parse_auto_number(name: str, value: Any, minimum: float) -> float | None:
    """`auto` (or null) means adaptive; otherwise a finite number >= minimum."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < minimum:
        raise ConfigError(f"{name} must be 'auto' or a number >= {minimum:g}, got {value!r}")
    return number


def parse_overcommit(value: Any) -> float | None:
    """`auto` (or null): the queue depth the driver measures; otherwise a finite number >= 1."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        number = value
    try:
        return check_overcommit(number)
    except ValueError as err:
        raise ConfigError(f"{err} (or 'auto')") from None


def parse_locality_wait(value: Any) -> float | None:
    """`auto` (or null): one median task time; otherwise seconds >= 0."""
    return parse_auto_number("locality_wait", value, 0)


EXECUTOR_MODES = ("auto", "on", "off")


def parse_executors(value: Any) -> str:
    """`auto` (or null): executors where they are faster (see `raysched.driver.executors`); `on`; `off`."""
    if value is None:
        return "auto"
    if isinstance(value, bool):  # YAML reads a bare on/off as true/false
        return "on" if value else "off"
    word = value.strip().lower() if isinstance(value, str) else value
    if word not in EXECUTOR_MODES:
        raise ConfigError(f"executors must be one of auto, on, off; got {value!r}")
    return str(word)


def parse_batch(value: Any) -> int | None:
    """`auto` (or null): batch tiny tasks when measured; `off`: never (1); N: N tasks per Ray task."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return 1  # YAML reads a bare `off` as False
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise ConfigError(f"batch must be 'auto', 'off' or a whole number of tasks from 1 to 100,000, got {value!r}")
    return value


# Settings that take a word as well as a number: each parsed by its one function, from a file or a flag. Their
# words parse to None, so None cannot mean "not given" for them.
WORD_SETTINGS: Mapping[str, Callable[[Any], Any]] = {
    "load_factor": parse_load_factor,
    "locality_wait": parse_locality_wait,
    "overcommit": parse_overcommit,
    "batch": parse_batch,
}


def _local_nodes(value: Any) -> tuple[LocalNode, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("local_nodes must be a non-empty list of {num_cpus, num_gpus, resources, labels}")
    nodes = []
    for i, spec in enumerate(value):
        if not isinstance(spec, dict) or set(spec) - {"num_cpus", "num_gpus", "resources", "labels"}:
            raise ConfigError(f"local_nodes[{i}] must have only num_cpus, num_gpus, resources, labels; got {spec!r}")
        resources = spec.get("resources") or {}
        if not isinstance(resources, dict):
            raise ConfigError(f"local_nodes[{i}].resources must be a mapping of name to amount")
        labels = spec.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ConfigError(f"local_nodes[{i}].labels must be a mapping of label name to a string value")
        where = f"local_nodes[{i}]"
        nodes.append(
            LocalNode(
                num_cpus=_number(f"{where}.num_cpus", spec.get("num_cpus", 1), float, 0),
                num_gpus=_number(f"{where}.num_gpus", spec.get("num_gpus", 0), float, 0),
                resources={
                    name: _number(f"{where}.resources.{name}", amount, float, 0) for name, amount in resources.items()
                },
                labels=labels,
            )
        )
    return tuple(nodes)


def _number(key: str, value: Any, kind: type, minimum: float) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (kind is int and not float(value).is_integer())
    ):
        raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    return kind(value)


def settings_from_mapping(data: Mapping[str, Any], base: Settings = Settings()) -> Settings:
    """Validate a config mapping and apply it over `base`."""
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(KNOWN_KEYS))}")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key in WORD_SETTINGS:
            changes[key] = WORD_SETTINGS[key](value)
        elif key == "local_nodes":
            changes[key] = _local_nodes(value)
        elif key == "system_config":
            if not isinstance(value, dict):
                raise ConfigError("system_config must be a mapping of Ray system config names to values")
            changes[key] = value
        elif key in ("address", "out", "policy", "service_policy", "service_spread"):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{key} must be a string, got {value!r}")
            changes[key] = value
        elif key == "executors":
            changes[key] = parse_executors(value)
        elif key == "executor_idle_s":
            changes[key] = _number(key, value, float, 0.1)
        elif key in ("seed", "max_inflight", "max_failures", "keys_per_node") and value is None:
            changes[key] = None
        elif key in ("seed", "vnodes", "max_inflight", "retries", "max_failures", "keys_per_node"):
            changes[key] = _number(key, value, int, _INT_MINIMUM[key])
    return replace(base, **changes)


_INT_MINIMUM = {"seed": 0, "vnodes": 1, "max_inflight": 1, "retries": 0, "max_failures": 1, "keys_per_node": 1}


def load_config(path: str | Path | None) -> Settings:
    """Settings from a YAML file (or the defaults when no file is given)."""
    if path is None:
        return Settings()
    config_path = Path(path)
    try:
        text = config_path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config {path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        return Settings()
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return settings_from_mapping(data)
    except ConfigError as err:
        raise ConfigError(f"config {path}: {err}") from None
