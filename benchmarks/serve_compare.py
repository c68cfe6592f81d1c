"""raysched services against Ray Serve, from the same driver code shape, on one loopback cluster.

Four contenders, each a fresh driver process, alternating A B C D A B C D on one 4 x 2-CPU loopback cluster:

* ``raysched-hash`` / ``raysched-random``: `raysched deploy` of a service of 4 one-CPU replicas routed by that
  policy, then ``h = raysched.get_service("Shard", address=...)`` and
  ``ray.get(h.predict.remote(model_id, x, key=model_id))``;
* ``serve-multiplexed``: a Serve deployment of 4 one-CPU replicas whose models load through
  ``@serve.multiplexed``, called as ``h.options(multiplexed_model_id=model_id).predict.remote(model_id, x)``;
* ``serve-default``: the same deployment called without a model id (Serve's default router).

The workload is cache-bound, as jobs/service_cache.py: each replica keeps an LRU of ``--cache`` models; a call
for a model it holds takes ``--hit-ms``, one it must load first ``--miss-ms`` more. A replica works on one call
at a time (a lock in both frameworks: one CPU) and returns the result to the caller. Each run deploys its
contender afresh (cold caches) and removes it at the end, so every run starts alike. Per run:

1. load: ``--clients`` threads each keep one call in flight (equal concurrency for every contender) until
   ``--calls`` calls over ``--models`` models (call i is for model i mod models) are done: throughput over
   the whole run (calls / (last finish - first send)) and in steady state (finishes between the 10th and 90th
   percentile finish times), hit rate, and the share of keys all of whose calls one replica served;
2. low load: ``--warmup`` calls one at a time (not measured), then ``--latency-calls`` calls one at a time:
   p50/p95 latency from the send to the value in the caller's hands, and the part of it spent outside the
   replica's work (handle, routing, transport).

Serve runs without HTTP proxies (handles only); the cluster is bound to 127.0.0.1. Serve is not a raysched
dependency: ``pip install -e '.[bench]'`` installs it.

    python benchmarks/serve_compare.py                  # 2 rounds, about 10 minutes on a 2-core machine
    python benchmarks/serve_compare.py --rounds 3 --contenders raysched-hash,serve-multiplexed
    python benchmarks/serve_compare.py --cache 16 --keep results/serve-compare   # raw call timings kept
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raysched.bench.compare import BENCH_NODES, steady_rate
from raysched.results.figures import per_s

RAYSCHED_HASH = "raysched-hash"
RAYSCHED_RANDOM = "raysched-random"
SERVE_MUX = "serve-multiplexed"
SERVE_DEFAULT = "serve-default"
CONTENDERS = (RAYSCHED_HASH, RAYSCHED_RANDOM, SERVE_MUX, SERVE_DEFAULT)
SERVICE = "Shard"  # the service's name in raysched, the deployment's in Serve
SERVE_APP = "serve-compare"
DRIVER_TIMEOUT_S = 900.0

# Targets (issue 28): raysched hash against Serve with multiplexing.
THROUGHPUT_RATIO = 1.3
ONE_REPLICA_PCT = 95.0


@dataclass(frozen=True)
class Workload:
    """The service every contender runs: replicas, models, an LRU per replica and the cost of a hit and a miss."""

    replicas: int = 4
    models: int = 40
    cache: int = 12
    hit_ms: float = 5.0
    miss_ms: float = 100.0


RAYSCHED_JOB = '''"""serve_compare: the cache-bound service, for `raysched deploy` (generated)."""
import functools
import threading
import time

import ray
import raysched

CACHE, HIT_S, MISS_S = {cache}, {hit_s!r}, {miss_s!r}


@raysched.service(num_cpus=1, replicas={replicas})
class {service}:
    def __init__(self):
        self.model = functools.lru_cache(maxsize=CACHE)(self._load)  # as @serve.multiplexed: an LRU of loaded models
        self.lock = threading.Lock()  # one call at a time: one CPU
        self.loaded = False

    def _load(self, model_id):
        time.sleep(MISS_S)
        self.loaded = True
        return f"weights of {{model_id}}"

    def predict(self, model_id, x):
        with self.lock:
            began = time.perf_counter()
            self.loaded = False
            self.model(model_id)
            hit = not self.loaded
            time.sleep(HIT_S)
            work_s = time.perf_counter() - began
        replica = ray.get_runtime_context().get_actor_id()
        return {{"model": model_id, "x": x, "hit": hit, "replica": replica, "work_s": work_s}}


def tasks():
    for i in range({models}):
        model = f"model-{{i}}"
        yield raysched.Task({service}.predict, args=(model, i), key=model)
'''


def raysched_job(w: Workload) -> str:
    return RAYSCHED_JOB.format(
        service=SERVICE,
        replicas=w.replicas,
        models=w.models,
        cache=w.cache,
        hit_s=w.hit_ms / 1000,
        miss_s=w.miss_ms / 1000,
    )


def bind_serve_replica_grpc_to_loopback() -> None:
    """Serve (2.60) gives every replica an inter-deployment gRPC server on all interfaces (``[::]:0``), proxy or
    not, and has no option to change that: in a replica, before Serve starts that server, make it bind 127.0.0.1.
    Handles call replicas as Ray actors (the server is unused here); the cluster's nodes are all 127.0.0.1."""
    import ray.serve._private.replica as replica

    bind = replica.add_port_to_grpc_server
    if getattr(bind, "loopback", False):
        return

    def loopback(server: Any, address: str) -> int:
        return bind(server, address.replace("[::]", "127.0.0.1", 1))

    loopback.loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = loopback


