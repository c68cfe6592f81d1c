"""`raysched.submit(job_path, policy=..., ...)`: one run, end to end, as a library call under the thin CLI.

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
from dataclasses import replace
from pathlib import Path
from typing import Any

from raysched import cluster, policies
from raysched.brain.client import BrainClient
from raysched.brain.membership import live_nodes_from_ray
from raysched.config import ConfigError, Settings, load_config, policy_options, run_options, settings_from_mapping
from raysched.core.view import DEFAULT_OVERCOMMIT, node_weight
from raysched.driver.calls import CallRouter, HomesFirst
from raysched.driver.controller import find_controller
from raysched.driver.deployed import DeployedReplicas, Fleets
from raysched.driver.loop import Interrupt, Runner, RunSettings, new_run_id
from raysched.driver.replicas import Fleet
from raysched.driver.service_calls import ServiceCalls
from raysched.driver.table import KeyHomes
from raysched.job import JobFile, JobFileError, load_job, task_demand
from raysched.policies import PolicyOptions
from raysched.results import sidecar
from raysched.results.outcome import RunOutcome
from raysched.results.report import Progress
from raysched.results.writer import ResultsWriter, ResumeError, completed_task_ids
from raysched.services import spec_of

__all__ = ["SubmitError", "default_out_path", "label_values", "resolve_settings", "submit"]

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
    policy: str | None = None,
    service_policy: str | None = None,
    service_spread: str | None = None,
    address: str | None = None,
    local_nodes: int | None = None,
    config: str | Path | None = None,
    seed: int | None = None,
    vnodes: int | None = None,
    load_factor: float | str | None = None,
    locality_wait: float | str | None = None,
    keys_per_node: int | None = None,
    max_inflight: int | None = None,
    overcommit: float | str | None = None,
    batch: int | str | None = None,
    executors: str | None = None,
    executor_idle: float | None = None,
    out: str | Path | None = None,
    retries: int | None = None,
    max_failures: int | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
    progress: ProgressFactory | None = None,
    announce: Callable[[str], None] | None = None,
    interrupt: Interrupt | None = None,
    command_line: list[str] | None = None,
) -> RunOutcome:
    """Run a job file's tasks on a Ray cluster, as `raysched submit JOB_FILE` does; the run's outcome.

    Every option of `raysched submit` is a keyword here, by its flag's name without dashes (``-`` as
    ``_``), taking the values the flag takes: ``policy="p2c"``, ``load_factor="off"`` or ``1.5``,
    ``batch="auto"``, ``executors="off"``, ``executor_idle=10``, ``out="results/run.csv"``. An option
    left at ``None`` keeps what ``settings`` (or the ``config`` YAML file, or the defaults) says, so
    ``load_factor="off"`` (not ``None``) turns bounded loads off. ``settings``, a ready
    `raysched.config.Settings`, stands for a config file (give one of the two). ``local_nodes``: the
    embedded cluster's size (the config's pattern repeated). ``resume``: skip tasks with an ok row in
    that CSV and append to it (``out`` is then ignored). ``quiet=False`` prints the start line on
    stderr, and a progress bar there when stderr is a terminal.

    Returns the `RunOutcome` (counts, makespan, per-node counts, ``exit_code``, ``out_path``); the
    summary `raysched submit` prints is ``raysched.results.report.format_summary(outcome, job, policy)``.
    Raises `SubmitError` (a ``ValueError`` with one line saying what to do) on bad input: the job file,
    an option's value, an existing ``out``, an unreachable cluster. Ctrl-C ends the run early
    (``outcome.interrupted``). ``progress``, ``announce``, ``interrupt`` and ``command_line`` are the
    command line's own hooks.
    """
    settings = resolve_settings(
        settings,
        config,
        policy=policy,
        service_policy=service_policy,
        service_spread=service_spread,
        address=address,
        seed=seed,
        vnodes=vnodes,
        load_factor=load_factor,
        locality_wait=locality_wait,
        keys_per_node=keys_per_node,
        max_inflight=max_inflight,
        overcommit=overcommit,
        batch=batch,
        executors=executors,
        executor_idle_s=executor_idle,
        out=None if out is None else str(out),
        retries=retries,
        max_failures=max_failures,
    )
    if not quiet:
        progress = progress or _progress_bar
        announce = announce or _to_stderr
    try:
        job = load_job(job_path)
    except JobFileError as err:
        raise SubmitError(str(err)) from None
    if settings.keys_per_node is None and job.keys_per_node is not None:  # the job's hint; a flag wins
        settings = replace(settings, keys_per_node=job.keys_per_node)
    search = [Path(job_path).resolve().parent]
    try:
        placement = policies.build_policy(settings.policy, policy_options(settings), search=search)
        replica_placement = policies.build_policy(settings.service_policy, policy_options(settings), search=search)
        nodes = cluster.scale_nodes(settings.local_nodes, local_nodes)
    except ValueError as err:
        raise SubmitError(str(err)) from None
    policies.ship_by_value(placement)
    policies.ship_by_value(replica_placement)

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
                placement,
                replica_placement,
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


def resolve_settings(settings: Settings | None, config: str | Path | None, **options: Any) -> Settings:
    """``settings`` (or the ``config`` file's, or the defaults), with every option given (not None) on top.

    Options are checked and parsed by the config file's own rules (``"off"``, ``"auto"``, numbers);
    a bad one is a `SubmitError` naming the option.
    """
    if settings is not None and config is not None:
        raise SubmitError("pass either settings or config (a YAML file), not both")
    try:
        base = settings if settings is not None else load_config(config)
        return settings_from_mapping({name: value for name, value in options.items() if value is not None}, base)
    except ConfigError as err:
        raise SubmitError(str(err)) from None


def _progress_bar(job: JobFile) -> tuple[Callable[[RunOutcome, int], None], Callable[[], None]]:
    bar = Progress(lambda: job.total, enabled=True)
    return bar.update, bar.close


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    live = live_nodes_from_ray()
    nodes = [{"node_id": node, "capacity": capacity} for node, capacity in sorted(live.items())]
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
        executors_one_demand=settings.executors != "off",
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
        runner.outcome.node_weights = {node: node_weight(capacity) for node, capacity in live.items()}
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
    """The job's services: their replicas (placed by ``service_policy``) and a call router each (``--policy``).

    A service deployed under the same name (`raysched deploy`) is not created again: the run calls its replicas,
    routed as every client of it routes (its deployed policy; hash without bounded loads, so a key goes where
    `raysched.get_service` handles send it).
    """
    routers = {}
    own, deployed = [], {}
    for declared in job.services:
        spec = spec_of(declared)
        controller = find_controller(spec.name)
        try:
            if controller is None:
                own.append(declared)
                router_policy = policies.build_policy(settings.policy, policy_options(settings), search=[job.folder])
            else:
                deployed[spec.name] = DeployedReplicas(spec, controller)
                router_policy = _deployed_routing(controller, settings, deployed[spec.name])
        except ValueError as err:
            raise SubmitError(str(err)) from None
        routers[spec.name] = CallRouter(spec, router_policy)
    domains = label_values(settings.service_spread) if settings.service_spread else None
    fleet = Fleet(own, client, service_policy, lambda s: task_demand(s, job.name), domains) if own else None
    return ServiceCalls(Fleets(fleet, deployed), routers)


def _deployed_routing(controller: Any, settings: Settings, replicas: DeployedReplicas) -> policies.Policy:
    """The router of a deployed service in a run: its deployed policy and ring (vnodes), no bounded loads; under
    hash, a key's home as the controller gives it (what every handle sends the key to)."""
    import ray

    table = ray.get(controller.table.remote(), timeout=30)
    options = PolicyOptions(seed=settings.seed, load_factor=None, vnodes=table.vnodes)
    ring = policies.build_policy(table.routing, options)
    if table.routing != "hash":
        return ring
    homes = KeyHomes(lambda keys: ray.get(controller.place_keys.remote(keys), timeout=10))
    homes.update(table)
    replicas.on_table = homes.update
    return HomesFirst(ring, homes)


def label_values(label: str) -> dict[str, str]:
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
