"""Deployed services on the session's loopback cluster: `raysched deploy`, runs and a handle calling the
same replicas at once, the service outliving them, `raysched undeploy`; bad input refused with nothing lost.
Driven as a user would: the CLI and a separate Python program, each its own Ray job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from conftest import ROOT, run_cli, start_submit
from test_churn import finish

JOB = """
import os
import raysched

@raysched.service(num_cpus=1, replicas=2)
class {name}:
    def __init__(self):
        self.seen = {{}}

    def serve(self, key, i):
        hit = key in self.seen
        self.seen[key] = self.seen.get(key, 0) + 1
        return {{"items": 1, "cache_hit": int(hit), "pid": os.getpid()}}

    def value(self, key):
        import raysched as r
        return {{"key": key, "pid": os.getpid(), "seen": self.seen.get(key, 0), "code": r.__file__}}

    def fail(self):
        raise KeyError("no such model")

def tasks():
    for i in range({n}):
        key = f"key-{{i % 12}}"
        yield raysched.Task({name}.serve, args=(key, i), key=key)
"""

CLIENT = """
import json, sys, ray, raysched
h = raysched.get_service(sys.argv[1], address=sys.argv[2])
values = ray.get([h.value.remote(f"key-{i % 12}", key=f"key-{i % 12}") for i in range(int(sys.argv[3]))])
try:
    ray.get(h.fail.remote(key="x"))
    failed = ""
except KeyError as err:
    failed = repr(err)
print(json.dumps({"values": values, "failed": failed}))
"""


def write(tmp_path: Path, name: str = "Shard", n: int = 200) -> Path:
    job = tmp_path / f"{name.lower()}_job.py"
    job.write_text(JOB.format(name=name, n=n))
    return job


def status(address: str) -> dict:
    result = run_cli("status", "--address", address, "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


def client(address: str, name: str, calls: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, name, address, str(calls)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_deployed_service_serves_two_runs_and_a_handle_at_once_outlives_them_and_goes_with_undeploy(
    address: str, tmp_path: Path
) -> None:
    job = write(tmp_path)
    deployed = run_cli("deploy", str(job), "--address", address)
    assert deployed.code == 0, deployed.text
    assert "deployed Shard: 2 replicas" in deployed.out
    try:
        services = {s["service"]: s for s in status(address)["services"]}
        replicas = {r["name"]: r for r in services["Shard"]["replicas"]}
        assert set(replicas) == {"Shard#0", "Shard#1"} and all(r["state"] == "up" for r in replicas.values())

        outs = [tmp_path / "a.csv", tmp_path / "b.csv"]
        runs = [start_submit(address, job, out) for out in outs]
        handle = client(address, "Shard", 60)
        for proc in runs:
            code, stdout, stderr = finish(proc, timeout=240)
            assert code == 0, stdout + stderr
        out, err = handle.communicate(timeout=240)
        assert handle.returncode == 0, out + err
        answer = json.loads(out.splitlines()[-1])

        rows = pd.concat([pd.read_csv(path) for path in outs])
        assert (rows["status"] == "ok").all() and len(rows) == 400  # every call ok, once
        assert set(rows["replica"]) == {"Shard#0", "Shard#1"}
        assert (rows.groupby("key")["replica"].nunique() == 1).all()  # hash: a key on one replica, both runs
        values = answer["values"]
        assert [v["key"] for v in values] == [f"key-{i % 12}" for i in range(60)]  # real return values, in order
        assert all(v["code"].startswith(str(ROOT)) for v in values)  # the replicas run this tree's raysched
        pids = set(rows["pid"]) | {v["pid"] for v in values}
        assert len(pids) == 2  # the deployed replicas served everyone: no new ones
        by_key = {v["key"]: v["pid"] for v in values}
        run_pid = rows.groupby("key")["pid"].first().to_dict()
        assert by_key == run_pid  # the handle sends a key to the replica the runs sent it to
        assert "KeyError('no such model')" in answer["failed"]  # the method's own error: `except KeyError` caught it

        after = {s["service"]: s for s in status(address)["services"]}
        assert {r["name"] for r in after["Shard"]["replicas"]} == {"Shard#0", "Shard#1"}  # outlived the runs
        text = run_cli("status", "--address", address)
        assert "deployed services: 1" in text.out and "Shard#0" in text.out
    finally:
        gone = run_cli("undeploy", "Shard", "--address", address)
    assert gone.code == 0 and "undeployed Shard (2 replicas removed)" in gone.out, gone.text
    assert "Shard" not in {s["service"] for s in status(address).get("services", [])}
    brain = status(address)
    assert not any(s.get("service") == "Shard" for s in brain["submissions"])  # its reservations are gone


def test_bad_input_is_refused_clearly_and_a_deployed_service_is_never_replaced(address: str, tmp_path: Path) -> None:
    unknown = run_cli("undeploy", "NoSuchService", "--address", address)
    assert unknown.code == 2 and "no service named 'NoSuchService' is deployed" in unknown.err, unknown.text
    missing = run_cli("deploy", str(tmp_path / "missing.py"), "--address", address)
    assert missing.code == 2 and "Traceback" not in missing.text, missing.text
    plain = tmp_path / "plain.py"
    plain.write_text("import raysched\ndef tasks():\n    yield from ()\n")
    nothing = run_cli("deploy", str(plain), "--address", address)
    assert nothing.code == 2 and "declares no service" in nothing.err, nothing.text
    nowhere = run_cli("deploy", str(write(tmp_path, "Lonely")), "--address", "127.0.0.1:9")
    assert nowhere.code == 2 and "no Ray cluster answers at 127.0.0.1:9" in nowhere.err, nowhere.text
    bad_policy = run_cli("deploy", str(write(tmp_path, "Lonely")), "--address", address, "--policy", "mod:Nope")
    assert bad_policy.code == 2 and "routed by hash, random, p2c, greedy, pack" in bad_policy.err, bad_policy.text

    job = write(tmp_path, "Keeper", n=20)
    assert run_cli("deploy", str(job), "--address", address).code == 0
    try:
        before = {r["name"]: r["node"] for s in status(address)["services"] for r in s["replicas"]}
        again = run_cli("deploy", str(job), "--address", address)
        assert again.code == 2 and "Keeper is deployed already; undeploy it first" in again.err, again.text
        after = {r["name"]: r["node"] for s in status(address)["services"] for r in s["replicas"]}
        assert after == before  # nothing replaced
        handle = client(address, "Nope", 1)
        _, err = handle.communicate(timeout=120)
        assert handle.returncode != 0 and "no service named 'Nope' is deployed (deployed: Keeper)" in err
        run = run_cli("submit", str(job), "--address", address, "--out", str(tmp_path / "k.csv"), "--quiet")
        assert run.code == 0, run.text  # and it still serves
    finally:
        assert run_cli("undeploy", "Keeper", "--address", address).code == 0
