"""`raysched simulate`: the thin click layer over `raysched.sim.replay`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from raysched.analysis import AnalysisInputError, render_node_table, render_table, summary_to_json
from raysched.cli.options import LOAD_FACTOR, BadInput
from raysched.policies import POLICY_NAMES
from raysched.sim.cluster import parse_add_node, parse_kill_node
from raysched.sim.replay import SimInputError, SimulateSettings, SimulationReport, SimulationStats, simulate, validate
from raysched.sim.sweep import SWEEPABLE, Sweep, parse_sweep, render_sweep, sweep_records

__all__ = ["simulate_command"]

NODE_ROWS = 12  # per run: the busiest and least busy nodes of a what-if (--json lists every node)


def _warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def _done(policy: str, stats: SimulationStats) -> None:
    click.echo(
        f"  {policy}: {stats.decisions:,} brain decisions in {stats.calls:,} calls, {stats.virtual_s:.3g} "
        f"virtual s, simulated in {stats.wall_s:.2f} s ({stats.decisions_per_s:,.0f} decisions/s)",
        err=True,
    )


@click.command("simulate")
@click.argument("trace", type=click.Path(path_type=Path))
@click.option(
    "--policies",
    default=",".join(POLICY_NAMES),
    show_default=True,
    help="Policies to simulate, comma-separated: hash, random, p2c, greedy, pack, module:Name.",
)
@click.option("--run", "run_id", default=None, help="Which run of the CSV to replay (default: its first).")
@click.option(
    "--nodes",
    "nodes_spec",
    default=None,
    metavar="SPEC",
    help="Simulated nodes: COUNTxCPUS groups, comma-separated, extra resources with +NAME=AMOUNT: "
    "10000x16, 4x2,1x4, 2x8+GPU=1+ssd=2. Default: the nodes the run's sidecar recorded.",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Simulate the local_nodes of this raysched config instead.",
)
@click.option(
    "--cache-keys",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Each cache (see --cache-scope) keeps the last N keys it ran (LRU). Default, when the trace has a "
    "cache_hit column: the N whose LRU, replayed over the recorded run (tasks in start order where they "
    "ran), hits as many tasks as the run did; among those, the one agreeing with the most recorded hits and "
    "misses, then the smallest.",
)
@click.option(
    "--miss-s",
    type=click.FloatRange(min=0),
    default=None,
    metavar="S",
    help="Seconds added to a task whose key is not in its node's cache. Default, when the trace has a "
    "cache_hit column: median run_s of its misses minus median run_s of its hits; a task's base "
    "duration is then its run_s, less that for a recorded miss. Without the column, no cache is "
    "modelled unless both --cache-keys and --miss-s are given.",
)
@click.option(
    "--dispatch-ms",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MS",
    help="Milliseconds from placement to start (also the brain call's round trip). Default: the 0.5th "
    "percentile of wait_s - brain_wait_s in the trace (the time outside the brain of its quickest "
    "tasks, which met no queue at their node).",
)
@click.option(
    "--cache-scope",
    type=click.Choice(["worker", "node"]),
    default=None,
    help="One cache per worker process (a module-level cache, as most Python caches are) or one per node "
    "(shared by its workers: files on the node's disk). Default, when the trace has a cache_hit column: the "
    "scope whose LRU, replayed over the recorded run, best reproduces its hits (node when both do equally).",
)
@click.option(
    "--start-rate",
    type=click.FloatRange(min=0),
    default=None,
    metavar="R",
    help="Ray tasks the driver starts per second at most (Ray's cost of submission, lease and reply; a batch "
    "of tiny tasks is one Ray task). Default: no limit (0), Ray's cost per task being carried by "
    "--turnaround-ms; set it to ask what a slower or faster control plane would do.",
)
@click.option(
    "--turnaround-ms",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MS",
    help="Milliseconds from a worker's finish to the start of the next Ray task already waiting at its node. "
    "Default: the median of those gaps in the trace (each node's tasks dealt to its workers as Ray does).",
)
@click.option(
    "--validate",
    "do_validate",
    is_flag=True,
    help="Replay the run under its own recorded policy on its own recorded cluster and print measured "
    "against simulated (throughput, makespan, p50/p95 wait, nodes used, tasks per node, cache hit rate) "
    "with the relative error of each. Exit 0 either way.",
)
@click.option(
    "--load-factor",
    type=LOAD_FACTOR,
    default=None,
    help="Hash's bounded loads (default: as the run recorded, else 1.25; 'off': pure ring).",
)
@click.option(
    "--vnodes",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help="Hash ring points per CPU (default: as recorded, else 100).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed for random, p2c and the greedy/pack class sample (default: as recorded, else 0).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1, max=99),
    default=None,
    metavar="N",
    help="Without a seed (none given, none recorded) one replay of random or p2c is one draw of many: replay "
    "each policy with seeds 0..N-1 and report the run of median throughput. Default: 9 for traces of up to "
    "11,111 tasks, fewer above (about 100,000 simulated tasks per policy), 1 from 33,334; a policy that "
    "ignores its seed is replayed once. Ignored with --seed.",
)
@click.option(
    "--sweep",
    "sweep_spec",
    default=None,
    metavar="NAME=V1,V2,...",
    help="Replay the trace once per setting of one hash knob and print one row per setting (makespan, "
    "throughput, p95 wait, key affinity, cache hit rate, spilled): load-factor=1.1,1.25,1.5,2,off, "
    "locality-wait=0,0.5,2,auto or vnodes=10,100,1000. --policies defaults to hash; other policies named "
    "there are replayed once, as a reference row. With --plot: the frontier (makespan against cache hit "
    "rate, or key affinity without a cache); with --out: every setting as its own run.",
)
@click.option(
    "--kill-node",
    "kills",
    multiple=True,
    metavar="T[:NODE]",
    help="Drop a node at virtual second T (the busiest live one, or NODE); what ran there is re-placed "
    "as a new attempt. Repeatable.",
)
@click.option(
    "--add-node",
    "adds",
    multiple=True,
    metavar="T:SPEC",
    help="Add a node at virtual second T: CPUS[+NAME=AMOUNT...] (one node) or COUNTxCPUS... Repeatable.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the simulated attempts (results schema, one run per policy) and their sidecar; "
    "`raysched analyze` reads it like any run. An existing file is never overwritten.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the figures as JSON (the keys of `raysched analyze --json`)."
)
@click.option(
    "--plot",
    "plot_out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write a PNG as `raysched analyze --plot` draws it.",
)
def simulate_command(
    trace: Path,
    policies: str,
    run_id: str | None,
    nodes_spec: str | None,
    config_path: str | None,
    cache_keys: int | None,
    miss_s: float | None,
    dispatch_ms: float | None,
    cache_scope: str | None,
    start_rate: float | None,
    turnaround_ms: float | None,
    do_validate: bool,
    load_factor: Any,
    vnodes: int | None,
    seed: int | None,
    repeats: int | None,
    sweep_spec: str | None,
    kills: tuple[str, ...],
    adds: tuple[str, ...],
    out: Path | None,
    as_json: bool,
    plot_out: Path | None,
) -> None:
    """Replay a recorded run under other policies or cluster shapes, on a virtual clock.

    TRACE is a results CSV. Its tasks (key, demand, run time, in task_id order)
    go through the real placement brain and policies, driven as `raysched
    submit` drives them; the figures are those of `raysched analyze`, one
    column per policy, from virtual second 0 (the recorded first task start:
    start-up is not placement), plus a cache hit rate row when a cache is
    modelled. A run with calls to a service is refused (replicas are not
    modelled). Nodes recorded in the sidecar keep their ids (the same hash
    ring); nodes of --nodes, --config and --add-node get virtual ids n000,
    n001, ... Tasks still waiting for a node when nothing else can happen
    (their only nodes were killed) end as cancelled. The same inputs and
    --seed give the same output. Every run also replays the trace under its
    own policy on its own cluster and prints one line saying how well the
    model reproduced it (the largest error among throughput, p95 wait and
    cache hits); --validate prints that comparison in full.
    """
    given = {"seed": seed, "vnodes": vnodes}
    ctx = click.get_current_context()
    if _on_command_line(ctx, "load_factor"):
        given["load_factor"] = load_factor  # None here means 'off'
    try:
        sweep = _sweep(ctx, sweep_spec, do_validate)
        if sweep is not None and not _on_command_line(ctx, "policies"):
            policies = "hash"  # the only built-in policy a sweep's knobs change
        settings = SimulateSettings(
            trace=trace,
            run_id=run_id,
            policies=tuple(p.strip() for p in policies.split(",") if p.strip()),
            nodes=nodes_spec,
            config=config_path,
            cache_keys=cache_keys,
            miss_s=miss_s,
            dispatch_ms=dispatch_ms,
            cache_scope=cache_scope,
            start_rate=start_rate,
            turnaround_ms=turnaround_ms,
            policy_options={k: v for k, v in given.items() if v is not None or k == "load_factor"},
            repeats=repeats,
            kills=tuple(parse_kill_node(k) for k in kills),
            adds=tuple(parse_add_node(a) for a in adds),
            out=out,
            keep_rows=plot_out is not None and sweep is None,
            command_line=("raysched", *sys.argv[1:]),
            sweep=sweep,
        )
        if do_validate:
            if _on_command_line(ctx, "policies"):
                raise SimInputError("--validate replays the run under its own recorded policy: drop --policies")
            if plot_out is not None:
                raise SimInputError("--validate prints a comparison, not a plot: drop --plot")
            fidelity = validate(settings, on_warning=_warn, on_start=lambda m: click.echo(m.describe(), err=True))
            click.echo(fidelity.line(), err=True)
            if out is not None:
                click.echo(f"Wrote the simulated rows to {out}", err=True)
            click.echo(json.dumps(fidelity.to_dict(), indent=2) if as_json else fidelity.table())
            return
        report = simulate(
            settings,
            on_warning=_warn,
            on_start=lambda model: click.echo(model.describe(), err=True),
            on_policy_done=_done,
        )
    except SimInputError as err:
        raise BadInput(str(err)) from None
    click.echo(
        report.fidelity.line()
        if report.fidelity is not None
        else f"model fidelity: not checked ({report.fidelity_note})",
        err=True,
    )
    if out is not None:
        click.echo(f"Wrote the simulated rows to {out}", err=True)
    if sweep is not None:
        _print_sweep(report, sweep, plot_out, as_json)
        return
    if plot_out is not None and report.rows is not None:
        from raysched.analysis.plots import write_plot  # matplotlib only when a plot is asked for

        try:
            written = write_plot(report.rows, plot_out)
        except (AnalysisInputError, OSError) as err:
            raise BadInput(f"cannot write the plot {plot_out}: {err}") from None
        click.echo(f"Wrote the plot to {written}", err=True)
    if as_json:
        click.echo(summary_to_json(report.summary, report.nodes))
    else:
        click.echo(render_table(report.summary))
        click.echo()
        click.echo(render_node_table(report.nodes, most=NODE_ROWS))


def _on_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE


def _sweep(ctx: click.Context, spec: str | None, do_validate: bool) -> Sweep | None:
    """--sweep parsed and checked against the other flags; SimInputError (one line) before anything runs."""
    if spec is None:
        return None
    if do_validate:
        raise SimInputError("--validate replays the run as recorded, one setting: drop --sweep")
    sweep = parse_sweep(spec)
    option = SWEEPABLE[sweep.name].option
    if _on_command_line(ctx, option):
        raise SimInputError(f"--sweep {sweep.name} sets --{sweep.name} for each row: drop --{sweep.name}")
    return sweep


def _print_sweep(report: SimulationReport, sweep: Sweep, plot_out: Path | None, as_json: bool) -> None:
    """The sweep's one table (or its JSON records), and the frontier when --plot asks for it."""
    table = report.sweep
    assert table is not None
    if plot_out is not None:
        from raysched.analysis.plots import write_frontier  # matplotlib only when a plot is asked for

        try:
            written = write_frontier(table, plot_out, sweep.name)
        except (AnalysisInputError, OSError) as err:
            raise BadInput(f"cannot write the plot {plot_out}: {err}") from None
        click.echo(f"Wrote the plot to {written}", err=True)
    if as_json:
        click.echo(json.dumps(sweep_records(table, sweep.name), indent=2, allow_nan=False))
    else:
        click.echo(render_sweep(table, sweep.name))