def serve_app(w: Workload) -> Any:
    """The same service as a Serve deployment; models load through ``@serve.multiplexed`` (its LRU)."""
    import asyncio

    import ray
    from ray import serve

    hit_s, miss_s = w.hit_ms / 1000, w.miss_ms / 1000

    @serve.deployment(name=SERVICE, num_replicas=w.replicas, ray_actor_options={"num_cpus": 1})
    class Shard:
        def __init__(self) -> None:
            bind_serve_replica_grpc_to_loopback()
            self.lock = asyncio.Lock()  # one call at a time: one CPU
            self.loaded = False

        @serve.multiplexed(max_num_models_per_replica=w.cache)
        async def model(self, model_id: str) -> str:
            await asyncio.sleep(miss_s)
            self.loaded = True
            return f"weights of {model_id}"

        async def predict(self, model_id: str, x: int) -> dict[str, Any]:
            async with self.lock:
                began = time.perf_counter()
                self.loaded = False
                await self.model(model_id)
                hit = not self.loaded
                await asyncio.sleep(hit_s)
                work_s = time.perf_counter() - began
            replica = ray.get_runtime_context().get_actor_id()
            return {"model": model_id, "x": x, "hit": hit, "replica": replica, "work_s": work_s}

    return Shard.bind()


# ----------------------------------------------------------------------------------------------------------
# One driver: deploy, load, low load, remove. Its calls' timings go to a JSON file for the harness.


@dataclass
class Calls:
    """What a driver saw of its calls (perf_counter seconds; replica ids as the replicas reported them)."""

    sent: list[float]
    done: list[float]
    model: list[str]
    replica: list[str]
    hit: list[bool]
    work_s: list[float]

    @classmethod
    def empty(cls) -> Calls:
        return cls([], [], [], [], [], [])

    def add(self, sent: float, done: float, model: str, answer: Mapping[str, Any]) -> None:
        if answer["model"] != model:
            raise RuntimeError(f"asked for {model}, the replica answered for {answer['model']}")
        self.sent.append(sent)
        self.done.append(done)
        self.model.append(model)
        self.replica.append(str(answer["replica"]))
        self.hit.append(bool(answer["hit"]))
        self.work_s.append(float(answer["work_s"]))


def closed_loop(call: Callable[[str, int], Mapping[str, Any]], models: int, n: int, clients: int) -> Calls:
    """``clients`` threads, each with one call in flight, until ``n`` calls are done (call i: model i mod models)."""
    calls, lock, counter = Calls.empty(), threading.Lock(), iter(range(n))
    errors: list[BaseException] = []

    def client() -> None:
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                model = f"model-{i % models}"
                sent = time.perf_counter()
                answer = call(model, i)
                done = time.perf_counter()
                with lock:
                    calls.add(sent, done, model, answer)
        except BaseException as err:  # surfaced below: a failed call fails the run
            errors.append(err)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return calls


