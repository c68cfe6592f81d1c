"""The Python blocks of the README and docs/, for the doc-example tests (unit and cluster).

A block runs in the unit tests unless its fence says otherwise: `test="cluster"` runs it in
tests/cluster/test_doc_examples.py against the session's loopback cluster (`RAY_ADDRESS` set, a copy
of jobs/quickstart.py as `job.py` in its folder); `test="skip" reason="..."` is for a block no test
can serve, and says why.
"""

from __future__ import annotations

from pathlib import Path

from pytest_examples import CodeExample, find_examples

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = list(find_examples(README, ROOT / "docs"))


def example_id(example: CodeExample) -> str:
    return f"{example.path.relative_to(ROOT)}:{example.start_line}"


def needs_cluster(example: CodeExample) -> bool:
    return example.prefix_settings().get("test") == "cluster"


UNIT_EXAMPLES = [e for e in EXAMPLES if not needs_cluster(e)]
CLUSTER_EXAMPLES = [e for e in EXAMPLES if needs_cluster(e)]
