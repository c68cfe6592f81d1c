"""The docs and the README: every Python block runs, here or on the test cluster.

Blocks run with pytest-examples (the `docs` extra), each in a fresh folder holding a small
`results/hash.csv` and `results/random.csv` written by raysched's own CSV writer, so the
analysis examples read what `raysched submit` writes. A job file's `tasks()` is drawn to the
end, as the driver would draw it. No Ray cluster is started: blocks whose fence says
`test="cluster"` run in tests/cluster/test_doc_examples.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pytest_examples", reason="the doc examples need the docs extra: pip install -e '.[docs]'")

from doc_examples import CLUSTER_EXAMPLES, EXAMPLES, README, ROOT, UNIT_EXAMPLES, example_id
from pytest_examples import CodeExample, EvalExample

import raysched
from raysched.results import sidecar
from raysched.results.schema import Row, Status
from raysched.results.writer import ResultsWriter

QUICKSTART = """```bash
pip install . && raysched submit jobs/quickstart.py
pip install '.[test]' && python -m pytest -q
```"""


def write_sample_run(path: Path, policy: str, nodes: tuple[str, ...], hit_every: int) -> None:
    """Twelve ok tasks over four keys and one failed one, as a run of `policy` would record them, with a sidecar."""
    writer = ResultsWriter(path, flush_every_s=0)
    for task_id in range(12):
        submitted = 1_000.0 + task_id * 0.1
        writer.write(
            Row(
                run_id=f"{policy}-0001",
                job="cache_affinity.py",
                policy=policy,
                task_id=task_id,
                key=f"user-{task_id % 4}",
                attempt=1,
                status=Status.OK.value,
                node_chosen=nodes[task_id % len(nodes)],
                node_ran=nodes[task_id % len(nodes)],
                submitted_at=submitted,
                started_at=submitted + 0.05,
                finished_at=submitted + 0.25,
                wait_s=0.05,
                run_s=0.2,
                demand="CPU=1",
            ),
            {"items": 10, "bytes": 1_000, "cache_hit": int(task_id % hit_every == 0)},
        )
    writer.write(
        Row(run_id=f"{policy}-0001", job="cache_affinity.py", policy=policy, task_id=12, key="", attempt=1,
            status=Status.FAILED.value, error="ValueError: boom", node_chosen=nodes[0], node_ran=nodes[0],
            submitted_at=1_002.0, started_at=1_002.1, finished_at=1_002.2, wait_s=0.1, run_s=0.1, demand="CPU=1")
    )  # fmt: skip
    writer.close()
    cluster = [{"node_id": node, "capacity": {"CPU": 2.0 * (i + 1)}} for i, node in enumerate(nodes)]
    sidecar.record_run(path, {"run_id": f"{policy}-0001", "job": "cache_affinity.py", "cluster": {"nodes": cluster}})


@pytest.fixture
def results_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the two runs the docs' examples read."""
    results = tmp_path / "results"
    write_sample_run(results / "hash.csv", "hash", ("a1" * 28, "b2" * 28), hit_every=1)
    write_sample_run(results / "random.csv", "random", ("a1" * 28, "b2" * 28, "c3" * 28), hit_every=3)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_docs_have_python_examples() -> None:
    assert any(e.path == README for e in EXAMPLES)
    assert len({e.path for e in EXAMPLES}) >= 4, [str(e) for e in EXAMPLES]


def test_the_python_api_examples_run_on_the_test_cluster() -> None:
    """`raysched.submit` in the CLI page runs (on the cluster), never skipped (issue 30)."""
    assert any("raysched.submit(" in e.source for e in CLUSTER_EXAMPLES)
    skipped = [example_id(e) for e in EXAMPLES if e.prefix_settings().get("test") == "skip"]
    assert not skipped, f'run these here or with test="cluster": {skipped}'


@pytest.mark.parametrize("example", UNIT_EXAMPLES, ids=example_id)
def test_python_example(example: CodeExample, eval_example: EvalExample, results_folder: Path) -> None:
    settings = example.prefix_settings()
    if settings.get("test") == "skip":
        reason = settings.get("reason", "").strip()
        assert reason, f'{example_id(example)}: a block that does not run says why: test="skip" reason="..."'
        pytest.skip(reason)
    module: dict[str, Any] = eval_example.run(example)
    if callable(module.get("tasks")):  # a job file: draw every task, as the driver does
        drawn = list(module["tasks"]())
        assert drawn and all(isinstance(t, raysched.Task) for t in drawn)


def test_readme_is_short_and_keeps_the_quickstart_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    quickstart = text.split("## Quickstart", 1)[1]
    assert quickstart.lstrip("\n").startswith(QUICKSTART)


def test_readme_links_into_the_docs_resolve() -> None:
    text = README.read_text()
    targets = {m for m in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in m}
    assert any(t.startswith("docs/") for t in targets)
    missing = sorted(t for t in targets if not (ROOT / t).exists())
    assert not missing, missing


def test_the_quickstart_says_how_long_the_tests_take_and_names_the_unit_loop() -> None:
    """Issue 30: the README's test command did not say it takes about 14 minutes; the 1-minute loop was elsewhere."""
    for page in (README, ROOT / "docs" / "getting-started.md"):
        text = page.read_text()
        assert "14 minutes" in text and 'python -m pytest -q -m "not cluster"' in text, page
        assert "(about\n10 s)" not in text, page  # the embedded cluster took 18 s warm, 38 s cold


def test_the_readme_and_what_if_agree_on_a_million_tasks() -> None:
    what_if = " ".join((ROOT / "docs" / "what-if.md").read_text().split())
    readme = " ".join(README.read_text().split())
    in_what_if = re.search(r"([\d.]+) minutes \([a-z0-9, ]+\) to ([\d.]+) minutes \(hash\)", what_if)
    in_readme = re.search(r"([\d.]+) to ([\d.]+) minutes for a million tasks", readme)
    assert in_what_if and in_readme, "each states how long a million simulated tasks take"
    assert in_what_if.groups() == in_readme.groups()


def test_no_python_example_uses_a_name_it_never_defines(tmp_path: Path) -> None:
    """Issue 30: docs/services.md's job used `hit` without defining it (a method the doc tests never call)."""
    pytest.importorskip("ruff", reason="ruff comes with the dev extra")
    for i, example in enumerate(EXAMPLES):
        (tmp_path / f"example_{i}.py").write_text(example.source)
    found = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F821", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    where = {f"example_{i}.py": example_id(e) for i, e in enumerate(EXAMPLES)}
    report = found.stdout
    for name, origin in where.items():
        report = report.replace(name, origin)
    assert found.returncode == 0, report
