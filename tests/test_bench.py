"""`raysched bench` smoke tests: the tables print, with figures, on the shared loopback cluster.

Speed targets are measured by the benchmark itself (README, Performance), never asserted here.
"""
from __future__ import annotations

import csv
from pathlib import Path

from conftest import JOBS, run_cli


def test_bench_prints_ratios_against_plain_ray(address: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    result = run_cli("bench", "--address", address, "--tasks", "300", "--rounds", "2", "--policies", "hash,p2c",
                     "--out", str(out))
    assert result.code == 0, result.text
    for mode in ("ray-default", "ray-affinity-rr", "raysched-hash", "raysched-p2c"):
        assert mode in result.out
    assert "brain decisions/s" in result.out
    assert result.err.count("round 2") == 4  # alternating rounds, every mode in each
    rows = {row["mode"]: row for row in csv.DictReader(out.open())}
    assert float(rows["ray-affinity-rr"]["ratio_to_affinity"]) == 1.0
    assert all(float(row["tasks_per_s"]) > 0 for row in rows.values())


def test_bench_on_a_job_compares_policies(address: str, tmp_path: Path) -> None:
    job = tmp_path / "tiny_cache.py"
    text = (JOBS / "cache_affinity.py").read_text()
    job.write_text(text.replace("KEYS = 72", "KEYS = 6").replace("TASKS_PER_KEY = 10", "TASKS_PER_KEY = 3").replace("FETCH_S = 1.0", "FETCH_S = 0.1"))
    result = run_cli("bench", "--address", address, "--job", str(job), "--policies", "hash,random",
                     "--rounds", "1")
    assert result.code == 0, result.text
    lines = {line.split()[0]: line.split() for line in result.out.splitlines() if line.strip()}
    assert "hash" in lines and "random" in lines
    assert lines["hash"][-1] == "1.00x"
    assert "cache hits" in result.out and "%" in lines["random"][-2]


def test_bench_rejects_unknown_policies(address: str) -> None:
    result = run_cli("bench", "--address", address, "--policies", "hash,fastest")
    assert result.code == 2 and "fastest" in result.err and "Traceback" not in result.text


def test_bench_rejects_an_empty_policy_list() -> None:
    result = run_cli("bench", "--policies", " , ")
    assert result.code == 2 and "at least one policy" in result.err and "Traceback" not in result.text
