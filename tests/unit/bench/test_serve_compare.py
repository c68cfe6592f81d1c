"""benchmarks/serve_compare.py: its arguments and figures, pure, with or without Ray Serve installed.

Serve comes only with the `bench` extra, which CI does not install: nothing here may need it, except the
one test that builds the Serve application (skipped without Serve). The comparison itself is run by hand.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "serve_compare.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_compare_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sc(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setitem(sys.modules, "ray.serve", None)  # as if Serve were not installed: `import ray.serve` fails
    return load()


def test_the_script_imports_and_parses_without_serve(sc: ModuleType) -> None:
    args = sc.parse_args([])
    assert args.contenders == list(sc.CONTENDERS)
    assert (args.rounds, args.calls, args.clients, args.replicas, args.latency_calls) == (2, 2000, 8, 4, 200)
    with pytest.raises(ImportError):
        import ray.serve  # noqa: F401


def test_asking_for_serve_without_serve_says_how_to_install_it(sc: ModuleType) -> None:
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[bench\]'"):
        sc.main(["--contenders", "serve-multiplexed"])


@pytest.mark.parametrize(
    "argv",
    [["--contenders", "raysched-hash,nginx"], ["--contenders", ","], ["--calls", "0"], ["--miss-ms", "-1"]],
)
def test_bad_arguments_are_refused(sc: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        sc.parse_args(argv)
    assert exc.value.code == 2


def test_a_driver_gets_the_harness_workload(sc: ModuleType, tmp_path: Path) -> None:
    args = sc.parse_args(["--calls", "300", "--models", "8", "--clients", "3", "--hit-ms", "2.5", "--warmup", "0"])
    argv = sc.driver_argv(args, "serve-default", "127.0.0.1:6379", tmp_path / "out.json")
    assert argv[:2] == [sys.executable, str(SCRIPT)]
    driver = sc.parse_args(argv[2:])
    assert (driver.driver, driver.address) == ("serve-default", "127.0.0.1:6379")
    assert driver.out == str(tmp_path / "out.json")
    assert sc.workload(driver) == sc.workload(args) == sc.Workload(4, 8, 12, 2.5, 100.0)
    assert (driver.calls, driver.clients, driver.warmup) == (300, 3, 0)


def test_the_raysched_job_is_python_with_the_workload_in_it(sc: ModuleType) -> None:
    text = sc.raysched_job(sc.Workload(replicas=3, models=7, cache=5, hit_ms=2.0, miss_ms=50.0))
    compile(text, "serve_compare_job.py", "exec")
    assert "CACHE, HIT_S, MISS_S = 5, 0.002, 0.05" in text
    assert "@raysched.service(num_cpus=1, replicas=3)" in text and "class Shard:" in text


def test_key_affinity_counts_keys_all_of_whose_calls_one_replica_served(sc: ModuleType) -> None:
    models = ["a", "a", "b", "b", "b", "c"]
    replicas = ["r1", "r1", "r1", "r2", "r1", "r3"]
    # a: {r1}, b: {r1, r2}, c: {r3} -> 2 of 3 keys on one replica; replicas per key (1 + 2 + 1) / 3
    assert sc.one_replica_pct(models, replicas) == pytest.approx(200 / 3)
    assert sc.replicas_per_key(models, replicas) == pytest.approx(4 / 3)
    assert sc.one_replica_pct([], []) != sc.one_replica_pct([], [])  # no calls: nan


def calls(sent: list[float], done: list[float], work: float = 0.005, hit: bool = True) -> dict:
    n = len(sent)
    return {
        "sent": sent,
        "done": done,
        "model": [f"model-{i % 2}" for i in range(n)],
        "replica": [f"r{i % 2}" for i in range(n)],
        "hit": [hit] * n,
        "work_s": [work] * n,
    }


def test_run_figures(sc: ModuleType) -> None:
    # under load: 101 calls sent from 0.5, finishing every 0.01 s from 1.00 to 2.00 -> whole 101 / 1.5 s;
    # steady: p10 = 1.10, p90 = 1.90, 81 finishes in 0.80 s
    load = calls([0.5] * 101, [1 + i / 100 for i in range(101)])
    # low load: latencies 10, 20, ..., 100 ms (p50 55 ms, p95 95.5 ms), each with 5 ms of replica work
    low = calls([0.0] * 10, [i / 100 for i in range(1, 11)], hit=False)
    fig = sc.run_figures({"load": load, "low": low, "deploy_s": 4.0})
    assert fig["calls_per_s"] == pytest.approx(101 / 1.5)
    assert fig["steady_per_s"] == pytest.approx(81 / 0.8)
    assert (fig["hit_pct"], fig["low_hit_pct"], fig["one_replica_pct"], fig["replicas_per_key"]) == (100, 0, 100, 1)
    assert fig["p50_ms"] == pytest.approx(55.0)
    assert fig["p95_ms"] == pytest.approx(95.5)
    assert fig["outside_p50_ms"] == pytest.approx(50.0)
    assert fig["deploy_s"] == 4.0


def figures(calls_per_s: float, one_replica: float = 100.0, p50: float = 5.0) -> dict[str, float]:
    keys = ("hit_pct", "replicas_per_key", "p95_ms", "outside_p50_ms", "low_hit_pct", "deploy_s")
    mine = {"calls_per_s": calls_per_s, "steady_per_s": calls_per_s, "one_replica_pct": one_replica, "p50_ms": p50}
    return {**mine, **dict.fromkeys(keys, 1.0)}


def test_summary_is_the_median_per_contender_in_running_order(sc: ModuleType) -> None:
    runs = [
        ("raysched-hash", figures(100.0)),
        ("serve-multiplexed", figures(50.0)),
        ("raysched-hash", figures(120.0)),
        ("serve-multiplexed", figures(70.0)),
    ]
    table = sc.summarize(runs)
    assert list(table) == ["raysched-hash", "serve-multiplexed"]
    assert table["raysched-hash"]["calls_per_s"] == pytest.approx(110.0)
    assert table["raysched-hash"]["runs_per_s"] == [100.0, 120.0]
    assert table["serve-multiplexed"]["calls_per_s"] == pytest.approx(60.0)


def test_targets_met_and_missed(sc: ModuleType) -> None:
    table = sc.summarize(
        [("raysched-hash", figures(130.0, one_replica=95.0, p50=6.0)), ("serve-multiplexed", figures(100.0, 40, 5.0))]
    )
    met = [v.met for v in sc.verdicts(table)]
    assert met == [True, True, True, False]  # 1.30x whole and steady, 95% of keys, 6.0 ms > 5.0 ms
    report = sc.format_report(table, sc.parse_args(["--rounds", "1"]))
    assert "1.30x" in report and "95% (Serve multiplexed 40%)" in report and "MISSED" in report
    assert "6.0 ms vs 5.0 ms" in report


def test_targets_without_serve_measured_say_so(sc: ModuleType) -> None:
    table = sc.summarize([("raysched-hash", figures(130.0, one_replica=90.0))])
    assert [v.met for v in sc.verdicts(table)] == [None, None, False, None]
    assert "not measured" in sc.format_report(table, sc.parse_args([]))


def test_the_serve_application_builds_and_binds_its_replicas_grpc_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ray.serve", reason="Ray Serve comes with the bench extra: pip install -e '.[bench]'")
    import ray.serve._private.replica as replica

    sc = load()
    assert sc.serve_app(sc.Workload()) is not None  # an Application: builds without a cluster
    seen: list[str] = []
    monkeypatch.setattr(replica, "add_port_to_grpc_server", lambda server, address: seen.append(address) or 1)
    sc.bind_serve_replica_grpc_to_loopback()
    sc.bind_serve_replica_grpc_to_loopback()  # twice: wrapped once
    assert replica.add_port_to_grpc_server(object(), "[::]:0") == 1
    assert seen == ["127.0.0.1:0"]
