"""The `raysched` command line: thin click commands over the library.

Exit codes (`raysched.results.outcome.ExitCode`): 0 all tasks ok; 1 some task failed;
2 bad input (job file, config, flags, infeasible demand, unreachable cluster);
130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from raysched.cli.options import BadInput, placement_options, settings_from_flags
from raysched.results.outcome import ExitCode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raysched")
def cli() -> None:
    """raysched: choose where every Ray task runs, and measure which placement wins.

    \b
    Quick tour:
      raysched submit jobs/quickstart.py            # embedded 4-node cluster on 127.0.0.1
      raysched submit job.py --policy p2c --address auto
      raysched analyze results/*.csv --plot cmp.png
      raysched simulate results/run.csv --nodes 1000x16
      raysched status                                # the running placement brain
      raysched deploy job.py --address auto          # services kept up: raysched.get_service(NAME)
      raysched bench --task-ms 0,10                  # overhead next to plain Ray
    """


@cli.command("submit")
@click.argument("job_file", type=click.Path(dir_okay=False))
@placement_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results CSV (one row per attempt), with its sidecar <name>.json. "
    "Default: results/<job>-<policy>-<UTC time>.csv. An existing file is never overwritten.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=None,
    help="Re-place a task whose function raised, up to N more times (default 0). "
    "Work lost to Ray (a node or worker died) is always re-placed, up to 5 times.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    default=None,
    help="Stop the run once this many tasks have failed for good.",
)
@click.option(
    "--resume",
    "resume_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Skip tasks that already have an ok row in this CSV and append new rows to it (--out is ignored).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no start line.")
def submit_command(
    job_file: str, config_path: str | None, resume_path: str | None, quiet: bool, local_nodes: int | None, **flags: Any
) -> None:
    """Run JOB_FILE's tasks, each on the node the placement policy picks.

    JOB_FILE defines tasks(), yielding raysched.Task(fn, args=..., key=...).
    Every attempt becomes a row of the results CSV; a summary follows the run.
    """
    from raysched.results.report import format_summary
    from raysched.submission import SubmitError, submit

    settings = settings_from_flags(config_path, **flags)
    try:
        outcome = submit(
            job_file,
            settings,
            resume=resume_path,
            local_nodes=local_nodes,
            quiet=quiet,
            announce=None if quiet else (lambda message: click.echo(message, err=True)),
            command_line=["raysched", *sys.argv[1:]],
        )
    except SubmitError as err:
        raise BadInput(str(err)) from None
    except KeyboardInterrupt:
        click.echo("raysched: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    click.echo(format_summary(outcome, Path(job_file).name, settings.policy))
    if outcome.exit_code == ExitCode.BAD_INPUT:
        raise BadInput(f"infeasible task: {outcome.infeasible_error}")
    sys.exit(int(outcome.exit_code))


@cli.command("status")
@click.option("--address", default=None, help="Cluster to ask (HOST:PORT or 'auto'). Default: $RAY_ADDRESS or 'auto'.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the brain's state as JSON (deployed services under 'services')."
)
def status_command(address: str | None, as_json: bool) -> None:
    """Show the running placement brain (nodes, capacity, work in flight, submissions) and the deployed services
    (each replica's node, state and calls outstanding)."""
    import ray

    from raysched import cluster
    from raysched.brain.actor import find_brain
    from raysched.deployment import deployed_status

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
        except (
            ray.exceptions.GetTimeoutError,
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
        ) as err:
            raise BadInput(f"the placement brain did not answer ({type(err).__name__}); try again shortly") from None
        state["services"] = deployed_status()
    finally:
        ray.shutdown()
    if as_json:
        click.echo(json.dumps(state, indent=2, default=str))
        return
    click.echo(format_status(state))


def format_status(state: dict[str, Any]) -> str:
    """The brain's state as a few readable lines; a submission with services lists its replicas' nodes."""
    from raysched.results.schema import short_node as short

    nodes = state["nodes"]
    lines = [f"placement brain {state['brain_id']}: {len(nodes)} live nodes, {state['decisions']} decisions"]
    lines.append(f"  {'node':<10}{'alive':<7}{'capacity':<34}{'in flight':>10}{'waiting':>9}")
    for node in nodes:
        cap = ", ".join(f"{k}={v:g}" for k, v in sorted(node["capacity"].items()) if k != "memory")
        lines.append(
            f"  {short(node['node_id']):<10}{'yes':<7}{cap:<34}{node['tasks_in_flight']:>10}"
            f"{node.get('tasks_waiting', 0):>9}"
        )
    for dead in state.get("reported_dead", []):
        lines.append(
            f"  {short(dead['node_id']):<10}{'no':<7}(reported {dead['reason']} {dead['for_s']:g} s ago; "
            "out of the ring until Ray agrees or the grace period ends)"
        )
    subs = state["submissions"]
    lines.append(f"submissions: {len(subs)} active")
    for sub in subs:
        ring = f", ring of {sub['ring_nodes']} nodes / {sub['ring_vnodes']:,} vnodes" if "ring_nodes" in sub else ""
        lines.append(
            f"  {sub['run_id']}  {sub.get('job', '?')} under {sub.get('policy', '?')}: "
            f"{sub['in_flight']} in flight, {sub.get('waiting', 0)} waiting, {sub['done']} done, "
            f"{sub.get('decisions', 0)} decisions{ring}"
        )
        replicas = sub.get("replicas") or {}  # a run's services: the node each replica lives on now
        where = [f"{name} on {short(node)}" if node else f"{name} (not placed)" for name, node in replicas.items()]
        if where:
            lines.append("    replicas: " + ", ".join(where))
    lines.extend(_executor_lines(state.get("executors") or [], state.get("executor_counts") or {}))
    lines.extend(format_services(state.get("services") or []))
    return "\n".join(lines)


def _executor_lines(executors: list[dict[str, Any]], counts: dict[str, int]) -> list[str]:
    """Executors per node: how many, of which demand, how many busy (and for how many submissions)."""
    from raysched.results.schema import format_demand
    from raysched.results.schema import short_node as short

    if not executors and not counts:
        return []
    totals = f" ({counts.get('created', 0)} created, {counts.get('retired', 0)} retired since the brain started)"
    lines = [f"executors: {len(executors)}{totals if counts else ''}"]
    per_node: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in executors:
        per_node.setdefault((e["node"], format_demand(e["demand"])), []).append(e)
    for (node, demand), group in sorted(per_node.items()):
        busy = [e for e in group if e["calls"]]
        runs = {e["submission"] for e in busy}
        lines.append(
            f"  {short(node):<10}{len(group)} x {demand}: {len(busy)} busy"
            + (f" ({sum(e['calls'] for e in busy)} calls, {len(runs)} submission(s))" if busy else "")
        )
    return lines


from raysched.cli.analyze import analyze_command  # noqa: E402  (its own module: the largest command)
from raysched.cli.bench import bench_command  # noqa: E402
from raysched.cli.deploy import deploy_command, format_services, undeploy_command  # noqa: E402
from raysched.cli.simulate import simulate_command  # noqa: E402

cli.add_command(analyze_command)
cli.add_command(bench_command)
cli.add_command(deploy_command)
cli.add_command(undeploy_command)
cli.add_command(simulate_command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
