"""What a call through a deployed service's handle costs, against the same replica actors called directly.

docs/services.md says a handle adds no round trip per call (no brain, no controller): a call is a ring lookup, the
handle's bookkeeping and one actor call. This measures it. On a loopback cluster of 2 nodes x 2 CPUs it deploys a
no-op service of 2 one-CPU replicas (`raysched deploy`, hash routing), opens ``raysched.get_service``, and then,
alternating handle and direct (which goes first alternates by round), for ``--rounds`` rounds:

* **issue**: the time to send ``--calls`` calls, keyed over ``--keys`` keys (``.remote`` returning; the values are
  gathered afterwards, untimed), per call in microseconds. Through the handle: ``h.ping.remote(i, key=k)``;
  directly: the replica actor's own method (``invoke``, what the handle sends) on ``actors[i % 2]``;
* **round trip**: ``--sequential`` calls one at a time (send, ``ray.get``), per call in milliseconds.

Every key has its home before the first round (a warm-up through the handle), so no call asks the controller.

    python benchmarks/handle_cost.py                    # 5 rounds, about 2 minutes on a 2-core machine
    python benchmarks/handle_cost.py --rounds 9 --calls 5000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SERVICE = "Noop"
JOB = '''"""handle_cost: a no-op service of 2 replicas, for `raysched deploy` (generated)."""
import raysched


@raysched.service(num_cpus=1, replicas=2)
class Noop:
    def ping(self, x):
        return x


def tasks():
    yield raysched.Task(Noop.ping, args=(0,), key="k0")
'''


def cli(*args: str) -> None:
    """`raysched ARGS` in a fresh process; RuntimeError with its last lines when it fails."""
    done = subprocess.run([sys.executable, "-m", "raysched.cli", *args], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"raysched {args[0]} exited {done.returncode}: {(done.stderr or done.stdout)[-400:]}")


def issue_us(send: Callable[[int], Any], calls: int) -> float:
    """Microseconds per call to send ``calls`` calls (their values gathered afterwards, untimed)."""
    import ray

    began = time.perf_counter()
    refs = [send(i) for i in range(calls)]
    spent = time.perf_counter() - began
    ray.get(refs)
    return spent / calls * 1e6


def round_trip_ms(send: Callable[[int], Any], calls: int) -> float:
    """Milliseconds per call, one call at a time from send to value."""
    import ray

    began = time.perf_counter()
    for i in range(calls):
        ray.get(send(i))
    return (time.perf_counter() - began) / calls * 1000


def measure(args: argparse.Namespace, address: str) -> dict[str, dict[str, list[float]]]:
    import ray

    import raysched

    ray.init(address=address, logging_level="WARNING")
    h = raysched.get_service(SERVICE)
    keys = [f"k{i}" for i in range(args.keys)]
    actors = [entry.handle for entry in h._router.table.replicas]  # the replicas the handle routes to
    assert len(actors) == 2, actors
    senders: dict[str, Callable[[int], Any]] = {
        "handle": lambda i: h.ping.remote(i, key=keys[i % len(keys)]),
        "direct": lambda i: actors[i % 2].invoke.remote("ping", (i,), {}),
    }
    for send in senders.values():  # warm-up: every key's home asked, the workers' code paths hot
        ray.get([send(i) for i in range(max(200, args.keys))])
    out: dict[str, dict[str, list[float]]] = {name: {"issue_us": [], "rtt_ms": []} for name in senders}
    for r in range(args.rounds):
        order = list(senders) if r % 2 == 0 else list(reversed(senders))
        for name in order:
            out[name]["issue_us"].append(issue_us(senders[name], args.calls))
            out[name]["rtt_ms"].append(round_trip_ms(senders[name], args.sequential))
        print(
            f"round {r + 1}: "
            + "  ".join(f"{n} issue {out[n]['issue_us'][-1]:.0f} us, rtt {out[n]['rtt_ms'][-1]:.2f} ms" for n in order),
            flush=True,
        )
    h.close()
    return out


def spread(values: Sequence[float], fmt: str) -> str:
    low, mid, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"median {mid} (range {low} to {high})"


def report(out: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.rounds} rounds, alternating; issue = {args.calls} calls over {args.keys} keys sent, per call; "
        f"round trip = {args.sequential} calls one at a time, per call"
    ]
    for name in ("handle", "direct"):
        lines.append(
            f"  {name:<7} issue {spread(out[name]['issue_us'], '.0f')} us   "
            f"round trip {spread(out[name]['rtt_ms'], '.2f')} ms"
        )
    extra = [h - d for h, d in zip(out["handle"]["issue_us"], out["direct"]["issue_us"], strict=True)]
    rtt = [h - d for h, d in zip(out["handle"]["rtt_ms"], out["direct"]["rtt_ms"], strict=True)]
    lines.append(f"  handle - direct, same round: issue {spread(extra, '.0f')} us   round trip {spread(rtt, '.3f')} ms")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="calls sent per issue measurement")
    parser.add_argument("--sequential", type=int, default=300, help="calls one at a time per round-trip measurement")
    parser.add_argument("--keys", type=int, default=40)
    args = parser.parse_args(argv)

    from raysched.cluster import EmbeddedCluster, LocalNode

    with EmbeddedCluster((LocalNode(num_cpus=2),) * 2) as cluster, tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "handle_cost_job.py"
        job.write_text(JOB)
        cli("deploy", str(job), "--address", cluster.address, "--policy", "hash")
        try:
            out = measure(args, cluster.address)
        finally:
            cli("undeploy", SERVICE, "--address", cluster.address)
    print(report(out, args))


if __name__ == "__main__":
    main()
