"""`raysched deploy` / `undeploy` on the command line, without a cluster: the Ray side of
`raysched.deployment` is replaced by fakes.

Rules: ``--service-spread LABEL`` reaches every service's controller as the label's values per node (its failure
domains), and no spread means none; undeploy counts its replicas removed in the singular or plural.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from raysched import deployment
from raysched.cli.deploy import deploy_command, undeploy_command

JOB = "jobs/service_cache.py"
ZONES = {"node-a": "us-1", "node-b": "us-2"}


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every controller `deploy` starts, with what it was given; no Ray cluster is touched."""
    calls: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def connected(address: str | None) -> Iterator[None]:
        yield

    def label_values(label: str) -> dict[str, str]:
        calls.append({"label": label})
        return dict(ZONES)

    def start_controller(declared: Any, placement: Any, routing: str, info: Any, **kw: Any) -> str:
        calls.append({"service": deployment.spec_of(declared).name, "routing": routing, **kw})
        return f"controller:{deployment.spec_of(declared).name}"

    def up(name: str, actor: Any, ray: Any) -> dict[str, Any]:
        return {"service": name, "replicas": [{"name": f"{name}#0", "node": "node-a"}], "routing": "hash"}

    monkeypatch.setattr(deployment, "connected", connected)
    monkeypatch.setattr(deployment, "find_controller", lambda name: None)
    monkeypatch.setattr(deployment, "label_values", label_values)
    monkeypatch.setattr(deployment, "start_controller", start_controller)
    monkeypatch.setattr(deployment, "_started", up)
    monkeypatch.setattr(deployment.load_job(JOB).__class__, "ship_by_value", lambda self: None)
    return calls


def test_service_spread_reaches_the_controller_as_the_labels_values(started: list[dict[str, Any]]) -> None:
    out = CliRunner().invoke(deploy_command, [JOB, "--service-spread", "zone", "--address", "x:1"])
    assert out.exit_code == 0, out.output
    assert started[0] == {"label": "zone"}
    assert started[1]["domains"] == ZONES and started[1]["routing"] == "hash"
    assert "deployed Shard: 1 replica (" in out.output


def test_without_service_spread_no_domains(started: list[dict[str, Any]]) -> None:
    out = CliRunner().invoke(deploy_command, [JOB, "--address", "x:1"])
    assert out.exit_code == 0, out.output
    assert [c.get("domains", "none") for c in started] == [None]


@pytest.mark.parametrize(("count", "said"), [(1, "(1 replica removed)"), (3, "(3 replicas removed)")])
def test_undeploy_counts_replicas_in_the_singular_or_plural(
    monkeypatch: pytest.MonkeyPatch, count: int, said: str
) -> None:
    final = {"service": "Shard", "replicas": [{"name": f"Shard#{i}"} for i in range(count)]}
    monkeypatch.setattr(deployment, "undeploy", lambda name, address=None: final)
    out = CliRunner().invoke(undeploy_command, ["Shard"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"undeployed Shard {said}"
