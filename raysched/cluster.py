"""Connecting to Ray: an existing cluster, or the embedded local multi-node one on 127.0.0.1.

Ray binds a local cluster to the machine's public interface unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is in the environment before Ray starts;
`loopback_only()` sets it (and Ray's in-process flag) for the embedded cluster
and tests only: a driver joining a real multi-machine cluster must advertise its
real address.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
NAMESPACE = "raysched"
# Faster failure detection than Ray's defaults (about 15 s), so a node killed
# mid-job leaves the ring within about 2 s on the embedded cluster.
DEFAULT_SYSTEM_CONFIG: Mapping[str, Any] = {
    "health_check_initial_delay_ms": 500,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}
CONNECT_TIMEOUT_S = 10.0


class ClusterError(RuntimeError):
    """The cluster cannot be reached or started; the message says what to do next."""


@dataclass(frozen=True)
class LocalNode:
    """One node of the embedded cluster (logical resources, as `ray start` takes them)."""

    num_cpus: float = 1
    num_gpus: float = 0
    resources: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)  # Ray node labels (zone, rack): `--service-spread`


# The embedded default: 4 nodes of unequal size, one with a custom resource.
# configs/local.yaml documents the same shape (a test keeps the two in step).
DEFAULT_LOCAL_NODES: tuple[LocalNode, ...] = (
    LocalNode(num_cpus=1),
    LocalNode(num_cpus=2),
    LocalNode(num_cpus=2, resources={"ssd": 2}),
    LocalNode(num_cpus=4),
)


def loopback_only() -> None:
    """Make every Ray process this one starts bind to 127.0.0.1."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def scale_nodes(nodes: Sequence[LocalNode], count: int | None) -> tuple[LocalNode, ...]:
    """`count` nodes following the configured pattern (cycled when `count` is larger)."""
    if count is None:
        return tuple(nodes)
    if count < 1:
        raise ValueError("--local-nodes must be at least 1")
    return tuple(nodes[i % len(nodes)] for i in range(count))


class EmbeddedCluster:
    """A multi-node Ray cluster of local processes on 127.0.0.1, torn down on exit."""

    def __init__(self, nodes: Sequence[LocalNode], system_config: Mapping[str, Any] | None = None) -> None:
        if not nodes:
            raise ValueError("the embedded cluster needs at least one node")
        self.nodes = tuple(nodes)
        self.system_config = dict(DEFAULT_SYSTEM_CONFIG if system_config is None else system_config)
        self._cluster: Any = None
        self._previous_address: str | None = None

    @property
    def address(self) -> str:
        return self._cluster.address

    def start(self) -> EmbeddedCluster:
        loopback_only()
        from ray._private.utils import read_ray_address
        from ray.cluster_utils import Cluster

        self._previous_address = read_ray_address()  # Cluster overwrites it; put it back afterwards

        head, *workers = self.nodes
        # Ray logs "Overwriting previous Ray address" here; we put the address back on shutdown.
        logging.getLogger("ray._private.utils").setLevel(logging.WARNING)
        try:
            self._cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    **_node_args(head),
                    "node_ip_address": LOOPBACK,
                    "include_dashboard": False,
                    "_system_config": self.system_config,
                },
            )
            for node in workers:
                self._cluster.add_node(**_node_args(node), node_ip_address=LOOPBACK)
            self._cluster.wait_for_nodes()
        except Exception as err:  # a bad node spec or system config, or no room for the processes
            self.shutdown()
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ClusterError(
                f"the embedded cluster did not start: {first}; check local_nodes and system_config in your config"
            ) from None
        return self

    def shutdown(self) -> None:
        """Stop every process the cluster started, the driver's connection included."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if self._cluster is not None:
            self._cluster.shutdown()
            self._cluster = None
            _restore_ray_address(self._previous_address)

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _restore_ray_address(previous: str | None) -> None:
    """Leave `ray.init(address="auto")` pointing where it pointed before the embedded cluster."""
    from ray._private.utils import get_ray_address_file, write_ray_address

    if previous:
        write_ray_address(previous)
    else:
        Path(get_ray_address_file(None)).unlink(missing_ok=True)


def _node_args(node: LocalNode) -> dict[str, Any]:
    return {
        "num_cpus": node.num_cpus,
        "num_gpus": node.num_gpus,
        "resources": dict(node.resources),
        "object_store_memory": 100 * 1024 * 1024,
        **({"labels": dict(node.labels)} if node.labels else {}),
    }


def resolve_address(address: str | None) -> str | None:
    """Turn 'auto' (or RAY_ADDRESS) into the HOST:PORT it stands for, when that can be known here."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address in ("auto", "localhost"):
        from ray._private.utils import read_ray_address

        found = read_ray_address()
        if not found:
            raise ClusterError(
                "no running Ray cluster found on this machine for 'auto'; "
                "start one with `ray start --head` or pass --address HOST:PORT"
            )
        return found
    return address


