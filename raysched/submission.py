"""`raysched.submit(job_path, settings)`: one run, end to end, as a library call under the thin CLI.

Builds the policy, loads the job, picks the results file (or the one to
resume), connects (or starts the embedded cluster), ships the job's code,
writes the sidecar, runs the driver loop and returns the `RunOutcome`. Every
user mistake is a `SubmitError` with one line saying what to do (exit 2 in
the CLI); nothing is written before the inputs are known to be good.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raysched import cluster, policies
from raysched.brain.client import BrainClient
from raysched.brain.membership import live_nodes_from_ray
from raysched.config import Settings, policy_options, run_options
from raysched.core.view import DEFAULT_OVERCOMMIT
from raysched.driver.calls import CallRouter
from raysched.driver.loop import Interrupt, Runner, RunSettings, new_run_id
from raysched.driver.replicas import Fleet
from raysched.driver.service_calls import ServiceCalls
from raysched.job import JobFile, JobFileError, load_job, task_demand
from raysched.results import sidecar
from raysched.results.outcome import RunOutcome
from raysched.results.writer import ResultsWriter, ResumeError, completed_task_ids
from raysched.services import spec_of

__all__ = ["SubmitError", "default_out_path", "submit"]

ProgressFactory = Callable[[JobFile], tuple[Callable[[RunOutcome, int], None], Callable[[], None]]]


class SubmitError(ValueError):
    """Bad input for a submission (job file, policy, flags, files, cluster): one line for the user."""


def default_out_path(job_name: str, policy: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe_policy = policy.replace(":", "-").replace("/", "-")
    return Path("results") / f"{Path(job_name).stem}-{safe_policy}-{stamp}.csv"


def submit(
    job_path: str | Path,
    settings: Settings | None = None,
    *,
    resume: str | Path | None = None,
    local_nodes: int | None = None,
    progress: ProgressFactory | None = None,
    announce: Callable[[str], None] | None = None,
    interrupt: Interrupt | None = None,
    command_line: list[str] | None = None,
) -> RunOutcome:
    """Run a job file's tasks on a Ray cluster under ``settings``; the outcome, with its CSV path.

    ``resume``: skip tasks with an ok row in that CSV and append to it (its
    ``out`` setting is then ignored). ``local_nodes``: size of the embedded
    cluster (its pattern repeated). Raises `SubmitError` on bad input;
    Ctrl-C ends the run early (``outcome.interrupted``). Settings default to
    `Settings()`: the embedded cluster and hash.
    """
    settings = settings if settings is not None else Settings()
    search = [Path(job_path).resolve().parent]
    try:
        policy = policies.build_policy(settings.policy, policy_options(settings), search=search)
        service_policy = policies.build_policy(settings.service_policy, policy_options(settings), search=search)
        nodes = cluster.scale_nodes(settings.local_nodes, local_nodes)
    except ValueError as err:
        raise SubmitError(str(err)) from None
    policies.ship_by_value(policy)
    policies.ship_by_value(service_policy)
    try:
        job = load_job(job_path)
    except JobFileError as err:
        raise SubmitError(str(err)) from None

    skip: frozenset[int] = frozenset()
    if resume is not None:
        out_path = Path(resume)
        try:
            skip = completed_task_ids(out_path, job.name, settings.policy)
        except ResumeError as err:
            raise SubmitError(str(err)) from None
    else:
        out_path = Path(settings.out) if settings.out else default_out_path(job.name, settings.policy)
        if out_path.exists():
            raise SubmitError(f"{out_path} already exists; choose another --out, or --resume {out_path} to continue it")

    staged = job.needs_working_dir and not cluster.inherited_working_dir()
    env_context: contextlib.AbstractContextManager[dict[str, Any]] = (
        cluster.staged_working_dir(job.path) if staged else contextlib.nullcontext({})
    )
    try:
        with (
            env_context as runtime_env,
            cluster.session(settings.address, runtime_env, nodes, settings.system_config) as where,
        ):
            if not staged:
                job.ship_by_value()  # the job's functions carry their code: no runtime env, no start-up cost
            if announce is not None:
                announce(f"raysched: running {job.name} under {settings.policy} on {where}")
            return _run(
                job,
                policy,
                service_policy,
                settings,
                out_path,
                resume is not None,
                skip,
                where,
                progress,
                interrupt,
                command_line,
            )
    except cluster.ClusterError as err:
        raise SubmitError(str(err)) from None


def uses_executors(settings: Settings, job: JobFile) -> bool:
    """Whether the run's tasks go to shared executors: unless turned off, or the job's code needs a working_dir
    (executors are shared by every submission, so they run code shipped by value only; such a job's tasks run as
    plain pinned Ray tasks in its own runtime env)."""
    return settings.executors != "off" and not job.needs_working_dir


def _run(
    job: JobFile,
    policy: policies.Policy,
    service_policy: policies.Policy,
    settings: Settings,
    out_path: Path,
    append: bool,
    skip: frozenset[int],
    where: cluster.Where,
    progress: ProgressFactory | None,
    interrupt: Interrupt | None,
    command_line: list[str] | None,
) -> RunOutcome:
    import ray

    run_id = new_run_id()
    nodes = [{"node_id": node, "capacity": capacity} for node, capacity in sorted(live_nodes_from_ray().items())]
    cpus = float(ray.cluster_resources().get("CPU", 0))
    info = {
        "run_id": run_id,
        "job": job.name,
        "policy": settings.policy,
        "started_at": time.time(),
        "driver_job": ray.get_runtime_context().get_job_id(),
        "executors": "on" if uses_executors(settings, job) else "off",
        "executor_idle_s": settings.executor_idle_s,
    }
    client = BrainClient(run_id, policy, info, overcommit=settings.overcommit or DEFAULT_OVERCOMMIT)
    run_settings = RunSettings(
        policy_name=settings.policy,
        max_inflight=settings.max_inflight,
        retries=settings.retries,
        max_failures=settings.max_failures,
        skip_task_ids=skip,
        overcommit=settings.overcommit,
        batch=settings.batch,
        cluster_cpus=cpus,
        info=info,
    )
    on_progress, close_progress = progress(job) if progress is not None else (None, lambda: None)
    with ResultsWriter(out_path, append=append) as writer, contextlib.ExitStack() as stack:
        sidecar.record_run(
            out_path,
            {
                "run_id": run_id,
                "job": job.name,
                "job_path": str(job.path),
                "policy": settings.policy,
                "options": run_options(settings),
                "cluster": {"where": str(where), "ready_at": where.ready_at, "nodes": nodes},
                "code": "working_dir" if job.needs_working_dir else "by value",
                "versions": {"raysched": _version(), "ray": ray.__version__, "python": platform.python_version()},
                "started_at": info["started_at"],
                "ended_at": None,
                "command_line": command_line if command_line is not None else list(sys.argv),
                "resumed": append,
            },
        )
        services = _service_calls(job, client, service_policy, settings) if job.services else None
        runner = Runner(job, client, run_settings, writer, on_progress=on_progress, services=services)
        runner.outcome.out_path = out_path
        active = interrupt or stack.enter_context(Interrupt())
        try:
            outcome = runner.run(active)
        except JobFileError as err:
            raise SubmitError(str(err)) from None
        finally:
            close_progress()
            sidecar.update_run(
                out_path,
                run_id,
                {
                    "ended_at": time.time(),
                    "outcome": runner.outcome.counts(),
                    "brain_decisions": runner.outcome.brain_decisions,
                    "keys_spread": runner.outcome.keys_spread,
                    "hot_keys": runner.outcome.hot_keys,
                    "pacing": runner.outcome.pacing(),
                    "timeline": {
                        "brain_ready_at": runner.outcome.brain_ready_at,
                        "first_dispatch_at": runner.outcome.first_dispatch_at,
                    },
                    **({"replicas": services.fleet.events} if services is not None else {}),
                    "executors": {"mode": info["executors"], "events": runner.outcome.executor_events},
                },
            )
    return outcome


def _service_calls(
    job: JobFile, client: BrainClient, service_policy: policies.Policy, settings: Settings
) -> ServiceCalls:
    """The job's services: their replicas (placed by ``service_policy``) and a call router each (``--policy``)."""
    routers = {}
    for declared in job.services:
        spec = spec_of(declared)
        try:
            router_policy = policies.build_policy(settings.policy, policy_options(settings), search=[job.folder])
        except ValueError as err:
            raise SubmitError(str(err)) from None
        routers[spec.name] = CallRouter(spec, router_policy)
    domains = _label_values(settings.service_spread) if settings.service_spread else None
    fleet = Fleet(job.services, client, service_policy, lambda s: task_demand(s, job.name), domains)
    return ServiceCalls(fleet, routers)


def _label_values(label: str) -> dict[str, str]:
    """Each live node's value of a Ray node label (``--service-spread``); a label no node has is an error."""
    import ray

    values = {
        node["NodeID"]: str(node.get("Labels", {})[label])
        for node in ray.nodes()
        if node.get("Alive") and label in (node.get("Labels") or {})
    }
    if not values:
        seen = sorted({k for node in ray.nodes() for k in (node.get("Labels") or {}) if not k.startswith("ray.io/")})
        raise SubmitError(
            f"--service-spread {label}: no live node has the label {label!r}"
            + (f" (labels: {', '.join(seen)})" if seen else " (the nodes have no labels)")
        )
    return values


def _version() -> str:
    from raysched import __version__

    return __version__
