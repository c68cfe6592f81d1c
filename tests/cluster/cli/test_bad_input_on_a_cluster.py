"""Bad input and failing tasks, driven through `raysched submit` as a user would.

Every bad input must end with exit 2, exactly one line on stderr that starts with
"Error:" and names the problem (and what to do), no traceback, and no hang.
A job whose tasks fail exits 1 and records each attempt in the CSV.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from bad_input import GOOD_JOB, TIMEOUT, assert_bad_input, failing_job, submit, write
from conftest import run_cli


@pytest.fixture
def good_job(tmp_path: Path) -> Path:
    return write(tmp_path / "good.py", GOOD_JOB)


def test_tasks_yielding_a_non_task(tmp_path: Path, address: str) -> None:
    # The items are checked as they are drawn, so the run needs a cluster.
    job = write(
        tmp_path / "plain.py", "def work(i):\n    return i\ndef tasks():\n    yield {'fn': work, 'args': (1,)}\n"
    )
    out = tmp_path / "out.csv"
    assert_bad_input(
        submit(str(job), "--address", address, "--out", str(out)), "plain.py", "item 0", "dict", "yield raysched.Task"
    )


def test_infeasible_demand_names_demand_and_largest_node(address: str, tmp_path: Path) -> None:
    job = write(
        tmp_path / "huge.py",
        "import raysched\n"
        "@raysched.task(num_cpus=64)\ndef huge(i):\n    return i\n"
        "def tasks():\n    for i in range(2):\n        yield raysched.Task(huge, args=(i,))\n",
    )
    out = tmp_path / "out.csv"
    line = assert_bad_input(
        submit(str(job), "--address", address, "--out", str(out)), "infeasible", "CPU", "64", "largest node"
    )
    assert re.search(r"largest node .*CPU\W*4\b", line), line  # the 4-CPU node, with its capacity
    df = pd.read_csv(out)  # the run records what it refused
    assert "infeasible" in set(df["status"]), df
    assert (df["status"] != "ok").all() and (df["demand"] == "CPU=64").all()


@pytest.mark.parametrize("capture", ["lock", "generator"])
def test_function_that_cannot_be_serialized(address: str, tmp_path: Path, capture: str) -> None:
    make = {"lock": "threading.Lock()", "generator": "(x for x in range(3))"}[capture]
    job = write(
        tmp_path / f"unpicklable_{capture}.py",
        "import threading, raysched\n"
        "def tasks():\n"
        f"    held = {make}\n"
        "    def work(i):\n"
        "        return {'items': 1, 'held': held is not None}\n"
        "    for i in range(3):\n"
        "        yield raysched.Task(work, args=(i,))\n",
    )
    out = tmp_path / "out.csv"
    result = submit(str(job), "--address", address, "--out", str(out))
    assert_bad_input(result, "serializ", "work")


def test_failing_task_gets_a_failed_row_and_exit_1(address: str, tmp_path: Path) -> None:
    job = failing_job(tmp_path, 5, "i == 3")
    out = tmp_path / "out.csv"
    result = submit(str(job), "--address", address, "--out", str(out))
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 5
    failed = df[df["task_id"] == 3]
    assert list(failed["status"]) == ["failed"]
    assert list(failed["error"]) == ["ValueError: bad row 3"]
    others = df[df["task_id"] != 3]
    assert (others["status"] == "ok").all() and sorted(others["task_id"]) == [0, 1, 2, 4]


def test_retries_give_the_failing_task_three_attempts(address: str, tmp_path: Path) -> None:
    job = failing_job(tmp_path, 4, "i == 3")
    out = tmp_path / "out.csv"
    result = submit(str(job), "--address", address, "--out", str(out), "--retries", "2")
    assert result.code == 1, result.text
    df = pd.read_csv(out, keep_default_na=False)
    bad = df[df["task_id"] == 3].sort_values("attempt")
    assert list(bad["attempt"]) == [1, 2, 3]
    assert list(bad["status"]) == ["retried", "retried", "failed"]
    assert (bad["error"] == "ValueError: bad row 3").all()
    good = df[df["task_id"] != 3]
    assert (good["status"] == "ok").all() and (good["attempt"] == 1).all() and len(good) == 3


def test_max_failures_stops_early(address: str, tmp_path: Path) -> None:
    tasks = 40
    job = failing_job(tmp_path, tasks, "True")
    out = tmp_path / "out.csv"
    result = submit(str(job), "--address", address, "--out", str(out), "--max-failures", "1", "--max-inflight", "2")
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert "max-failures" in result.text
    df = pd.read_csv(out, keep_default_na=False)
    assert (df["status"] == "failed").sum() >= 1 and len(df) < tasks
    assert set(df["status"]) <= {"failed", "cancelled"}


def test_tasks_generator_raising_part_way(tmp_path: Path, address: str) -> None:
    job = write(
        tmp_path / "halfway.py",
        "import raysched\ndef tasks():\n    yield raysched.Task(print)\n    raise OSError('input file vanished')\n",
    )
    result = submit(str(job), "--address", address, "--out", str(tmp_path / "out.csv"))
    assert_bad_input(result, "tasks() raised OSError", "input file vanished")


def test_user_policy_that_raises(tmp_path: Path, address: str, good_job: Path) -> None:
    write(
        tmp_path / "brokenpolicy.py",
        "class Broken:\n    name = 'broken'\n    def choose(self, task, view):\n        raise KeyError('bucket')\n",
    )
    result = run_cli(
        "submit",
        str(good_job),
        "--address",
        address,
        "--policy",
        "brokenpolicy:Broken",
        "--out",
        str(tmp_path / "out.csv"),
        cwd=tmp_path,
        timeout=TIMEOUT,
    )
    assert_bad_input(result, "policy error", "raised KeyError")
