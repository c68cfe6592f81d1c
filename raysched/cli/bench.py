"""`raysched bench`: the click layer over `raysched.bench.compare`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from raysched.cli.options import BadInput
from raysched.results.outcome import ExitCode

__all__ = ["bench_command"]

PASS_THROUGH = ("overcommit", "batch", "load_factor", "locality_wait", "keys_per_node", "max_inflight", "seed")


def _task_ms(value: str) -> list[float]:
    try:
        lengths = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected task lengths in ms, comma-separated (e.g. 0,1,10,50), got {value!r}", param_hint="'--task-ms'"
        ) from None
    if not lengths or any(not (0 <= ms < 3_600_000) for ms in lengths):
        raise click.BadParameter(
            f"expected task lengths in ms >= 0, comma-separated (e.g. 0,1,10,50), got {value!r}",
            param_hint="'--task-ms'",
        )
    return lengths


@click.command("bench")
@click.option(
    "--task-ms",
    "task_ms",
    default="0,10",
    show_default=True,
    help="Task lengths to measure, in ms, comma-separated (0 = no-op), e.g. 0,1,10,50.",
)
@click.option(
    "--tasks",
    "-n",
    "n",
    type=click.IntRange(min=10),
    default=None,
    help="Tasks per run. Default: about 8 s of plain-Ray work per task length (1,000 to 20,000).",
)
@click.option(
    "--policies", default="random,hash", show_default=True, help="Comma-separated raysched policies to measure."
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Alternating rounds (A B … A B …); the table shows the median.",
)
@click.option(
    "--concurrent",
    type=click.IntRange(min=1, max=16),
    default=1,
    show_default=True,
    help="Drivers per mode at once, each with --tasks tasks, sharing the cluster (and one brain).",
)
@click.option(
    "--address",
    default=None,
    help="Existing cluster (HOST:PORT or 'auto'). Default: $RAY_ADDRESS, else an embedded cluster.",
)
@click.option(
    "--local-nodes",
    type=click.IntRange(min=1),
    default=None,
    help="Nodes of the embedded cluster. Default: 4 nodes of 2 CPUs (or --config's local_nodes).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config: the embedded cluster's local_nodes, and placement settings for raysched runs.",
)
@click.option(
    "--job",
    "job_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Instead of the overhead curve, run this job under each policy and compare throughput, "
    "p95 wait, nodes used, key affinity, spills and cache hit rate (e.g. jobs/cache_affinity.py).",
)
@click.option(
    "--executors",
    "executors",
    default=None,
    help="Measure raysched with each of these --executors settings side by side (e.g. on,off); "
    "default: one raysched mode per policy, with submit's default (auto).",
)
@click.option(
    "--actor-pool",
    is_flag=True,
    help="Also measure ray.util.ActorPool over one 1-CPU actor per CPU (the peer a user would write by hand).",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
@click.option("--overcommit", default=None, help="Passed to every raysched run (X|auto).")
@click.option("--batch", default=None, help="Passed to every raysched run (auto|off|N).")
@click.option("--load-factor", default=None, help="Passed to every raysched run (C|off).")
@click.option("--locality-wait", default=None, help="Passed to every raysched run (S|auto).")
@click.option("--keys-per-node", default=None, help="Passed to every raysched run (N).")
@click.option("--max-inflight", default=None, help="Passed to every raysched run.")
@click.option("--seed", default="0", show_default=True, help="Passed to every raysched run.")
def bench_command(
    task_ms: str,
    n: int | None,
    policies: str,
    rounds: int,
    concurrent: int,
    address: str | None,
    local_nodes: int | None,
    config_path: str | None,
    job_file: str | None,
    executors: str | None,
    actor_pool: bool,
    out: str | None,
    **passed: Any,
) -> None:
    """Measure raysched against plain Ray (overhead curve), or policies on a real job (--job).

    Every run is a fresh driver process on one cluster, as a user's would be;
    modes alternate. Figures: steady state (completions between the 10th and
    90th percentile finish times), whole run (first submission to last
    finish), start-up (launch to first finished task).

    \b
    raysched bench --task-ms 0,1,10,50 --policies random
    raysched bench --task-ms 10 --concurrent 4 --tasks 1000
    raysched bench --task-ms 1,10 --policies random --executors on,off --actor-pool
    raysched bench --job jobs/cache_affinity.py --policies hash,random
    """
    from raysched import cluster
    from raysched import policies as policy_registry
    from raysched.bench import compare as bench
    from raysched.cli.options import settings_from_flags

    lengths = _task_ms(task_ms)
    settings_list = [e.strip().lower() for e in (executors or "").split(",") if e.strip()]
    bad = [e for e in settings_list if e not in ("auto", "on", "off")]
    if bad:
        raise BadInput(f"--executors takes auto, on or off, comma-separated; got {', '.join(bad)}")
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise BadInput("--policies needs at least one policy name, e.g. hash,random")
    for name in names:
        try:
            policy_registry.build_policy(name, policy_registry.PolicyOptions())
        except ValueError as err:
            raise BadInput(str(err)) from None
    settings = settings_from_flags(config_path)
    nodes = settings.local_nodes if config_path else bench.BENCH_NODES
    nodes = cluster.scale_nodes(nodes, local_nodes)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in passed.items() if v is not None]
    if config_path:
        flags.append(f"--config={Path(config_path).resolve()}")
    if job_file is not None:
        from raysched.job import JobFileError, load_job

        try:
            load_job(job_file)
        except JobFileError as err:
            raise BadInput(str(err)) from None
    echo = lambda message: click.echo(message, err=True)  # noqa: E731
    try:
        with contextlib.ExitStack() as stack:
            target = address
            if target is None and not cluster.os.environ.get("RAY_ADDRESS"):
                embedded = stack.enter_context(cluster.EmbeddedCluster(nodes, settings.system_config))
                target = embedded.address
                echo(f"raysched bench: embedded cluster of {len(nodes)} nodes on {cluster.LOOPBACK}")
            target = cluster.resolve_address(target)
            if target is None:
                raise BadInput("no cluster to measure on: pass --address or set RAY_ADDRESS")
            slots = bench.cluster_cpus(target)
            if job_file is not None:
                rows = bench.job_bench(target, Path(job_file), names, rounds, flags, echo)
                click.echo(bench.format_job_table(rows))
            else:
                runs = bench.overhead_curve(
                    target, lengths, names, rounds, n, slots, concurrent, echo, flags, settings_list, actor_pool
                )
                rows = bench.summarize(runs)
                click.echo(bench.format_table(rows))
    except (cluster.ClusterError, bench.BenchError) as err:
        raise BadInput(str(err)) from None
    except KeyboardInterrupt:
        click.echo("raysched: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    if out:
        bench.write_csv(rows, Path(out))
        click.echo(f"wrote {out}", err=True)