def measure(call: Callable[[str, int], Mapping[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    load = closed_loop(call, args.models, args.calls, args.clients)
    closed_loop(call, args.models, args.warmup, 1)
    low = closed_loop(call, args.models, args.latency_calls, 1)
    return {"load": asdict(load), "low": asdict(low)}


def drive_raysched(address: str, policy: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import ray

    import raysched

    job = workdir / "serve_compare_job.py"
    job.write_text(raysched_job(workload(args)))
    cli = [sys.executable, "-m", "raysched.cli"]
    began = time.perf_counter()
    run_checked([*cli, "deploy", str(job), "--address", address, "--policy", policy], "raysched deploy")
    h = raysched.get_service(SERVICE, address=address)
    deploy_s = time.perf_counter() - began
    try:
        result = measure(lambda model, x: ray.get(h.predict.remote(model, x, key=model)), args)
    finally:
        run_checked([*cli, "undeploy", SERVICE, "--address", address], "raysched undeploy")
    return {**result, "deploy_s": deploy_s}


def drive_serve(address: str, multiplexed: bool, args: argparse.Namespace) -> dict[str, Any]:
    from ray import serve

    from raysched.cluster import connect

    connect(address, {})
    began = time.perf_counter()
    h = serve.run(
        serve_app(workload(args)),
        name=SERVE_APP,
        route_prefix=None,  # no HTTP route: handles only
        logging_config={"log_level": "WARNING", "enable_access_log": False},
    )
    deploy_s = time.perf_counter() - began
    try:
        if multiplexed:
            result = measure(lambda m, x: h.options(multiplexed_model_id=m).predict.remote(m, x).result(), args)
        else:
            result = measure(lambda m, x: h.predict.remote(m, x).result(), args)
    finally:
        serve.delete(SERVE_APP)
    return {**result, "deploy_s": deploy_s}


def start_serve(address: str) -> None:
    """Serve's controller, once per cluster, with no proxy: nothing listens for HTTP or gRPC."""
    from ray import serve

    from raysched.cluster import connect

    connect(address, {})
    serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})


def run_checked(cmd: Sequence[str], what: str) -> None:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")


def driver_main(args: argparse.Namespace) -> None:
    if args.driver == "serve-start":
        start_serve(args.address)
        return
    with tempfile.TemporaryDirectory(prefix="serve-compare-") as tmp:
        if args.driver in (RAYSCHED_HASH, RAYSCHED_RANDOM):
            result = drive_raysched(args.address, args.driver.removeprefix("raysched-"), args, Path(tmp))
        else:
            result = drive_serve(args.address, args.driver == SERVE_MUX, args)
    Path(args.out).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------------------
# The figures (pure: tested without Ray or Serve).


def one_replica_pct(models: Sequence[str], replicas: Sequence[str]) -> float:
    """The share of keys (models) all of whose calls one replica served, in percent."""
    seen: dict[str, set[str]] = {}
    for model, replica in zip(models, replicas, strict=True):
        seen.setdefault(model, set()).add(replica)
    return 100 * sum(len(r) == 1 for r in seen.values()) / len(seen) if seen else float("nan")


def replicas_per_key(models: Sequence[str], replicas: Sequence[str]) -> float:
    seen: dict[str, set[str]] = {}
    for model, replica in zip(models, replicas, strict=True):
        seen.setdefault(model, set()).add(replica)
    return statistics.mean(len(r) for r in seen.values()) if seen else float("nan")


def run_figures(result: Mapping[str, Any]) -> dict[str, float]:
    """One run's figures from the calls its driver recorded."""
    load, low = result["load"], result["low"]
    latency = np.array(low["done"]) - np.array(low["sent"])
    outside = latency - np.array(low["work_s"])
    return {
        "calls_per_s": per_s(len(load["done"]), max(load["done"]) - min(load["sent"])),
        "steady_per_s": steady_rate(load["done"]),
        "hit_pct": 100 * float(np.mean(load["hit"])),
        "one_replica_pct": one_replica_pct(load["model"], load["replica"]),
        "replicas_per_key": replicas_per_key(load["model"], load["replica"]),
        "p50_ms": 1000 * float(np.percentile(latency, 50)),
        "p95_ms": 1000 * float(np.percentile(latency, 95)),
        "outside_p50_ms": 1000 * float(np.percentile(outside, 50)),
        "low_hit_pct": 100 * float(np.mean(low["hit"])),
        "deploy_s": float(result["deploy_s"]),
    }


def summarize(runs: Sequence[tuple[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per contender (in first-seen order): the median of each figure over its runs, and the runs' throughputs."""
    table: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(name for name, _ in runs):
        mine = [fig for n, fig in runs if n == name]
        row: dict[str, Any] = {key: statistics.median(fig[key] for fig in mine) for key in mine[0]}
        row["runs_per_s"] = [fig["calls_per_s"] for fig in mine]
        table[name] = row
    return table


@dataclass(frozen=True)
class Verdict:
    target: str
    value: str
    met: bool | None  # None: a contender the target needs was not measured


def verdicts(table: Mapping[str, Mapping[str, Any]]) -> list[Verdict]:
    """The issue's targets for raysched hash against Serve with multiplexing."""
    ours, theirs = table.get(RAYSCHED_HASH), table.get(SERVE_MUX)
    out = []
    for what, key in (("whole run", "calls_per_s"), ("steady state", "steady_per_s")):
        if ours and theirs:
            ratio = ours[key] / theirs[key]
            out.append(
                Verdict(
                    f"throughput ({what}) >= {THROUGHPUT_RATIO}x Serve multiplexed",
                    f"{ratio:.2f}x",
                    ratio >= THROUGHPUT_RATIO,
                )
            )
        else:
            out.append(Verdict(f"throughput ({what}) >= {THROUGHPUT_RATIO}x Serve multiplexed", "-", None))
    if ours:
        pct = ours["one_replica_pct"]
        mux = f" (Serve multiplexed {theirs['one_replica_pct']:.0f}%)" if theirs else ""
        out.append(Verdict(f">= {ONE_REPLICA_PCT:.0f}% of keys on one replica", f"{pct:.0f}%{mux}", pct >= 95))
    else:
        out.append(Verdict(f">= {ONE_REPLICA_PCT:.0f}% of keys on one replica", "-", None))
    if ours and theirs:
        out.append(
            Verdict(
                "p50 latency at low load <= Serve multiplexed handle's",
                f"{ours['p50_ms']:.1f} ms vs {theirs['p50_ms']:.1f} ms",
                ours["p50_ms"] <= theirs["p50_ms"],
            )
        )
    else:
        out.append(Verdict("p50 latency at low load <= Serve multiplexed handle's", "-", None))
    return out


def format_report(table: Mapping[str, Mapping[str, Any]], args: argparse.Namespace) -> str:
    head = (
        f"{'contender':<19}{'calls/s':>9}{'steady/s':>10}{'hits':>6}{'1 replica':>10}{'repl/key':>9}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'outside':>9}{'low hits':>9}{'deploy s':>9}  runs calls/s"
    )
    lines = [
        f"{args.calls} calls over {args.models} models, {args.clients} calls in flight, {args.replicas} one-CPU "
        f"replicas (LRU of {args.cache}, hit {args.hit_ms:g} ms, miss +{args.miss_ms:g} ms); low load: "
        f"{args.latency_calls} calls one at a time after {args.warmup}; median of {args.rounds} rounds",
        head,
        "-" * len(head),
    ]
    for name, row in table.items():
        lines.append(
            f"{name:<19}{row['calls_per_s']:>9.1f}{row['steady_per_s']:>10.1f}{row['hit_pct']:>5.0f}%"
            f"{row['one_replica_pct']:>9.0f}%{row['replicas_per_key']:>9.2f}{row['p50_ms']:>8.1f}"
            f"{row['p95_ms']:>8.1f}{row['outside_p50_ms']:>9.1f}{row['low_hit_pct']:>8.0f}%{row['deploy_s']:>9.1f}  "
            + ", ".join(f"{r:.1f}" for r in row["runs_per_s"])
        )
    lines += [
        "calls/s = calls / (last finish - first send); steady = finishes between the 10th and 90th percentile "
        "finish times; hits = cache hits under load; 1 replica = keys all of whose calls one replica served; "
        "p50/p95 = send to value at low load; outside = p50 of that less the replica's work (handle, routing, "
        "transport); low hits = cache hits at low load",
        "",
        "Targets (raysched hash against Serve multiplexed):",
    ]
    for v in verdicts(table):
        mark = "not measured" if v.met is None else ("met" if v.met else "MISSED")
        lines.append(f"  {v.target:<58}{v.value:<32}{mark}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# The harness: one cluster, fresh drivers alternating.


def workload(args: argparse.Namespace) -> Workload:
    return Workload(args.replicas, args.models, args.cache, args.hit_ms, args.miss_ms)


def driver_argv(args: argparse.Namespace, contender: str, address: str, out: Path) -> list[str]:
    """The command line of one fresh driver: this script, with the harness's workload."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--driver", contender, "--address", address]
    argv += ["--out", str(out)]
    for name in ("calls", "models", "clients", "replicas", "cache", "hit_ms", "miss_ms", "warmup", "latency_calls"):
        argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return argv


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, in running order")
    parser.add_argument("--calls", type=int, default=2000, help="calls under load per run")
    parser.add_argument("--models", type=int, default=40, help="keys (models) the calls cycle over")
    parser.add_argument("--clients", type=int, default=8, help="calls in flight under load (one per client thread)")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--cache", type=int, default=12, help="models one replica keeps (LRU)")
    parser.add_argument("--hit-ms", type=float, default=5.0, help="a call for a model the replica holds")
    parser.add_argument("--miss-ms", type=float, default=100.0, help="loading a model the replica does not hold")
    parser.add_argument("--warmup", type=int, default=80, help="calls one at a time before the low-load ones")
    parser.add_argument("--latency-calls", type=int, default=200, help="low-load calls, one at a time")
    parser.add_argument("--json", metavar="FILE", help="also write every run's figures and the table here")
    parser.add_argument("--keep", metavar="DIR", help="keep each driver's raw call timings here (one JSON per run)")
    parser.add_argument("--driver", help=argparse.SUPPRESS)  # internal: run one contender as a fresh driver
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONTENDERS]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        parser.error(f"unknown contender(s) {given}; choose from {', '.join(CONTENDERS)}")
    args.contenders = names
    for name in ("rounds", "calls", "models", "clients", "replicas", "cache", "latency_calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.hit_ms < 0 or args.miss_ms < 0:
        parser.error("--warmup, --hit-ms and --miss-ms must not be negative")
    return args


def run_driver(args: argparse.Namespace, contender: str, address: str, out: Path) -> dict[str, Any]:
    run_checked(driver_argv(args, contender, address, out), contender)
    return json.loads(out.read_text())


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.driver:
        driver_main(args)
        return
    if any(c.startswith("serve") for c in args.contenders):
        try:
            import ray.serve  # noqa: F401
        except ImportError:
            sys.exit("Ray Serve is not installed: pip install -e '.[bench]'")

    from raysched.cluster import EmbeddedCluster

    runs: list[tuple[str, dict[str, float]]] = []
    with EmbeddedCluster(BENCH_NODES) as cluster, tempfile.TemporaryDirectory(prefix="serve-compare-") as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        if any(c.startswith("serve") for c in args.contenders):
            run_checked(driver_argv(args, "serve-start", cluster.address, tmp / "start.json"), "serve start")
        for rnd in range(1, args.rounds + 1):  # A B C D A B C D: the machine's noise falls on every contender
            for contender in args.contenders:
                fig = run_figures(run_driver(args, contender, cluster.address, tmp / f"{contender}-{rnd}.json"))
                runs.append((contender, fig))
                print(
                    f"  round {rnd}  {contender:<18} {fig['calls_per_s']:7.1f} calls/s"
                    f"  steady {fig['steady_per_s']:7.1f}"
                    f"  hits {fig['hit_pct']:3.0f}%  one replica {fig['one_replica_pct']:3.0f}%"
                    f"  p50 {fig['p50_ms']:6.1f} ms  p95 {fig['p95_ms']:6.1f} ms",
                    flush=True,
                )
    table = summarize(runs)
    print()
    print(format_report(table, args))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "table": table}, indent=1))


if __name__ == "__main__":
    main()
