"""User promises of `raysched submit` / `raysched status`, driven as a user would, on the shared loopback cluster.

Each test runs the `raysched` CLI as a subprocess against the shared 4-node
cluster (1, 2, 2 and 4 CPUs; `ssd` on one 2-CPU node), except one that lets
`raysched submit` start its own embedded cluster from a config file. Expected
values come from the cluster's own description (the fixture's Ray nodes), from
the job files written here, or from arithmetic, never from raysched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_cli, wait_for

SHARED_CPUS = 1 + 2 + 2 + 4  # the shared cluster (conftest: DEFAULT_LOCAL_NODES)


# -- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_nodes(ray_cluster: object) -> dict[str, dict[str, float]]:
    """node id -> the resources the shared cluster's nodes were started with (Ray's own node objects)."""
    cluster = ray_cluster._cluster  # type: ignore[attr-defined]
    nodes = [cluster.head_node, *cluster.worker_nodes]
    out = {}
    for node in nodes:
        params = node._ray_params
        custom = {k: float(v) for k, v in (params.resources or {}).items()}
        out[node.node_id] = {"CPU": float(params.num_cpus), **custom}
    assert sorted(r["CPU"] for r in out.values()) == [1, 2, 2, 4]
    return out


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def runs_of(csv_path: Path) -> list[dict]:
    """The sidecar `<name>.json` beside a results CSV."""
    return json.loads(csv_path.with_suffix(".json").read_text())["runs"]


def error_lines(result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("Error:")]


def assert_bad_input(result) -> str:
    assert result.code == 2, result.text
    assert "Traceback" not in result.text, result.text
    lines = error_lines(result)
    assert len(lines) == 1, result.err
    return lines[0]


def read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def status_json(address: str) -> dict:
    result = run_cli("status", "--address", address, "--json", timeout=60)
    if result.code != 0:
        return {}
    return json.loads(result.out)


# -- 1. user policies in every documented form --------------------------------------------------------------

POLICIES = '''
from raysched.policies import PolicyOptions, check_feasible


def most_cpu(task, view):
    """The rule: of the nodes where the task fits now, the one with the most CPUs (ties: larger node id)."""
    check_feasible(view, task.resources)
    fits = [n for n in view.nodes if view.fits_now(n, task.resources)]
    return max(fits, key=lambda n: (view.capacity(n).get("CPU", 0.0), n)) if fits else None


def _check(options):
    if not isinstance(options, PolicyOptions) or options.seed != 7:
        raise TypeError(f"expected the PolicyOptions of --seed 7, got {options!r}")


class WithOptions:
    """A class whose constructor takes the PolicyOptions."""
    name = "with-options"

    def __init__(self, options):
        _check(options)
        self.options = options

    def choose(self, task, view):
        return most_cpu(task, view)


class _Built:
    def choose(self, task, view):
        return most_cpu(task, view)


def make_policy(options):
    """A factory function of one argument."""
    _check(options)
    return _Built()


class _Ready:
    name = "ready"

    def choose(self, task, view):
        return most_cpu(task, view)


READY = _Ready()  # a ready object with choose()


def choose(task, view):  # a plain function choose(task, view)
    return most_cpu(task, view)
'''

POLICY_JOB = (
    "import time, raysched\n"
    "def work(i):\n    time.sleep(0.05)\n    return {'items': 1}\n"
    "def tasks():\n    for i in range(12):\n        yield raysched.Task(work, args=(i,), key=f'k{i}')\n"
)


def _run_user_policy(address: str, job: Path, spec: str, cwd: Path, out: Path):
    # --max-inflight 3: never more than 3 one-CPU tasks at once, so the 4-CPU node always has room for the next
    return run_cli(
        "submit",
        str(job),
        "--address",
        address,
        "--policy",
        spec,
        "--seed",
        "7",
        "--max-inflight",
        "3",
        "--out",
        str(out),
        "--quiet",
        cwd=cwd,
        timeout=180,
    )


def _assert_followed_most_cpu(df: pd.DataFrame, shared_nodes: dict, spec: str) -> None:
    biggest = max(shared_nodes, key=lambda n: shared_nodes[n]["CPU"])  # the 4-CPU node
    assert len(df) == 12 and (df["status"] == "ok").all(), df
    assert sorted(df["task_id"]) == list(range(12))
    assert (df["policy"] == spec).all()
    assert (df["node_ran"] == df["node_chosen"]).all()
    # The rule says: the node with the most CPUs that fits. With at most 3 tasks held, that is always the 4-CPU
    # node (any built-in policy would spread 12 keys / 12 tasks over several nodes).
    assert set(df["node_chosen"]) == {biggest}, df["node_chosen"].value_counts()


@pytest.mark.parametrize(
    "spec", ["mypolicies:WithOptions", "mypolicies:make_policy", "mypolicies:READY", "mypolicies:choose"]
)
def test_user_policy_forms_are_placed_by_the_brain(address: str, tmp_path: Path, shared_nodes: dict, spec: str) -> None:
    """Each documented form of `--policy module:Name`, the module in the working directory (as `python -m`)."""
    cwd = tmp_path / "work"
    write(cwd / "mypolicies.py", POLICIES)
    job = write(tmp_path / "jobs" / "spread.py", POLICY_JOB)  # the job lives elsewhere
    out = tmp_path / "out.csv"
    result = _run_user_policy(address, job, spec, cwd, out)
    assert result.code == 0, result.text
    _assert_followed_most_cpu(pd.read_csv(out), shared_nodes, spec)


def test_user_policy_from_a_module_beside_the_job_file(address: str, tmp_path: Path, shared_nodes: dict) -> None:
    """`--policy besidepolicies:WithOptions` with besidepolicies.py beside the job file, run from another folder."""
    folder = tmp_path / "project"
    write(folder / "besidepolicies.py", POLICIES)
    job = write(folder / "spread.py", POLICY_JOB)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out.csv"
    result = _run_user_policy(address, job, "besidepolicies:WithOptions", elsewhere, out)
    assert result.code == 0, result.text
    _assert_followed_most_cpu(pd.read_csv(out), shared_nodes, "besidepolicies:WithOptions")


# -- 3. config keys and precedence ---------------------------------------------------------------------------

CONFIG_JOB = (
    "import os, time, raysched\n"
    "def work(i):\n"
    "    import ray\n"
    "    if i in (3, 9):\n"
    "        raise ValueError(f'bad row {i}')\n"
    "    time.sleep(0.02)\n"
    "    return {'items': 1, 'tid': int(ray.get_runtime_context().get_task_id()[:12], 16)}\n"
    "def tasks():\n    for i in range(16):\n        yield raysched.Task(work, args=(i,), key=f'k{i}')\n"
)


def _config(path: Path, **keys: object) -> Path:
    import yaml

    return write(path, yaml.safe_dump(keys))


def _choices(df: pd.DataFrame) -> list[tuple[int, int, str]]:
    return sorted(zip(df["task_id"], df["attempt"], df["node_chosen"], strict=True))


def _assert_one_at_a_time(df: pd.DataFrame) -> None:
    ran = df.dropna(subset=["started_at"]).sort_values("started_at")
    starts, ends = list(ran["started_at"]), list(ran["finished_at"])
    assert all(s >= e for s, e in zip(starts[1:], ends[:-1], strict=True)), (
        "two tasks ran at once under max_inflight: 1"
    )


def test_config_keys_and_precedence_on_an_existing_cluster(address: str, tmp_path: Path, shared_nodes: dict) -> None:
    job = write(tmp_path / "cfgjob.py", CONFIG_JOB)
    base = dict(
        policy="random",
        seed=11,
        max_inflight=1,
        retries=2,
        max_failures=2,
        overcommit=1,
        batch="off",
        locality_wait=0.5,
        vnodes=7,
        load_factor=1.5,
        executors="off",
        executor_idle_s=12,
    )
    out1 = tmp_path / "from-config.csv"
    config = _config(tmp_path / "real.yaml", address=address, out=str(out1), **base)
    bogus_env = {"RAY_ADDRESS": "127.0.0.1:1"}  # nothing listens there: the file must win over the environment

    first = run_cli("submit", str(job), "--config", str(config), "--quiet", env=bogus_env, timeout=180)
    assert first.code == 1, first.text  # tasks 3 and 9 fail for good
    df1 = pd.read_csv(out1, keep_default_na=False)  # out: from the file
    run1 = runs_of(out1)[0]
    assert run1["cluster"]["where"] == f"cluster at {address}"  # address: from the file, not $RAY_ADDRESS
    assert set(df1["node_ran"]) - {""} <= set(shared_nodes)
    assert (df1["policy"] == "random").all()  # policy
    # retries: 2 -> attempts 1..3 for a task that always raises; max_failures: 2 -> the run stops after task 9
    for bad in (3, 9):
        rows = df1[df1["task_id"] == bad].sort_values("attempt")
        assert list(rows["attempt"]) == [1, 2, 3] and list(rows["status"]) == ["retried", "retried", "failed"]
    assert sorted(set(df1["task_id"])) == list(range(10)), "max_failures: 2 must stop the run after task 9"
    assert "--max-failures 2" in first.out
    assert len(df1) == 8 + 3 + 3
    _assert_one_at_a_time(df1)  # max_inflight: 1
    ok1 = df1[df1["status"] == "ok"]
    assert ok1["tid"].nunique() == len(ok1)  # batch: off -> one Ray task per task
    assert run1["options"] == {
        "seed": 11,
        "load_factor": 1.5,
        "vnodes": 7,
        "locality_wait": 0.5,
        "keys_per_node": None,  # not in the file: learned (the default)
        "overcommit": 1.0,
        "batch": 1,
        "max_inflight": 1,
        "retries": 2,
        "max_failures": 2,
        "service_policy": "greedy",  # not in the file: the defaults are recorded too
        "service_spread": None,
        "executors": "off",
        "executor_idle_s": 12.0,
    }
    assert (df1.loc[df1["status"] != "cancelled", "via"] == "task").all()  # executors: off -> plain pinned tasks

    # The same file again, --out on the command line: the flag wins, and the same seed repeats every choice.
    out2 = tmp_path / "from-flag.csv"
    second = run_cli(
        "submit", str(job), "--config", str(config), "--out", str(out2), "--quiet", env=bogus_env, timeout=180
    )
    assert second.code == 1, second.text
    df2 = pd.read_csv(out2, keep_default_na=False)
    assert len(pd.read_csv(out1)) == len(df1)  # the file's out was left alone
    assert _choices(df2) == _choices(df1)  # seed: 11 -> the same node for every attempt
    assert len(set(df1["node_chosen"])) >= 2  # ... and those are random choices, not one node

    # Flags over the file: --address over a file address where nothing listens, --seed, --retries, --max-failures.
    config_bad = _config(tmp_path / "bogus.yaml", address="127.0.0.1:1", **base)
    out3 = tmp_path / "flags.csv"
    third = run_cli(
        "submit",
        str(job),
        "--config",
        str(config_bad),
        "--address",
        address,
        "--seed",
        "12",
        "--retries",
        "0",
        "--max-failures",
        "100",
        "--out",
        str(out3),
        "--quiet",
        timeout=180,
    )
    assert third.code == 1, third.text
    df3 = pd.read_csv(out3, keep_default_na=False)
    assert sorted(df3["task_id"]) == list(range(16))  # --max-failures 100: no early stop; --retries 0: one attempt
    assert list(df3.loc[df3["task_id"].isin([3, 9]), "status"]) == ["failed", "failed"]

    def first_attempts(df: pd.DataFrame) -> list[str]:
        return [node for task, attempt, node in _choices(df) if attempt == 1 and task < 10]

    assert first_attempts(df3) != first_attempts(df1)  # --seed 12: other choices (4^-10 to be equal by chance)
    run3 = runs_of(out3)[0]
    assert run3["options"]["seed"] == 12 and run3["options"]["retries"] == 0
    assert run3["options"]["max_failures"] == 100 and run3["options"]["vnodes"] == 7  # the rest from the file
    assert run3["cluster"]["where"] == f"cluster at {address}"


def test_config_batch_n_runs_tiny_tasks_together(address: str, tmp_path: Path) -> None:
    job = write(
        tmp_path / "tiny.py",
        "import raysched\n"
        "def work(i):\n    import ray\n"
        "    return {'tid': int(ray.get_runtime_context().get_task_id()[:12], 16)}\n"
        "def tasks():\n    for i in range(64):\n        yield raysched.Task(work, args=(i,))\n",
    )
    out = tmp_path / "out.csv"
    config = _config(
        tmp_path / "batch.yaml", address=address, policy="pack", batch=4, overcommit=8, max_inflight=64, out=str(out)
    )
    result = run_cli("submit", str(job), "--config", str(config), "--quiet", timeout=180)
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    assert len(df) == 64 and (df["status"] == "ok").all()
    per_ray_task = df.groupby("tid").size()
    assert per_ray_task.max() == 4, per_ray_task.value_counts()  # batch: 4 -> up to 4 tasks per Ray task
    assert runs_of(out)[0]["options"]["batch"] == 4


def test_config_builds_the_embedded_cluster(tmp_path: Path) -> None:
    """No address anywhere: local_nodes (repeated by --local-nodes) and system_config shape the embedded cluster."""
    job = write(
        tmp_path / "gadget.py",
        "import raysched\n"
        "@raysched.task(num_cpus=1, resources={'gadget': 1})\n"
        "def work(i):\n"
        "    from ray._raylet import Config\n"
        "    return {'hc_period_ms': Config.health_check_period_ms()}\n"
        "def tasks():\n    for i in range(4):\n        yield raysched.Task(work, args=(i,))\n",
    )
    out = tmp_path / "out.csv"
    config = _config(
        tmp_path / "embedded.yaml",
        out=str(out),
        local_nodes=[{"num_cpus": 1}, {"num_cpus": 2, "resources": {"gadget": 1}}],
        system_config={
            "health_check_initial_delay_ms": 500,
            "health_check_period_ms": 700,
            "health_check_timeout_ms": 500,
            "health_check_failure_threshold": 3,
        },
    )
    result = run_cli("submit", str(job), "--config", str(config), "--local-nodes", "3", timeout=240)
    assert result.code == 0, result.text
    assert "embedded cluster of 3 nodes on 127.0.0.1" in result.err
    run = runs_of(out)[0]
    nodes = run["cluster"]["nodes"]
    assert sorted(n["capacity"]["CPU"] for n in nodes) == [1, 1, 2]  # the pattern 1, 2+gadget repeated to 3
    gadget = [n["node_id"] for n in nodes if n["capacity"].get("gadget") == 1]
    assert len(gadget) == 1
    df = pd.read_csv(out)
    assert (df["status"] == "ok").all() and len(df) == 4
    assert set(df["node_ran"]) == set(gadget)
    assert (df["hc_period_ms"] == 700).all()  # system_config reached the cluster (Ray: 3000, raysched: 500)


# -- 4 + 5. default --max-inflight, seen while gated; `raysched status --json` ------------------------------

GATED_JOB = """
import os, time, raysched

