"""The `raysched` command line: thin commands over the library.

Exit codes: 0 all tasks ok; 1 some task failed; 2 bad input (job file, config,
flags, infeasible demand, unreachable cluster); 130 interrupted.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import click

from raysched.config import ConfigError, Settings, load_config, parse_load_factor

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class BadInput(click.ClickException):
    """A user mistake: one line on stderr, exit 2, no traceback."""

    exit_code = EXIT_BAD_INPUT


class LoadFactor(click.ParamType):
    name = "C|off"

    def convert(self, value: Any, param: Any, ctx: Any) -> float | None:
        try:
            return parse_load_factor(value)
        except ConfigError as err:
            self.fail(str(err), param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raysched")
def cli() -> None:
    """raysched: choose where every Ray task runs, and measure which placement wins.

    \b
    Quick tour:
      raysched submit jobs/quickstart.py            # embedded 4-node cluster on 127.0.0.1
      raysched submit job.py --policy p2c --address auto
      raysched analyze results/*.csv --plot cmp.png
      raysched status                                # the running placement brain
    """


def submit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The placement flags shared by `submit` and `bench`."""
    options = [
        click.option("--policy", "-p", default=None,
                     help="hash | random | p2c | greedy | pack | module:Name (your own). Default: hash."),
        click.option("--address", default=None,
                     help="Join an existing cluster: HOST:PORT, 'auto', or ray://HOST:PORT. "
                          "Default: $RAY_ADDRESS, else an embedded local cluster on 127.0.0.1."),
        click.option("--local-nodes", type=click.IntRange(min=1), default=None,
                     help="Nodes of the embedded cluster (the pattern of configs/local.yaml, repeated). Default: 4."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="YAML config (see configs/local.yaml for every key); flags override it."),
        click.option("--seed", type=click.IntRange(min=0), default=None,
                     help="Seed for random and p2c, so a run can be repeated."),
        click.option("--vnodes", type=click.IntRange(min=1), default=None,
                     help="Virtual nodes per unit of capacity on the hash ring. More: smoother spread, more memory."),
        click.option("--load-factor", type=LoadFactor(), default=None,
                     help="Bounded loads for hash: no node takes more than C x its fair share of work in flight "
                          "(default 1.25). Lower: better balance, less key affinity; 'off': pure ring."),
        click.option("--max-inflight", type=click.IntRange(min=1), default=None,
                     help="Tasks held at once (running or waiting for a node). Default: 4 x cluster CPUs, at least 64."),
        click.option("--overcommit", type=click.FloatRange(min=1, max=1e6), default=None,
                     help="Work a node may hold, as a multiple of its capacity (default 1: only what runs now). "
                          "Higher queues tasks at the nodes: more throughput for tiny tasks, less control. "
                          "Set by whoever starts the shared brain."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(config_path: str | None, **flags: Any) -> Settings:
    """Config file first, then every flag the user actually gave."""
    try:
        settings = load_config(config_path)
    except ConfigError as err:
        raise BadInput(str(err)) from None
    given = {k: v for k, v in flags.items() if v is not None}
    if "load_factor" in flags and flags["load_factor"] is None and _flag_given("load_factor"):
        given["load_factor"] = None  # --load-factor off
    return replace(settings, **given)


def _flag_given(name: str) -> bool:
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def default_out_path(job_name: str, policy: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe_policy = policy.replace(":", "-").replace("/", "-")
    return Path("results") / f"{Path(job_name).stem}-{safe_policy}-{stamp}.csv"


@cli.command("submit")
@click.argument("job_file", type=click.Path(dir_okay=False))
@submit_options
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Results CSV (one row per attempt). Default: results/<job>-<policy>-<UTC time>.csv. "
                   "An existing file is never overwritten.")
@click.option("--retries", type=click.IntRange(min=0), default=None,
              help="Re-place a task whose function raised, up to N more times (default 0). "
                   "Work lost to Ray (a node or worker died) is always re-placed, up to 5 times.")
@click.option("--max-failures", type=click.IntRange(min=1), default=None,
              help="Stop the run once this many tasks have failed for good.")
@click.option("--resume", "resume_path", type=click.Path(dir_okay=False), default=None,
              help="Skip tasks that already have an ok row in this CSV and append new rows to it.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def submit_command(job_file: str, config_path: str | None, resume_path: str | None, quiet: bool, **flags: Any) -> None:
    """Run JOB_FILE's tasks, each on the node the placement policy picks.

    JOB_FILE defines tasks(), yielding raysched.Task(fn, args=..., key=...).
    Every attempt becomes a row of the results CSV; a summary follows the run.
    """
    from raysched import cluster, policies
    from raysched.job import JobFileError, load_job
    from raysched.results import ResultsWriter, ResumeError, completed_task_ids

    local_count = flags.pop("local_nodes")
    settings = _settings(config_path, **flags)
    if not math.isfinite(settings.overcommit):
        raise BadInput(f"--overcommit must be a finite number >= 1, got {settings.overcommit}")
    local_nodes = cluster.scale_nodes(settings.local_nodes, local_count)
    try:
        policy = policies.build_policy(
            settings.policy,
            policies.PolicyOptions(seed=settings.seed, load_factor=settings.load_factor, vnodes=settings.vnodes),
        )
    except ValueError as err:
        raise BadInput(str(err)) from None
    policies.ship_by_value(policy)
    try:
        job = load_job(job_file)
    except JobFileError as err:
        raise BadInput(str(err)) from None

    skip: frozenset[int] = frozenset()
    if resume_path:
        out_path = Path(resume_path)
        try:
            skip = completed_task_ids(out_path, job.name, settings.policy)
        except ResumeError as err:
            raise BadInput(str(err)) from None
    else:
        out_path = Path(settings.out) if settings.out else default_out_path(job.name, settings.policy)
        if out_path.exists():
            raise BadInput(f"{out_path} already exists; choose another --out, or --resume {out_path} to continue it")

    try:
        with cluster.job_runtime_env(job.path) as runtime_env, \
                cluster.session(settings.address, runtime_env, local_nodes, settings.system_config) as where:
            if not runtime_env and job.folder != Path.cwd():
                job.ship_by_value()  # the job's working_dir is not the job file's folder
            if not quiet:
                click.echo(f"raysched: running {job.name} under {settings.policy} on {where}", err=True)
            code = _run(job, policy, settings, out_path, bool(resume_path), skip, quiet)
    except cluster.ClusterError as err:
        raise BadInput(str(err)) from None
    except KeyboardInterrupt:
        click.echo("raysched: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code)


def _run(job: Any, policy: Any, settings: Settings, out_path: Path, append: bool,
         skip: frozenset[int], quiet: bool) -> int:
    import ray

    from raysched.job import JobFileError
    from raysched.report import Progress, format_summary
    from raysched.results import ResultsWriter
    from raysched.runner import Interrupt, Runner, RunSettings

    max_inflight = settings.max_inflight or max(64, 4 * int(ray.cluster_resources().get("CPU", 0)))
    run_settings = RunSettings(policy_name=settings.policy, max_inflight=max_inflight, retries=settings.retries,
                               max_failures=settings.max_failures, skip_task_ids=skip,
                               overcommit=settings.overcommit)
    progress = Progress(lambda: job.total, enabled=not quiet)
    with ResultsWriter(out_path, append=append) as writer, Interrupt() as interrupt:
        runner = Runner(job, policy, run_settings, writer, on_progress=progress.update)
        try:
            outcome = runner.run(interrupt)
        except JobFileError as err:
            raise BadInput(str(err)) from None
        finally:
            progress.close()
    click.echo(format_summary(outcome, job.name, settings.policy, str(out_path)))
    if outcome.exit_code == EXIT_BAD_INPUT:
        raise BadInput(f"infeasible task: {outcome.infeasible_error}")
    return outcome.exit_code


@cli.command("status")
@click.option("--address", default=None, help="Cluster to ask (HOST:PORT or 'auto'). Default: $RAY_ADDRESS or 'auto'.")
@click.option("--json", "as_json", is_flag=True, help="Print the brain's state as JSON.")
def status_command(address: str | None, as_json: bool) -> None:
    """Show the running placement brain: nodes, capacity, work in flight, submissions."""
    import os

    import ray

    from raysched import cluster
    from raysched.brain import find_brain

    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        cluster.connect(target, {})
    except cluster.ClusterError as err:
        raise BadInput(f"{err}") from None
    try:
        brain = find_brain()
        if brain is None:
            raise BadInput("no placement brain is running on this cluster; it starts with the first `raysched submit`")
        try:
            state = ray.get(brain.status.remote(), timeout=30)
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError,
                ray.exceptions.ActorUnavailableError) as err:
            raise BadInput(f"the placement brain did not answer ({type(err).__name__}); try again shortly") from None
    finally:
        ray.shutdown()
    if as_json:
        click.echo(json.dumps(state, indent=2, default=str))
        return
    click.echo(format_status(state))


@cli.command("bench")
@click.option("--tasks", "-n", "n", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="No-op tasks per run.")
@click.option("--policies", default="hash,random,p2c,greedy,pack", show_default=True,
              help="Comma-separated raysched policies to measure.")
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Alternating rounds (A B A B …); the table shows the median.")
@click.option("--address", default=None,
              help="Existing cluster (HOST:PORT or 'auto'). Default: $RAY_ADDRESS, else an embedded local cluster.")
@click.option("--local-nodes", type=click.IntRange(min=1), default=None, help="Nodes of the embedded cluster.")
@click.option("--max-inflight", type=click.IntRange(min=1), default=None,
              help="raysched's in-flight bound. Default: as for submit.")
@click.option("--overcommit", type=click.FloatRange(min=1, max=1e6), default=1.0, show_default=True,
              help="In-flight demand a node may hold, as a multiple of its capacity.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the figures as CSV.")
@click.option("--job", "job_file", type=click.Path(dir_okay=False), default=None,
              help="Instead of no-op tasks, run this job under each policy and compare throughput, "
                   "p95 wait, nodes used and cache hit rate (e.g. jobs/cache_affinity.py).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config for the embedded cluster's nodes (local_nodes).")
@click.option("--load-factor", type=LoadFactor(), default=1.25, show_default=True,
              help="Bounded loads for hash (C >= 1, or 'off').")
def bench_command(n: int, policies: str, rounds: int, address: str | None, local_nodes: int | None,
                  max_inflight: int | None, overcommit: float, seed: int, out: str | None,
                  job_file: str | None, config_path: str | None, load_factor: float | None) -> None:
    """Measure placement: overhead against plain Ray (no-op tasks), or policies on a real job (--job).

    \b
    raysched bench                                   # no-op tasks: ratio to plain-affinity Ray
    raysched bench --job jobs/cache_affinity.py --policies hash,random
    """
    import ray

    from raysched import bench, cluster
    from raysched import policies as policy_registry

    if not math.isfinite(overcommit):
        raise BadInput(f"--overcommit must be a finite number >= 1, got {overcommit}")
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise BadInput("--policies needs at least one policy name, e.g. hash,random")
    for name in names:
        try:
            policy_registry.ship_by_value(policy_registry.build_policy(name, policy_registry.PolicyOptions(seed=seed)))
        except ValueError as err:
            raise BadInput(str(err)) from None
    settings = _settings(config_path)
    nodes = cluster.scale_nodes(settings.local_nodes, local_nodes)
    echo = lambda message: click.echo(message, err=True)  # noqa: E731
    from raysched.job import JobFileError, load_job

    if job_file is not None:
        try:
            load_job(job_file)
        except JobFileError as err:
            raise BadInput(str(err)) from None
    try:
        with contextlib.ExitStack() as stack:
            runtime_env = stack.enter_context(cluster.job_runtime_env(Path(job_file))) if job_file else {}
            where = stack.enter_context(cluster.session(address, runtime_env, nodes, settings.system_config))
            inflight = max_inflight or max(64, 4 * int(ray.cluster_resources().get("CPU", 0)))
            if job_file is not None:
                echo(f"raysched bench: {Path(job_file).name} under {', '.join(names)} on {where}")
                rows = bench.run_job_bench(Path(job_file), names, rounds, seed, inflight, overcommit, echo,
                                           load_factor)
                click.echo(bench.format_job_table(rows))
            else:
                echo(f"raysched bench: {n} no-op tasks per run on {where}")
                results = bench.run_bench(n, names, rounds, seed, inflight, overcommit, echo, load_factor)
                rows = bench.summarize(results)
                click.echo(bench.format_table(rows))
                click.echo("brain decisions/s (hash, 1,000-node synthetic view, no Ray): "
                           f"{bench.brain_decisions_per_s():,.0f}")
    except (cluster.ClusterError, JobFileError, bench.BenchError) as err:
        raise BadInput(str(err)) from None
    except KeyboardInterrupt:
        click.echo("raysched: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if out:
        bench.write_csv(rows, Path(out))
        click.echo(f"wrote {out}", err=True)


def format_status(state: dict[str, Any]) -> str:
    """The brain's state as a few readable lines."""
    nodes = state["nodes"]
    lines = [f"placement brain {state['brain_id']}: {len(nodes)} live nodes, {state['decisions']} decisions"]
    lines.append(f"  {'node':<10}{'alive':<7}{'capacity':<34}{'in flight':>9}")
    for node in nodes:
        cap = ", ".join(f"{k}={v:g}" for k, v in sorted(node["capacity"].items()) if k != "memory")
        lines.append(f"  {node['node_id'][:8]:<10}{'yes':<7}{cap:<34}{node['tasks_in_flight']:>9}")
    for node in state.get("condemned", []):
        lines.append(f"  {node[:8]:<10}{'no':<7}(reported dead, leaving the ring)")
    subs = state["submissions"]
    lines.append(f"submissions: {len(subs)} active")
    for sub in subs:
        ring = f", ring of {sub['ring_nodes']} nodes / {sub['ring_vnodes']:,} vnodes" if "ring_nodes" in sub else ""
        lines.append(f"  {sub['run_id']}  {sub.get('job', '?')} under {sub.get('policy', '?')}: "
                     f"{sub['in_flight']} in flight, {sub['done']} done{ring}")
    return "\n".join(lines)


from raysched.cli_analyze import analyze_command  # noqa: E402  (its own module: the largest command)

cli.add_command(analyze_command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
