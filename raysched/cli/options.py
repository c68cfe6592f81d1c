"""Flags shared by the `raysched` commands, parsed by the same functions as the config file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from raysched.config import DEFAULT_EXECUTOR_IDLE_S, EXECUTOR_MODES, WORD_SETTINGS, ConfigError, Settings, load_config
from raysched.core.ring import DEFAULT_LOAD_FACTOR
from raysched.results.outcome import ExitCode

__all__ = ["BadInput", "placement_options", "settings_from_flags"]


class BadInput(click.ClickException):
    """A user mistake: one `Error:` line on stderr, exit 2, no traceback."""

    exit_code = ExitCode.BAD_INPUT


class _Parsed(click.ParamType):
    """A flag parsed by the same function the config file uses (one validator per setting)."""

    def __init__(self, name: str, parse: Callable[[Any], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return self._parse(value)
        except ConfigError as err:
            self.fail(str(err), param, ctx)


LOAD_FACTOR = _Parsed("C|off", WORD_SETTINGS["load_factor"])
LOCALITY_WAIT = _Parsed("S|auto", WORD_SETTINGS["locality_wait"])
OVERCOMMIT = _Parsed("X|auto", WORD_SETTINGS["overcommit"])
BATCH = _Parsed("auto|off|N", WORD_SETTINGS["batch"])


def placement_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The placement flags shared by `submit` and `bench`."""
    options = [
        click.option(
            "--policy",
            "-p",
            default=None,
            help="hash | random | p2c | greedy | pack | module:Name (your own). Default: hash.",
        ),
        click.option(
            "--service-policy",
            default=None,
            help="Where a service's replicas go: greedy (least allocated: spread) | pack (most allocated) | "
            "random | p2c | module:Name. Their calls are routed by --policy. Default: greedy.",
        ),
        click.option(
            "--service-spread",
            default=None,
            metavar="LABEL",
            help="Spread each service's replicas over the values of this Ray node label (failure domains: "
            "zone, rack), at most one apart; within a value, --service-policy chooses.",
        ),
        click.option(
            "--address",
            default=None,
            help="Join an existing cluster: HOST:PORT, 'auto', or ray://HOST:PORT. "
            "Default: $RAY_ADDRESS, else an embedded local cluster on 127.0.0.1.",
        ),
        click.option(
            "--local-nodes",
            type=click.IntRange(min=1),
            default=None,
            help="Nodes of the embedded cluster (the pattern of configs/local.yaml, repeated). Default: 4.",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="YAML config (see configs/local.yaml for every key); flags override it.",
        ),
        click.option(
            "--seed",
            type=click.IntRange(min=0),
            default=None,
            help="Seed for random and p2c, so a run can be repeated.",
        ),
        click.option(
            "--vnodes",
            type=click.IntRange(min=1, max=100_000),
            default=None,
            help="Hash ring points per CPU of a node (default 100). More: smoother spread, more memory.",
        ),
        click.option(
            "--load-factor",
            type=LOAD_FACTOR,
            default=None,
            help="Bounded loads for hash: no node takes more than C x its fair share of the work "
            f"assigned (default {DEFAULT_LOAD_FACTOR}). Lower: flatter load, more keys off their home; "
            "'off': pure ring.",
        ),
        click.option(
            "--locality-wait",
            type=LOCALITY_WAIT,
            default=None,
            help="Seconds a hash task waits for its busy home while a slot idles elsewhere, before it takes "
            "a free slot (default auto: the job's median task time, 0.2 s to 10 s). Longer: more cache "
            "hits, more idle slots.",
        ),
        click.option(
            "--keys-per-node",
            type=click.IntRange(min=1),
            default=None,
            help="Hash gives no node more than N distinct keys while another has room: your node cache's "
            "size in keys (@raysched.task(keys_per_node=N) in the job says the same). Default: learned from "
            "the cache_hit your tasks return, if they do.",
        ),
        click.option(
            "--max-inflight",
            type=click.IntRange(min=1),
            default=None,
            help="Tasks held at once (running, queued at nodes, or waiting at the brain). "
            "Default: 2 x cluster CPUs x overcommit, at least 64.",
        ),
        click.option(
            "--overcommit",
            type=OVERCOMMIT,
            default=None,
            help="Work a node may hold, as a multiple of its capacity (running + queued there). "
            "Default auto: a queue deep enough that no slot idles waiting for a round trip "
            "(Little's law, measured); 1 = only what runs now (exact, slower for short tasks).",
        ),
        click.option(
            "--batch",
            type=BATCH,
            default=None,
            help="Tiny tasks per Ray task. Default auto: batch tasks far shorter than Ray's own "
            "per-task cost (under 2 ms); off: one Ray task each; N: N at most. Rows stay per task.",
        ),
        click.option(
            "--executors",
            type=click.Choice(EXECUTOR_MODES, case_sensitive=False),
            default=None,
            help="Run placed tasks as calls on long-lived executor actors (one per task slot of a demand on a "
            "node, shared by every submission, held while they live) instead of one Ray task each. "
            "Default auto (and on): on while the job's tasks have one demand, except for jobs that need a "
            "working_dir (their code travels in a runtime env) and demands of nothing; off: plain pinned Ray "
            "tasks. The brain still places every task.",
        ),
        click.option(
            "--executor-idle",
            "executor_idle_s",
            type=click.FloatRange(min=0.1),
            default=None,
            metavar="S",
            help=f"Seconds an executor with no call keeps its slot before it retires (default "
            f"{DEFAULT_EXECUTOR_IDLE_S:g}). Longer: warm executors for the next run; shorter: resources back "
            "to other Ray work sooner. Shared: the latest submission's value holds.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_from_flags(config_path: str | None, **flags: Any) -> Settings:
    """Config file first, then every flag the user actually gave (flag > file > $RAY_ADDRESS > embedded)."""
    try:
        settings = load_config(config_path)
    except ConfigError as err:
        raise BadInput(str(err)) from None
    given = {k: v for k, v in flags.items() if v is not None}
    for name in WORD_SETTINGS:  # their words parse to None, so None cannot mean "not given"
        if name in flags and flags[name] is None and _flag_given(name):
            given[name] = None  # --load-factor off, --overcommit auto, ...
    return replace(settings, **given)


def _flag_given(name: str) -> bool:
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"