DRAWN = os.environ["RAYSCHED_TEST_DRAWN"]
GATE = os.environ["RAYSCHED_TEST_GATE"]

def work(i, gate):
    deadline = time.time() + 120
    while not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.05)
    return {{"items": 1}}

def tasks():
    for i in range({n}):
        with open(DRAWN, "w") as handle:  # how many items raysched has drawn so far
            handle.write(str(i + 1))
        yield raysched.Task(work, args=(i, GATE), key=f"key-{{i % 20}}")
"""


def _gated_run(job: Path, address: str, tmp_path: Path, name: str, *args: str) -> dict:
    """Run the gated job until the brain holds every task drawn so far (the driver has stopped drawing: its window
    is full), take `raysched status --json` then, and open the gate at once (short gated periods keep the test
    quick)."""
    out, drawn, gate = tmp_path / f"{name}.csv", tmp_path / f"drawn-{name}", tmp_path / f"open-{name}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"RAYSCHED_TEST_DRAWN": str(drawn), "RAYSCHED_TEST_GATE": str(gate), "PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "raysched.cli", "submit", str(job), "--quiet", "--out", str(out), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: dict = {}

    def settled() -> bool:
        if proc.poll() is not None:
            return True
        count = read_int(drawn)
        if count == 0 or not out.with_suffix(".json").exists():
            return False
        run_id = runs_of(out)[0]["run_id"]
        state = status_json(address)
        sub = next((s for s in state.get("submissions", []) if s.get("run_id") == run_id), None)
        if sub is not None and sub["in_flight"] + sub["waiting"] == count:
            seen.update(state=state, run_id=run_id, held=count)
            return True
        return False

    try:
        wait_for(settled, timeout=150, interval=0.05)
        drawn_then = read_int(drawn)
        finished_then = out.exists() and (pd.read_csv(out)["status"] == "ok").any()
    finally:
        gate.touch()
        stdout, stderr = proc.communicate(timeout=180)
    assert seen, (read_int(drawn), stdout + stderr)
    return {
        **seen,
        "drawn": drawn_then,
        "finished": finished_then,
        "code": proc.returncode,
        "text": stdout + stderr,
        "out": out,
    }


def test_default_max_inflight_and_status_while_gated(address: str, tmp_path: Path, shared_nodes: dict) -> None:
    n = 100
    job = write(tmp_path / "gated.py", GATED_JOB.format(n=n))
    # Expected windows: 2 x 9 CPUs x overcommit, at least 64.
    windows = {"auto": max(64, 2 * SHARED_CPUS * 1), "x4": max(64, 2 * SHARED_CPUS * 4)}
    assert windows == {"auto": 64, "x4": 72}

    # overcommit auto (1 until tasks are measured) under hash, with ring settings from a config file
    config = _config(tmp_path / "ring.yaml", address=address, vnodes=7, load_factor="off", locality_wait=2)
    a = _gated_run(job, address, tmp_path, "auto", "--config", str(config))
    assert a["code"] == 0, a["text"]
    # nothing finished, and the driver stopped drawing at exactly the default window
    assert (a["held"], a["drawn"], a["finished"]) == (windows["auto"], windows["auto"], False)
    df_a = pd.read_csv(a["out"])
    assert (df_a["status"] == "ok").sum() == n
    assert (df_a.groupby("key")["node_ran"].nunique() == 1).all(), a["text"]  # load_factor: off -> pure ring
    options = runs_of(a["out"])[0]["options"]
    assert (options["vnodes"], options["load_factor"], options["locality_wait"]) == (7, None, 2.0)

    # -- status --json while it was gated, as documented
    state = a["state"]
    sub = next(s for s in state["submissions"] if s["run_id"] == a["run_id"])
    assert (sub["job"], sub["policy"], sub["done"], sub["overcommit"]) == ("gated.py", "hash", 0, 1.0), sub
    assert 1 <= sub["in_flight"] <= SHARED_CPUS and sub["in_flight"] + sub["waiting"] == 64, sub
    assert sub["decisions"] >= sub["in_flight"]
    assert sub["ring_nodes"] == 4 and sub["ring_vnodes"] == 7 * SHARED_CPUS  # vnodes: 7 per CPU
    nodes = {node["node_id"]: node for node in state["nodes"]}
    assert set(nodes) == set(shared_nodes)
    for node_id, node in nodes.items():
        assert {k: v for k, v in node["capacity"].items() if k in ("CPU", "ssd")} == shared_nodes[node_id]
        assert 0 <= node["tasks_in_flight"] <= shared_nodes[node_id]["CPU"]  # overcommit 1: what runs now
        assert node["tasks_waiting"] >= 0
    assert sum(node["tasks_in_flight"] for node in nodes.values()) == sum(s["in_flight"] for s in state["submissions"])
    # load_factor off: each waiting task waits for its key's owner, counted there
    assert sum(node["tasks_waiting"] for node in nodes.values()) == sub["waiting"], state
    assert state["decisions"] >= sub["decisions"] and state["calls"] >= 1
    assert state["reported_dead"] == []
    assert {c[2] for c in state["membership_changes"] if c[1] == "join"} == set(shared_nodes)

    # overcommit: 4 (config): a deeper window (2 x 9 x 4 = 72), and nodes hold up to 4 x their capacity
    deep = _config(tmp_path / "deep.yaml", address=address, overcommit=4, policy="random")
    b = _gated_run(job, address, tmp_path, "x4", "--config", str(deep))
    assert b["code"] == 0, b["text"]
    assert (b["held"], b["drawn"], b["finished"]) == (windows["x4"], windows["x4"], False)
    assert (pd.read_csv(b["out"])["status"] == "ok").sum() == n
    sub = next(s for s in b["state"]["submissions"] if s["run_id"] == b["run_id"])
    assert (sub["policy"], sub["overcommit"], sub["done"]) == ("random", 4.0, 0), sub
    assert SHARED_CPUS < sub["in_flight"] <= 4 * SHARED_CPUS and sub["waiting"] >= 72 - 4 * SHARED_CPUS, sub
    for node in b["state"]["nodes"]:
        assert node["reserved"].get("CPU", 0) <= 4 * shared_nodes[node["node_id"]]["CPU"], node


# -- 6. --resume ---------------------------------------------------------------------------------------------

RESUME_JOB = (
    "import os, raysched\n"
    "PHASE = os.environ.get('RESUME_PHASE', '1')\n"
    "def work(i, phase):\n"
    "    if phase == '1' and i >= 6:\n"
    "        raise ValueError(f'not yet {i}')\n"
    "    out = {'items': 1}\n"
    "    if phase == '2':\n"
    "        out['extra'] = 100 + i  # a metric column that first appears in the resumed part\n"
    "    return out\n"
    "def tasks():\n    for i in range(10):\n        yield raysched.Task(work, args=(i, PHASE))\n"
)


def test_resume_appends_widens_and_ignores_out(address: str, tmp_path: Path) -> None:
    job = write(tmp_path / "resumable.py", RESUME_JOB)
    out = tmp_path / "first.csv"
    first = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet", timeout=180)
    assert first.code == 1, first.text
    before = pd.read_csv(out, keep_default_na=False)
    assert len(before) == 10 and "extra" not in before.columns
    assert sorted(before.loc[before["status"] == "ok", "task_id"]) == list(range(6))

    ignored = tmp_path / "ignored.csv"
    second = run_cli(
        "submit",
        str(job),
        "--address",
        address,
        "--resume",
        str(out),
        "--out",
        str(ignored),
        "--quiet",
        env={"RESUME_PHASE": "2"},
        timeout=180,
    )
    assert second.code == 0, second.text
    assert not ignored.exists() and not ignored.with_suffix(".json").exists()  # --out is ignored
    assert re.search(r"skipped \(resume\)\s+6\b", second.out), second.out
    after = pd.read_csv(out)
    assert len(after) == 10 + 4  # no row lost, 4 rows appended
    assert "extra" in after.columns  # the file was widened
    first_id = before["run_id"].iloc[0]
    old, new = after[after["run_id"] == first_id], after[after["run_id"] != first_id]
    assert len(old) == 10 and old["extra"].isna().all()  # earlier rows keep empty cells
    assert sorted(old["task_id"]) == list(range(10)) and list(old["status"]) == list(before["status"])
    assert sorted(new["task_id"]) == [6, 7, 8, 9] and (new["status"] == "ok").all()
    assert list(new.sort_values("task_id")["extra"]) == [106, 107, 108, 109]
    assert [r["resumed"] for r in runs_of(out)] == [False, True]

    # Resuming a complete run: nothing runs again.
    third = run_cli(
        "submit",
        str(job),
        "--address",
        address,
        "--resume",
        str(out),
        "--quiet",
        env={"RESUME_PHASE": "2"},
        timeout=180,
    )
    assert third.code == 0, third.text
    assert re.search(r"skipped \(resume\)\s+10\b", third.out), third.out
    final = pd.read_csv(out)
    assert len(final) == 14
    assert sorted(final.loc[final["status"] == "ok", "task_id"]) == list(range(10))


def test_resume_refuses_a_missing_or_foreign_csv(address: str, tmp_path: Path) -> None:
    job = write(tmp_path / "resumable.py", RESUME_JOB)
    missing = tmp_path / "missing.csv"
    line = assert_bad_input(
        run_cli("submit", str(job), "--address", address, "--resume", str(missing), "--quiet", timeout=60)
    )
    assert str(missing) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resumable.py"]  # nothing written

    foreign = write(tmp_path / "foreign.csv", "name,value\nalpha,1\nbeta,2\n")
    line = assert_bad_input(
        run_cli("submit", str(job), "--address", address, "--resume", str(foreign), "--quiet", timeout=60)
    )
    assert "foreign.csv" in line
    assert foreign.read_text() == "name,value\nalpha,1\nbeta,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.csv", "resumable.py"]


# -- 7. job code staging ------------------------------------------------------------------------------------

STAGED_JOB = (
    "import raysched\n"
    "import helpers  # a sibling module, at the top\n"
    "def work(i):\n"
    "    import ray\n"
    "    from pkg.sub import square  # a sibling package, inside the task\n"
    "    import lateonly  # a sibling module the driver never imports\n"
    "    env = ray.get_runtime_context().get_runtime_env_string()\n"
    "    return {'triple': helpers.triple(i), 'square': square(i), 'plus': lateonly.plus_seven(i),\n"
    "            'working_dir': int('working_dir' in env)}\n"
    "def tasks():\n    for i in range(6):\n        yield raysched.Task(work, args=(i,))\n"
)

PLAIN_JOB = (
    "import raysched\n"
    "def work(i):\n"
    "    import ray\n"
    "    env = ray.get_runtime_context().get_runtime_env_string()\n"
    "    return {'double': 2 * i, 'working_dir': int('working_dir' in env), 'env_len': len(env)}\n"
    "def tasks():\n    for i in range(6):\n        yield raysched.Task(work, args=(i,))\n"
)


def test_sibling_modules_and_packages_reach_the_workers(address: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    job = write(project / "staged.py", STAGED_JOB)
    write(project / "helpers.py", "def triple(x):\n    return 3 * x\n")
    write(project / "lateonly.py", "def plus_seven(x):\n    return x + 7\n")
    write(project / "pkg" / "__init__.py", "")
    write(project / "pkg" / "sub.py", "def square(x):\n    return x * x\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out.csv"
    result = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet", cwd=elsewhere, timeout=180)
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    assert (df["status"] == "ok").all() and sorted(df["task_id"]) == list(range(6))
    assert (df["triple"] == 3 * df["task_id"]).all()
    assert (df["square"] == df["task_id"] ** 2).all()
    assert (df["plus"] == df["task_id"] + 7).all()
    assert (df["working_dir"] == 1).all()
    assert runs_of(out)[0]["code"] == "working_dir"
    assert (df["via"] == "task").all()  # code in a working_dir runs as plain pinned tasks, not on shared executors
    assert runs_of(out)[0]["executors"]["mode"] == "off"


def test_job_without_sibling_imports_runs_with_no_runtime_env(address: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    job = write(project / "plain.py", PLAIN_JOB)
    write(project / "unused_helper.py", "def never():\n    return 0\n")  # beside it, but not imported
    out = tmp_path / "out.csv"
    result = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet", cwd=tmp_path, timeout=180)
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    assert (df["status"] == "ok").all() and (df["double"] == 2 * df["task_id"]).all()
    assert (df["working_dir"] == 0).all()
    assert (df["env_len"] <= 2).all()  # "{}": no runtime env at all
    assert runs_of(out)[0]["code"] == "by value"
    assert (df["via"] == "executor").all()  # code shipped by value runs on the shared executors