def address_source(address: str | None) -> str:
    """Where an address came from, for an error that must say why raysched looked there."""
    given = address or os.environ.get("RAY_ADDRESS")
    origin = "--address" if address else "$RAY_ADDRESS"
    if given in ("auto", "localhost"):
        from ray._private.utils import get_ray_address_file

        return (
            f"{origin} {given}: read from Ray's address file {get_ray_address_file(None)}, "
            "which a cluster that is gone may have left behind"
        )
    return f"{origin} {given}"


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0]
    return host == "localhost" or host.startswith("127.")


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with a clear message, when nothing listens at a HOST:PORT address."""
    if "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"cluster address must be HOST:PORT, 'auto' or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({err.strerror or err}); "
            "start one with `ray start --head` or check --address / RAY_ADDRESS"
        ) from None


def inherited_working_dir() -> bool:
    """True inside `ray job submit --working-dir ...`: the job's folder already travels with the Ray job."""
    return '"working_dir"' in os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "")


@contextmanager
def staged_working_dir(job_file: Path) -> Iterator[dict[str, Any]]:
    """A runtime env whose ``working_dir`` holds the job's Python code, removed afterwards.

    Only Python code travels: the job file, the `.py` files beside it and the
    packages (folders with `__init__.py`) beside it, staged in a temporary folder.
    Shipping the whole folder would zip whatever else lives there (a home or
    /tmp folder can hold gigabytes). A working_dir costs seconds of start-up
    (Ray's runtime-env agent and fresh workers), so it is used only for jobs
    that import their sibling modules.
    """
    stage = stage_job_code(job_file)
    try:
        yield {"working_dir": str(stage)}
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def stage_job_code(job_file: Path) -> Path:
    """Copy the job file and its sibling Python modules and packages into a fresh folder."""
    folder = job_file.resolve().parent
    stage = Path(tempfile.mkdtemp(prefix="raysched-job-"))
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix == ".py":
            shutil.copy2(entry, stage / entry.name)
        elif entry.is_dir() and (entry / "__init__.py").exists():
            shutil.copytree(entry, stage / entry.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return stage


def connect(address: str | None, runtime_env: Mapping[str, Any]) -> str | None:
    """Join an existing cluster as a driver in the raysched namespace; the HOST:PORT joined (None: Ray's choice).

    A cluster on loopback is joined on loopback too: otherwise the driver would
    advertise (and look for its raylet on) the machine's public address.
    """
    import ray

    target = resolve_address(address)
    if target is not None:
        try:
            check_reachable(target)
        except ClusterError as err:
            raise ClusterError(f"{err} (the address is from {address_source(address)})") from None
        if is_loopback(target):
            loopback_only()
    started = time.monotonic()
    try:
        ray.init(
            address=target,
            namespace=NAMESPACE,
            runtime_env=dict(runtime_env) or None,
            log_to_driver=True,
            logging_level=logging.ERROR,
            configure_logging=True,
        )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ClusterError(
            f"could not connect to the Ray cluster at {target or 'auto'}"
            f" after {time.monotonic() - started:.0f}s: {message}"
        ) from None
    return target


@dataclass(frozen=True)
class Where:
    """Where a session runs, and since when its cluster was up (Unix seconds)."""

    description: str
    ready_at: float

    def __str__(self) -> str:
        return self.description


@contextmanager
def session(
    address: str | None,
    runtime_env: Mapping[str, Any],
    local_nodes: Sequence[LocalNode],
    system_config: Mapping[str, Any] | None = None,
) -> Iterator[Where]:
    """Connect for the length of a `with` block; yield where (and since when the cluster was up).

    With no address (and no RAY_ADDRESS) an embedded cluster is started and torn
    down afterwards, leaving no Ray process behind.
    """
    import ray

    if address is None and not os.environ.get("RAY_ADDRESS"):
        cluster = EmbeddedCluster(local_nodes, system_config)
        try:
            cluster.start()
            ready_at = time.time()
            connect(cluster.address, runtime_env)
            yield Where(f"embedded cluster of {len(local_nodes)} nodes on {LOOPBACK}", ready_at)
        finally:
            cluster.shutdown()
        return
    target = connect(address, runtime_env)  # 'auto' names the HOST:PORT it found, not itself
    try:
        yield Where(f"cluster at {target or address or os.environ.get('RAY_ADDRESS')}", time.time())
    finally:
        ray.shutdown()
