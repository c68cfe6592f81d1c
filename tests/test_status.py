"""`raysched status`: the running brain's nodes, capacities and submissions."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import run_cli

JOB = (
    "import raysched\n"
    "def work(i):\n    return {'items': 1}\n"
    "def tasks():\n    for i in range(4):\n        yield raysched.Task(work, args=(i,), key=str(i))\n"
)


@pytest.fixture(scope="module")
def submitted(address: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The shared cluster after one submission, so its brain exists."""
    folder = tmp_path_factory.mktemp("status")
    job = folder / "tiny.py"
    job.write_text(JOB)
    result = run_cli("submit", str(job), "--address", address, "--out", str(folder / "out.csv"), "--quiet",
                     timeout=120)
    assert result.code == 0, result.text
    return address


def test_status_where_no_cluster_answers() -> None:
    started = time.monotonic()
    result = run_cli("status", "--address", "127.0.0.1:1", timeout=60)
    assert time.monotonic() - started < 30
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    lines = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.err
    assert "no Ray cluster answers" in lines[0] and "127.0.0.1:1" in lines[0]


def test_status_json_shows_the_clusters_nodes(submitted: str) -> None:
    result = run_cli("status", "--address", submitted, "--json", timeout=60)
    assert result.code == 0, result.text
    state = json.loads(result.out)
    assert {"nodes", "submissions", "brain_id"} <= set(state)
    assert isinstance(state["brain_id"], str) and state["brain_id"]
    nodes = state["nodes"]
    assert len(nodes) == 4 and all(n["alive"] for n in nodes)
    assert all(len(n["node_id"]) == 56 for n in nodes)
    assert sorted(n["capacity"]["CPU"] for n in nodes) == [1, 2, 2, 4]
    with_ssd = [n for n in nodes if "ssd" in n["capacity"]]
    assert len(with_ssd) == 1
    assert with_ssd[0]["capacity"]["ssd"] == 2 and with_ssd[0]["capacity"]["CPU"] == 2
    assert isinstance(state["submissions"], list)


def test_status_text_lists_the_live_nodes(submitted: str) -> None:
    state = json.loads(run_cli("status", "--address", submitted, "--json", timeout=60).out)
    result = run_cli("status", "--address", submitted, timeout=60)
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    assert state["brain_id"] in result.out
    assert "4 live nodes" in result.out
    for node in state["nodes"]:
        assert node["node_id"][:8] in result.out
    cpus = sorted(int(n["capacity"]["CPU"]) for n in state["nodes"])
    for cpu in set(cpus):
        assert result.out.count(f"CPU={cpu}") == cpus.count(cpu), result.out
    assert result.out.count("ssd=2") == 1
    assert "submissions:" in result.out
