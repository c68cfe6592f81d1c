"""Stopping a run (SIGTERM, Ctrl-C twice), work lost to Ray retried at most 5 times, and the default --out path.

These tests own a small loopback cluster (two 2-CPU nodes): an interrupted
driver may leave its submission at the brain until it expires, which must not
disturb the shared cluster's other tests.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import ok_rows, run_cli, start_submit, wait_for


@pytest.fixture(scope="module")
def own_address() -> Iterator[str]:
    from raysched.cluster import EmbeddedCluster, LocalNode

    cluster = EmbeddedCluster((LocalNode(num_cpus=2), LocalNode(num_cpus=2))).start()
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def summary_count(text: str, label: str) -> int:
    """`  tasks ok      12` -> 12 (0 when the line is absent, as the summary leaves out empty counts)."""
    found = re.search(rf"^  {re.escape(label)}\s+(\d+)\s*$", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def test_sigterm_stops_with_exit_130_a_partial_summary_and_cancelled_rows(own_address: str, tmp_path: Path) -> None:
    n = 40
    job = tmp_path / "slow.py"
    job.write_text(
        "import time, raysched\n"
        "def work(i):\n    time.sleep(0.3)\n    return {'items': 1}\n"
        f"def tasks():\n    for i in range({n}):\n        yield raysched.Task(work, args=(i,), key=f'k{{i}}')\n"
    )
    out = tmp_path / "out.csv"
    proc = start_submit(own_address, job, out)
    try:
        assert wait_for(lambda: ok_rows(out) >= 4 or proc.poll() is not None, timeout=120), "the job never got going"
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "interrupted: in-flight tasks were cancelled" in stdout  # the partial summary
    df = pd.read_csv(out, keep_default_na=False)
    assert set(df["status"]) <= {"ok", "cancelled"}
    ok, cancelled = df[df["status"] == "ok"], df[df["status"] == "cancelled"]
    assert len(cancelled) >= 1 and cancelled["error"].str.startswith("Cancelled").all()
    assert 4 <= len(ok) < n and ok["task_id"].is_unique
    assert not set(ok["task_id"]) & set(cancelled["task_id"])
    assert summary_count(stdout, "tasks ok") == len(ok)  # the summary counts what the CSV holds
    assert summary_count(stdout, "cancelled") == len(cancelled)


def test_a_second_ctrl_c_stops_at_once(own_address: str, tmp_path: Path) -> None:
    """The first Ctrl-C asks for an orderly stop, which a stuck tasks() generator holds up; the second one ends it."""
    gate, beats = tmp_path / "open", tmp_path / "beats"
    job = tmp_path / "stuck.py"
    job.write_text(
        "import time, raysched\n"
        "def work(i):\n    return {'items': 1}\n"
        "def tasks():\n"
        "    yield raysched.Task(work, args=(0,))\n"
        "    beat, deadline = 0, time.time() + 120\n"
        f"    while not __import__('os').path.exists({str(gate)!r}) and time.time() < deadline:\n"
        "        beat += 1\n"
        f"        open({str(beats)!r}, 'w').write(str(beat))  # the driver is stuck here, and says so\n"
        "        time.sleep(0.05)\n"
        "    yield raysched.Task(work, args=(1,))\n"
    )

    def beat() -> int:
        try:
            return int(beats.read_text() or 0)
        except (OSError, ValueError):
            return 0

    proc = start_submit(own_address, job, tmp_path / "out.csv")
    try:
        assert wait_for(lambda: beat() >= 1 or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        seen = beat()
        # The generator went on for a few beats after the first signal: its handler has run by then.
        wait_for(lambda: beat() >= seen + 3 or proc.poll() is not None, timeout=30)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        stopped = wait_for(lambda: proc.poll() is not None, timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        gate.touch()  # whatever happened, let the generator finish
        stdout, stderr = proc.communicate(timeout=120)
    assert stopped, f"still running {elapsed:.0f} s after the second Ctrl-C: {stdout + stderr}"
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "interrupted" in stdout + stderr


def test_lost_work_is_retried_five_times_and_default_out_path(own_address: str, tmp_path: Path) -> None:
    """A task that kills its own worker every time: attempts 1..6, five `retried` rows then `failed`, exit 1;
    the other tasks each end ok once (one queued on the executor it took down is retried)."""
    job = tmp_path / "jobs" / "crashy.py"
    job.parent.mkdir()
    job.write_text(
        "import os, raysched\n"
        "def work(i):\n"
        "    if i == 2:\n"
        "        os._exit(1)  # the worker process dies: Ray reports the work as lost\n"
        "    return {'items': 1}\n"
        "def tasks():\n    for i in range(5):\n        yield raysched.Task(work, args=(i,))\n"
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    # A local time zone 5:30 h off UTC, so a local-time stamp cannot pass for a UTC one.
    result = run_cli(
        "submit",
        str(job),
        "--address",
        own_address,
        "--policy",
        "random",
        "--quiet",
        cwd=cwd,
        env={"TZ": "XYZ-5:30"},
        timeout=240,
    )
    after = dt.datetime.now(dt.timezone.utc)
    assert result.code == 1, result.text
    assert "Traceback" not in result.text

    # No --out: results/<job stem>-<policy>-<UTC time>.csv, relative to the working directory.
    written = sorted(p.relative_to(cwd).as_posix() for p in cwd.rglob("*") if p.is_file())
    assert len(written) == 2, written  # the CSV and its sidecar, nothing else
    csv_name = next(name for name in written if name.endswith(".csv"))
    match = re.fullmatch(r"results/crashy-random-(\d{8}T\d{6}Z)\.csv", csv_name)
    assert match, written
    assert csv_name.removesuffix(".csv") + ".json" in written
    stamp = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    assert before <= stamp <= after, (before, stamp, after)

    df = pd.read_csv(cwd / csv_name, keep_default_na=False)
    lost = df[df["task_id"] == 2].sort_values("attempt")
    assert list(lost["attempt"]) == [1, 2, 3, 4, 5, 6]
    assert list(lost["status"]) == ["retried"] * 5 + ["failed"]
    assert (lost["error"] != "").all()
    others = df[df["task_id"] != 2]
    ok = others[others["status"] == "ok"]
    assert sorted(ok["task_id"]) == [0, 1, 3, 4]  # every other task ran, once
    last = others.groupby("task_id")["attempt"].max()
    assert ok.set_index("task_id")["attempt"].sort_index().to_dict() == last.to_dict()
    # A task queued on the executor that task 2 took down was lost with it (docs/executors.md): such a row is
    # `retried`, ran via that executor, and says its actor died; a task's own work is never blamed.
    collateral = others[others["status"] != "ok"]
    assert (collateral["status"] == "retried").all(), collateral
    crashed = set(lost.loc[lost["via"] == "executor", "executor"])
    assert set(collateral["executor"]) <= crashed, (collateral, crashed)
    assert collateral["error"].str.contains("Actor").all(), collateral
