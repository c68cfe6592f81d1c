"""`raysched deploy`, `raysched undeploy` and `raysched.get_service`: services that outlive one submission.

`deploy` loads a job file, and for each service it declares starts a controller
(`raysched.driver.controller`, a detached named actor) that places and owns the replicas and keeps
them up after the command returns. `undeploy` removes one. `get_service` gives any program a
handle whose ``METHOD.remote(*args, key=K)`` returns the ObjectRef of the method's real value
(`raysched.driver.handle`). A job whose tasks call a deployed service by its name uses its replicas
(`raysched.driver.deployed`). Every user mistake is a `DeployError` with one line saying what to do.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from raysched import cluster, policies
from raysched.config import policy_options
from raysched.driver.controller import find_controller, start_controller
from raysched.driver.handle import NotDeployed, ServiceHandle, deployed_names, not_deployed, open_handle
from raysched.driver.replicas import READY_TIMEOUT_S
from raysched.driver.table import HANDLE_POLICIES
from raysched.job import JobFileError, load_job
from raysched.services import spec_of
from raysched.submission import SubmitError, label_values, resolve_settings

__all__ = ["DeployError", "NotDeployed", "deploy", "deployed_status", "get_service", "undeploy"]

STOP_TIMEOUT_S = 60.0


class DeployError(ValueError):
    """Bad input for deploy or undeploy (job file, flags, cluster, name): one line for the user."""


def target_address(address: str | None) -> str:
    """Where deploy, undeploy and status look: the address given, else $RAY_ADDRESS, else 'auto' (a cluster
    started on this machine). Never an embedded cluster: it would end with the command."""
    return address or os.environ.get("RAY_ADDRESS") or "auto"


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Joined to the cluster for the length of a `with` block (DeployError when it cannot be reached); a Ray
    session this process already has is used as it is, and left open."""
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        cluster.connect(target_address(address), {})
    except cluster.ClusterError as err:
        raise DeployError(f"{err}; deploy needs a running cluster (ray start --head, or --address)") from None
    try:
        yield
    finally:
        ray.shutdown()


def deploy(
    job_path: str | Path,
    *,
    address: str | None = None,
    policy: str | None = None,
    service_policy: str | None = None,
    service_spread: str | None = None,
    vnodes: int | None = None,
    config: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Place a job file's services on the cluster and keep them up; each service's status once its replicas are up.

    ``policy`` routes the calls (hash, random, p2c, greedy or pack; default hash), ``service_policy`` places the
    replicas (default greedy), ``service_spread`` spreads them over a node label's values. A name already deployed
    is refused (undeploy it first): nothing is replaced. If any service cannot start, none stays deployed.
    """
    try:
        settings = resolve_settings(
            None, config, policy=policy, service_policy=service_policy, service_spread=service_spread, vnodes=vnodes
        )
    except SubmitError as err:
        raise DeployError(str(err)) from None
    if settings.policy not in HANDLE_POLICIES:
        raise DeployError(
            f"--policy {settings.policy}: a deployed service's calls are routed by {', '.join(HANDLE_POLICIES)}"
        )
    search = [Path(job_path).resolve().parent]
    try:
        placement = policies.build_policy(settings.service_policy, policy_options(settings), search=search)
        job = load_job(job_path)
    except (ValueError, JobFileError) as err:
        raise DeployError(str(err)) from None
    if not job.services:
        raise DeployError(f"{job.name} declares no service (@raysched.service class); there is nothing to deploy")
    if job.needs_working_dir:
        raise DeployError(
            f"{job.name} imports modules beside it; a deployed service's code must travel by value "
            "(keep the service's code in the job file, or in an installed package)"
        )
    policies.ship_by_value(placement)
    names = [spec_of(s).name for s in job.services]
    with connected(address or settings.address):
        import ray

        job.ship_by_value()
        taken = [name for name in names if find_controller(name) is not None]
        if taken:
            raise DeployError(
                f"service {', '.join(taken)} is deployed already; undeploy it first (raysched undeploy {taken[0]})"
            )
        try:
            domains = label_values(settings.service_spread) if settings.service_spread else None
        except SubmitError as err:
            raise DeployError(str(err)) from None
        info = {
            "job": job.name,
            "job_path": str(job.path),
            "policy": settings.policy,
            "service_policy": settings.service_policy,
            "deployed_at": time.time(),
        }
        started: list[tuple[str, Any]] = []
        statuses = []
        try:
            for declared in job.services:
                name = spec_of(declared).name
                try:
                    actor = start_controller(
                        declared, placement, settings.policy, info, vnodes=settings.vnodes, domains=domains
                    )
                except ValueError:  # another deploy of this name won the race
                    raise DeployError(
                        f"service {name} was deployed meanwhile by someone else; nothing replaced"
                    ) from None
                started.append((name, actor))
                statuses.append(_started(name, actor, ray))
        except BaseException:
            for _, actor in started:
                _remove(actor, ray)
            raise
        return statuses


def _started(name: str, actor: Any, ray: Any) -> dict[str, Any]:
    """Wait for a controller's replicas to be up; its status (DeployError with the reason when they cannot be)."""
    try:
        status: dict[str, Any] = ray.get(actor.start.remote(), timeout=READY_TIMEOUT_S + 30)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None) or err
        raise DeployError(f"service {name} did not start: {cause}") from None
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as err:
        raise DeployError(f"service {name} did not start: {type(err).__name__}") from None
    return status


