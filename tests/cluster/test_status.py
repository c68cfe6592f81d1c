"""`raysched status`: the running brain's nodes, capacities and submissions."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from conftest import fresh_driver_json, run_cli, wait_for

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
    result = run_cli("submit", str(job), "--address", address, "--out", str(folder / "out.csv"), "--quiet", timeout=120)
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
    # the submission ended: it left the brain, and its work with it
    assert all(s["run_id"] != "" for s in state["submissions"])
    assert state["decisions"] >= 4 and state["calls"] >= 1  # the brain decided this run's four tasks


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


def _brain_metrics(address: str) -> dict[str, float]:
    """Every raysched metric sample exported on the cluster's nodes (Prometheus text), summed by name."""
    ports = fresh_driver_json(address, "[n['MetricsExportPort'] for n in ray.nodes() if n['Alive']]")
    totals: dict[str, float] = {}
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("ray_raysched_brain"):
                name = line.split("{")[0].split(" ")[0]
                totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def test_brain_figures_reach_rays_metrics(submitted: str) -> None:
    """The brain exports through ray.util.metrics: Prometheus on each node's metrics export port."""
    wanted = {
        "ray_raysched_brain_decisions_total",
        "ray_raysched_brain_placements_total",
        "ray_raysched_brain_tasks_in_flight",
        "ray_raysched_brain_membership_changes_total",
        "ray_raysched_brain_call_seconds_count",
    }
    found = wait_for(lambda: (m := _brain_metrics(submitted)) and wanted <= set(m) and m, timeout=90, interval=2)
    assert found, _brain_metrics(submitted)
    assert found["ray_raysched_brain_decisions_total"] >= 4  # at least the four tasks of this module's run
    assert found["ray_raysched_brain_placements_total"] >= 4
    assert found["ray_raysched_brain_membership_changes_total"] >= 4  # the cluster's four nodes joined
