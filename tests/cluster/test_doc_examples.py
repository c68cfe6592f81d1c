"""The docs' Python blocks that need a Ray cluster (fence `test="cluster"`), run against the session's one.

Each runs in a fresh folder holding `job.py` (a copy of jobs/quickstart.py) and a copy of `jobs/`, with
`RAY_ADDRESS` naming the loopback test cluster, so `raysched.submit("job.py", ...)` and
`ray.init(address="auto")` join it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import JOBS, run_cli, wait_for

pytest.importorskip("pytest_examples", reason="the doc examples need the docs extra: pip install -e '.[docs]'")

from doc_examples import CLUSTER_EXAMPLES, example_id
from pytest_examples import CodeExample, EvalExample

BRAIN = "raysched-brain"


def test_there_are_cluster_examples() -> None:
    assert CLUSTER_EXAMPLES


@pytest.mark.parametrize("example", CLUSTER_EXAMPLES, ids=example_id)
def test_python_example_on_the_cluster(
    example: CodeExample, eval_example: EvalExample, address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    shutil.copy(JOBS / "quickstart.py", tmp_path / "job.py")
    shutil.copytree(JOBS, tmp_path / "jobs")  # examples name the example jobs as from the repository's root
    if BRAIN in example.source:  # an example about the running brain: make sure one runs
        result = run_cli("submit", "job.py", "--address", address, "--quiet", "--out", "first.csv", cwd=tmp_path)
        assert result.code == 0, result.text
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", address)
    try:
        module: dict[str, Any] = eval_example.run(example)
    finally:
        ray.shutdown()
    outcome = module.get("outcome")
    if outcome is not None:  # a run: every task of the job ran, and its CSV is where it says
        assert outcome.exit_code == 0 and outcome.ok > 0 and not outcome.failed, outcome
        assert outcome.out_path is not None and (tmp_path / outcome.out_path).exists()
    if BRAIN in example.source:
        ray.init(address=address)
        try:
            assert wait_for(lambda: not _exists(BRAIN), timeout=30), "the brain outlived ray.kill"
        finally:
            ray.shutdown()


def _exists(actor: str) -> bool:
    import ray

    try:
        ray.get_actor(actor, namespace="raysched")
    except ValueError:
        return False
    return True