def _remove(actor: Any, ray: Any) -> dict[str, Any]:
    """Stop a controller (replicas removed, reservations freed), then end its actor; its last status."""
    final: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        final = ray.get(actor.stop.remote(), timeout=STOP_TIMEOUT_S)
    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)  # the replicas it owned go with it, if any were left
    return final


def undeploy(name: str, *, address: str | None = None) -> dict[str, Any]:
    """Remove a deployed service: its replicas killed, their reservations freed, its controller gone; its last
    status. DeployError when no service of that name is deployed (the message lists those that are)."""
    with connected(address):
        import ray

        actor = find_controller(name)
        if actor is None:
            raise DeployError(str(not_deployed(name)))
        final = _remove(actor, ray)
        deadline = time.monotonic() + 10
        while find_controller(name) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # the name is freed asynchronously: status must not show it any more
        return final or {"service": name}


def deployed_status() -> list[dict[str, Any]]:
    """Each deployed service's status on the connected cluster (a controller that does not answer says so)."""
    import ray

    out = []
    for name in deployed_names():
        actor = find_controller(name)
        try:
            out.append(ray.get(actor.status.remote(), timeout=10) if actor is not None else {"service": name})
        except Exception as err:
            out.append({"service": name, "error": f"{type(err).__name__}: its controller did not answer"})
    return out


_handles: dict[tuple[str, str], ServiceHandle] = {}


def get_service(name: str, address: str | None = None) -> ServiceHandle:
    """A handle on the deployed service ``name``: ``handle.METHOD.remote(*args, key=K, **kwargs)`` returns the Ray
    ObjectRef of the method's return value, routed by the service's policy (hash: the key's replica, the same from
    every client).

    Connects like `raysched.submit`: the Ray session already initialised in this process if there is one, else
    ``address`` (HOST:PORT or 'auto'), else $RAY_ADDRESS, else 'auto'. One handle per service and process is cached and
    reused. Raises `NotDeployed` (a LookupError listing what is deployed) for an unknown name and
    `raysched.cluster.ClusterError` when no cluster answers.
    """
    import ray

    if not ray.is_initialized():
        cluster.connect(target_address(address), {})
    session = ray.get_runtime_context().get_job_id()
    cached = _handles.get((session, name))
    if cached is not None and not cached.closed:
        return cached
    handle = _handles[(session, name)] = open_handle(name)
    return handle
