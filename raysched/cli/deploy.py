"""`raysched deploy` and `raysched undeploy`: services kept up past one submission (`raysched.deployment`)."""

from __future__ import annotations

from typing import Any

import click

from raysched.cli.options import BadInput

ADDRESS_HELP = "Cluster (HOST:PORT or 'auto'). Default: $RAY_ADDRESS, else 'auto' (a cluster started on this machine)."


@click.command("deploy")
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--address", default=None, help=ADDRESS_HELP)
@click.option(
    "--policy",
    "-p",
    default=None,
    help="How calls are routed to the replicas: hash (a key's replica on a ring over replica names, the same "
    "from every client) | random | p2c | greedy (least calls outstanding) | pack. Default: hash.",
)
@click.option(
    "--service-policy",
    default=None,
    help="Where replicas go: greedy (least allocated: spread) | pack (most allocated) | random | p2c | "
    "module:Name. Default: greedy.",
)
@click.option(
    "--service-spread",
    default=None,
    metavar="LABEL",
    help="Spread each service's replicas over the values of this Ray node label (zone, rack), at most one apart.",
)
@click.option(
    "--vnodes",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help="Hash ring points per call slot of a replica (default 100, as submit's ring per CPU).",
)
@click.option("--json", "as_json", is_flag=True, help="Print each service's status as JSON.")
def deploy_command(job_file: str, as_json: bool, **flags: Any) -> None:
    """Place JOB_FILE's services (@raysched.service classes) and keep them up after this command returns.

    \b
    Each service gets a controller (a detached Ray actor) that owns its replicas: it re-creates a lost
    one under its name, and autoscales a service declared with replicas=(low, high).
    Then, until `raysched undeploy NAME`:
      - any program calls it:  h = raysched.get_service("NAME"); ray.get(h.method.remote(x, key=k))
      - a job file whose tasks call a service of the same name uses these replicas (no new ones)
      - `raysched status` lists its replicas, their nodes and calls outstanding
    A name that is deployed already is refused (nothing is replaced): undeploy it first.
    Needs a running cluster (ray start --head, or --address); exit 2 on bad input.
    """
    import json

    from raysched.deployment import DeployError, deploy

    try:
        statuses = deploy(job_file, **flags)
    except DeployError as err:
        raise BadInput(str(err)) from None
    if as_json:
        click.echo(json.dumps(statuses, indent=2, default=str))
        return
    for status in statuses:
        click.echo(f"deployed {status['service']}: " + _replicas_line(status))


@click.command("undeploy")
@click.argument("name")
@click.option("--address", default=None, help=ADDRESS_HELP)
def undeploy_command(name: str, address: str | None) -> None:
    """Remove the deployed service NAME: its replicas stop, their resources are freed, status no longer names it.

    Calls under way on its replicas fail. An unknown NAME is an error (exit 2) listing what is deployed.
    """
    from raysched.deployment import DeployError, undeploy

    try:
        final = undeploy(name, address=address)
    except DeployError as err:
        raise BadInput(str(err)) from None
    count = len(final.get("replicas", []))
    click.echo(f"undeployed {name}" + (f" ({_replicas(count)} removed)" if count else ""))


def _replicas(count: int) -> str:
    """``1 replica``, ``3 replicas``."""
    return f"{count} replica{'' if count == 1 else 's'}"


def _replicas_line(status: dict[str, Any]) -> str:
    """``4 replicas (Shard#0 on 1a2b3c4d, ...), routed by hash``."""
    from raysched.results.schema import short_node as short

    replicas = status.get("replicas", [])
    where = ", ".join(f"{r['name']} on {short(r['node'] or '')}" for r in replicas)
    low, high = status.get("replicas_range", [len(replicas)] * 2)
    scale = f", autoscaling {low}-{high}" if low != high else ""
    return f"{_replicas(len(replicas))} ({where}), routed by {status.get('routing', '?')}{scale}"


def format_services(services: list[dict[str, Any]]) -> list[str]:
    """Deployed services for `raysched status`: each replica's node, state and calls outstanding."""
    from raysched.results.schema import short_node as short

    if not services:
        return []
    lines = [f"deployed services: {len(services)}"]
    for s in services:
        if "error" in s:
            lines.append(f"  {s['service']}: {s['error']}")
            continue
        low, high = s.get("replicas_range", [0, 0])
        scale = f", {low}-{high} replicas" if low != high else ""
        lines.append(
            f"  {s['service']} (from {s.get('job', '?')}, routed by {s.get('routing', '?')}{scale}): "
            f"{_replicas(len(s.get('replicas', [])))}, {s.get('load', 0):g} calls outstanding, "
            f"{s.get('clients', 0)} clients"
        )
        for r in s.get("replicas", []):
            node = short(r["node"] or "") or "-"
            lines.append(f"    {r['name']:<14}{node:<10}{r['state']:<10}{r['outstanding']:>6g} outstanding")
    return lines
