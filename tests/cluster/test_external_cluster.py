"""raysched on a cluster someone started with `ray start --head`: $RAY_ADDRESS, --address auto, `ray job submit`.

One module-scoped external cluster on loopback: a head node (2 CPUs, with the
dashboard for the Jobs API), a `ray start --head --block` process with ports
of its own and a private RAY_TMPDIR (so `--address auto` finds this cluster and
no other, and nothing touches the machine's /tmp/ray). Loopback only means
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with it Ray refuses `ray start
--address` for a second node, so this cluster has the head alone. The
finalizer stops exactly the processes this module started, by pid: `ray stop`
would also stop every other Ray cluster on the machine (the session's shared
cluster among them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import Result, run_cli, wait_for

LOOPBACK = "127.0.0.1"
JOB = (
    "import time, raysched\n"
    "def work(i):\n    time.sleep(0.02)\n    return {'items': 1}\n"
    "def tasks():\n    for i in range(20):\n        yield raysched.Task(work, args=(i,), key=f'k{i}')\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def node_ports() -> list[str]:
    """The head's ports, all fresh (two clusters on one machine must not share any); workers take random ones."""
    flags = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port",
             "--ray-client-server-port")  # fmt: skip
    ports = [arg for flag in flags for arg in (flag, str(free_port()))]
    return [*ports, "--min-worker-port", "0", "--max-worker-port", "0"]


