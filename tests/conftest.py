"""Shared fixtures: one loopback multi-node Ray cluster per test session, and a CLI runner.

`tests/unit/...` mirrors the packages and needs no Ray cluster (`python -m pytest -m "not cluster"`
runs it in under a minute); `tests/cluster/...` starts real loopback clusters and carries the
`cluster` marker, given here by location. Cluster tests drive `raysched` the way a user does, as a
subprocess with `--address` pointing at the shared cluster, so each test is a real Ray job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only, before Ray is imported

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> Result:
    """Run `raysched ARGS` as a user would, in a fresh process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("RAY_ADDRESS", None) if env is None or "RAY_ADDRESS" not in env else None
    proc = subprocess.run(
        [sys.executable, "-m", "raysched.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


CLUSTER_FIXTURES = {"ray_cluster", "address"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/cluster `cluster`; refuse a unit test that asks for a cluster."""
    cluster_dir = Path(__file__).parent / "cluster"
    for item in items:
        if cluster_dir in item.path.parents:
            item.add_marker(pytest.mark.cluster)
        elif CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid} needs a Ray cluster: move it under tests/cluster")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A 4-node loopback cluster (1, 2, 2, 4 CPUs; one node with `ssd`), shared by the session."""
    from raysched.cluster import DEFAULT_LOCAL_NODES, EmbeddedCluster

    cluster = EmbeddedCluster(DEFAULT_LOCAL_NODES).start()
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="session")
def address(ray_cluster: object) -> str:
    return ray_cluster.address  # type: ignore[attr-defined]


def wait_for(condition, timeout: float = 30.0, interval: float = 0.1):
    """Poll `condition()` until it returns something truthy; return it, or the falsy value at the deadline.

    Deadlines are generous (this machine is shared and loaded): they bound a hang, they do not time
    the behaviour. Callers assert on the result.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)  # the poll interval of this condition wait


def fresh_driver_json(address: str, expression: str, setup: str = "") -> Any:
    """What a fresh Ray driver on the cluster at ``address`` finds: it runs the ``setup`` statements, then prints
    ``expression`` as JSON (a driver of its own, as a user's is: nothing of this test process leaks into it)."""
    code = (
        "import json, ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
        f"{setup}print(json.dumps({expression}))"
    )
    done = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_submit(address: str, job: Path, out: Path, *args: str) -> subprocess.Popen:
    """`raysched submit` as a user's background process against ``address`` (RAY_ADDRESS cleared), output piped."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raysched.cli",
            "submit",
            str(job),
            "--address",
            address,
            "--out",
            str(out),
            "--quiet",
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )


def ok_rows(path: Path) -> int:
    """Ok rows written so far (the file may be mid-write)."""
    import pandas as pd

    if not path.exists():
        return 0
    try:
        return int((pd.read_csv(path, on_bad_lines="skip")["status"] == "ok").sum())
    except (pd.errors.EmptyDataError, KeyError):
        return 0