@dataclass
class External:
    gcs: str  # 127.0.0.1:PORT
    dashboard: str  # http://127.0.0.1:PORT
    env: dict[str, str]  # what a user's shell on this machine has: RAY_TMPDIR, loopback only
    node_ids: set[str]
    head_pid: int
    marker: str  # its temp dir: in the command line of every Ray process of this cluster
    fresh_status: dict[str, Result] = field(default_factory=dict)

    def processes(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        try:
            head = psutil.Process(self.head_pid)
            found.update((p.pid, p) for p in [head, *head.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
        for p in psutil.process_iter(["pid", "cmdline"]):
            if self.marker in " ".join(p.info.get("cmdline") or []):
                found[p.pid] = p
        return list(found.values())


def _ray(*args: str) -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts", *args]


PROBE = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([n["NodeID"] for n in ray.nodes() if n["Alive"]]))
"""


def _stop(procs: list[subprocess.Popen], marker: str) -> None:
    """Stop the `ray start --block` processes and every process of theirs (by pid, never by name)."""
    ours: dict[int, psutil.Process] = {}
    for proc in procs:
        try:
            root = psutil.Process(proc.pid)
            ours[root.pid] = root
            ours.update((child.pid, child) for child in root.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for p in psutil.process_iter(["pid", "cmdline"]):  # Ray daemons that left the process tree (session dir)
        if marker in " ".join(p.info.get("cmdline") or []):
            ours[p.pid] = p
    for p in ours.values():  # a throwaway cluster: every process of it at once, then whatever is left, hard
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(list(ours.values()), timeout=5)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=10)
    for proc in procs:
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def external() -> Iterator[External]:
    base = Path(tempfile.mkdtemp(prefix="rsx-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TMPDIR": str(base), "PYTHONUNBUFFERED": "1"})
    # Ray 2.60 turns token authentication on for `ray start --head` when ~/.ray/auth_token exists (any local
    # `ray.init()` on the machine writes one), and a client given an explicit address then sends no token. This
    # throwaway loopback cluster runs without it, whatever the machine has in ~/.ray.
    env["RAY_AUTH_MODE"] = "disabled"
    port, dashboard = free_port(), free_port()
    gcs = f"{LOOPBACK}:{port}"
    procs: list[subprocess.Popen] = []
    try:
        with (base / "head.log").open("w") as log:
            head = f"--head --block --node-ip-address {LOOPBACK} --port {port} --num-cpus 2 --include-dashboard=true "
            head += f"--dashboard-host {LOOPBACK} --dashboard-port {dashboard} --object-store-memory {100 * 2**20} "
            head += "--disable-usage-stats"
            procs.append(
                subprocess.Popen(
                    _ray("start", *head.split(), *node_ports()),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        def gcs_up() -> bool:
            assert procs[0].poll() is None, (base / "head.log").read_text()
            with socket.socket() as sock:
                return sock.connect_ex((LOOPBACK, port)) == 0

        assert wait_for(gcs_up, timeout=90, interval=0.2), (base / "head.log").read_text()
        probe = subprocess.run([sys.executable, "-c", PROBE, gcs], env=env, capture_output=True, text=True, timeout=150)
        assert probe.returncode == 0, probe.stderr
        node_ids = set(json.loads(probe.stdout.strip().splitlines()[-1]))
        assert len(node_ids) == 1, probe.stdout
        cluster = External(
            gcs=gcs,
            dashboard=f"http://{LOOPBACK}:{dashboard}",
            env=env,
            node_ids=node_ids,
            head_pid=procs[0].pid,
            marker=str(base),
        )
        # Before any submission (whatever order the tests run in): no brain on this cluster yet.
        cluster.fresh_status["flag"] = run_cli("status", "--address", gcs, env=env, timeout=60)
        cluster.fresh_status["env"] = run_cli("status", "--json", env={**env, "RAY_ADDRESS": gcs}, timeout=60)
        yield cluster
    finally:
        _stop(procs, str(base))
        shutil.rmtree(base, ignore_errors=True)


def _job(tmp_path: Path) -> Path:
    job = tmp_path / "extjob.py"
    job.write_text(JOB)
    return job


def _check_run(out: Path, external: External) -> dict:
    df = pd.read_csv(out)
    assert len(df) == 20 and (df["status"] == "ok").all(), df
    assert sorted(df["task_id"]) == list(range(20))
    assert (df["node_ran"] == df["node_chosen"]).all()
    assert set(df["node_ran"]) <= external.node_ids  # it ran on this cluster, not on an embedded one
    return json.loads(out.with_suffix(".json").read_text())["runs"][0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_status_where_no_brain_runs(external: External, how: str) -> None:
    result = external.fresh_status[how]
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    lines = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.err
    assert "no placement brain" in lines[0] and "raysched submit" in lines[0]
    assert result.out == ""


def test_ray_address_from_the_environment(external: External, tmp_path: Path) -> None:
    out = tmp_path / "env.csv"
    result = run_cli(
        "submit",
        str(_job(tmp_path)),
        "--out",
        str(out),
        "--quiet",
        env={**external.env, "RAY_ADDRESS": external.gcs},
        cwd=tmp_path,
        timeout=180,
    )
    assert result.code == 0, result.text
    assert "embedded" not in result.text
    run = _check_run(out, external)
    assert run["cluster"]["where"] == f"cluster at {external.gcs}"
    assert {n["node_id"] for n in run["cluster"]["nodes"]} == external.node_ids


def test_address_auto(external: External, tmp_path: Path) -> None:
    out = tmp_path / "auto.csv"
    result = run_cli(
        "submit",
        str(_job(tmp_path)),
        "--address",
        "auto",
        "--out",
        str(out),
        "--quiet",
        env=external.env,
        cwd=tmp_path,
        timeout=180,
    )
    assert result.code == 0, result.text
    run = _check_run(out, external)
    assert {n["node_id"] for n in run["cluster"]["nodes"]} == external.node_ids
    # and `raysched status` finds the brain the same way
    status = run_cli("status", "--address", "auto", "--json", env=external.env, timeout=60)
    assert status.code == 0, status.text
    assert {n["node_id"] for n in json.loads(status.out)["nodes"]} == external.node_ids


def test_raysched_submit_as_the_entrypoint_of_ray_job_submit(external: External, tmp_path: Path) -> None:
    out = tmp_path / "job.csv"  # absolute: the job's driver runs in Ray's own folder
    job = _job(tmp_path)
    submitted = subprocess.run(
        _ray(
            "job",
            "submit",
            "--address",
            external.dashboard,
            "--",
            "raysched",
            "submit",
            str(job),
            "--out",
            str(out),
            "--quiet",
        ),
        env=external.env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    text = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, text
    assert "succeeded" in text and "tasks ok      20" in text, text
    run = _check_run(out, external)
    assert run["cluster"]["where"] == f"cluster at {external.gcs}"  # the job's own $RAY_ADDRESS


def test_the_external_cluster_listens_on_loopback_only(external: External) -> None:
    pids = {p.pid for p in external.processes()}
    listening = {
        c.laddr.ip for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids
    }
    assert len(pids) >= 4  # GCS, raylet, dashboard, ...: we did look at a real cluster
    assert listening and listening <= {LOOPBACK, "::ffff:127.0.0.1"}, listening
