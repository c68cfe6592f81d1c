"""Connecting to Ray, the parts that need no running cluster: the embedded cluster's shape, loopback binding,
address resolution and the messages a user sees when a cluster cannot be reached."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from raysched import cluster
from raysched.cluster import (
    DEFAULT_LOCAL_NODES,
    DEFAULT_SYSTEM_CONFIG,
    ClusterError,
    EmbeddedCluster,
    LocalNode,
    Where,
    check_reachable,
    is_loopback,
    resolve_address,
    scale_nodes,
)


def test_scale_nodes_repeats_the_configured_pattern():
    assert scale_nodes(DEFAULT_LOCAL_NODES, None) == DEFAULT_LOCAL_NODES
    six = scale_nodes(DEFAULT_LOCAL_NODES, 6)
    assert six == (*DEFAULT_LOCAL_NODES, DEFAULT_LOCAL_NODES[0], DEFAULT_LOCAL_NODES[1])
    assert scale_nodes(DEFAULT_LOCAL_NODES, 1) == DEFAULT_LOCAL_NODES[:1]
    with pytest.raises(ValueError, match="--local-nodes must be at least 1"):
        scale_nodes(DEFAULT_LOCAL_NODES, 0)


def test_embedded_cluster_config_is_validated_and_copied_before_anything_starts():
    with pytest.raises(ValueError, match="at least one node"):
        EmbeddedCluster([])
    embedded = EmbeddedCluster(DEFAULT_LOCAL_NODES)
    assert embedded.system_config == dict(DEFAULT_SYSTEM_CONFIG)
    embedded.system_config["health_check_period_ms"] = 1  # its own copy: the default stays as it was
    assert DEFAULT_SYSTEM_CONFIG["health_check_period_ms"] == 500
    mine = {"object_timeout_milliseconds": 100}
    assert EmbeddedCluster([LocalNode(num_cpus=2)], mine).system_config == mine
    assert EmbeddedCluster([LocalNode()], {}).system_config == {}  # an empty config is a config, not the default


def test_node_args_give_ray_the_node_as_configured():
    args = cluster._node_args(LocalNode(num_cpus=2, num_gpus=1, resources={"ssd": 2}))
    assert (args["num_cpus"], args["num_gpus"], args["resources"]) == (2, 1, {"ssd": 2})


def test_loopback_only_keeps_every_ray_process_on_127_0_0_1(monkeypatch):
    import ray._private.ray_constants as ray_constants

    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    cluster.loopback_only()
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert ray_constants.ENABLE_RAY_CLUSTER is False


@pytest.mark.parametrize(
    ("host_port", "loopback"),
    [("127.0.0.1:6379", True), ("127.1.2.3:1", True), ("localhost:6379", True), ("10.0.0.1:6379", False)],
)
def test_is_loopback(host_port, loopback):
    assert is_loopback(host_port) is loopback


def test_resolve_address_prefers_the_flag_then_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None) is None  # nothing given: the embedded cluster
    assert resolve_address("10.0.0.1:6379") == "10.0.0.1:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert resolve_address(None) == "10.0.0.2:6379"
    assert resolve_address("10.0.0.1:6379") == "10.0.0.1:6379"


@pytest.mark.parametrize("word", ["auto", "localhost"])
def test_auto_resolves_to_the_cluster_running_here_or_says_how_to_start_one(monkeypatch, word):
    import ray._private.utils as ray_utils

    monkeypatch.setattr(ray_utils, "read_ray_address", lambda *a, **k: "127.0.0.1:6380")
    assert resolve_address(word) == "127.0.0.1:6380"
    monkeypatch.setattr(ray_utils, "read_ray_address", lambda *a, **k: None)
    with pytest.raises(
        ClusterError, match=r"no running Ray cluster found on this machine for 'auto'.*ray start --head"
    ):
        resolve_address(word)


def test_check_reachable_messages():
    check_reachable("ray://10.0.0.1:10001")  # Ray Client addresses are left to Ray
    with pytest.raises(ClusterError, match=r"must be HOST:PORT, 'auto' or ray://HOST:PORT, got 'nowhere'"):
        check_reachable("nowhere")
    with pytest.raises(ClusterError, match="got 'host:port'"):
        check_reachable("host:port")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClusterError, match=rf"no Ray cluster answers at 127.0.0.1:{port} .*--address / RAY_ADDRESS"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=2.0)


def test_inherited_working_dir_reads_the_ray_job_config(monkeypatch):
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert not cluster.inherited_working_dir()
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {"working_dir": "/x"}}))
    assert cluster.inherited_working_dir()


def test_staged_working_dir_holds_only_python_code_and_goes_away(tmp_path: Path):
    (tmp_path / "job.py").write_text("import helper\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "data").mkdir()  # not a package
    (tmp_path / "big.bin").write_bytes(b"\0" * 1024)
    with cluster.staged_working_dir(tmp_path / "job.py") as runtime_env:
        stage = Path(runtime_env["working_dir"])
        assert sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")) == [
            "helper.py",
            "job.py",
            "pkg",
            "pkg/__init__.py",
        ]
    assert not stage.exists()


def test_where_prints_its_description():
    assert str(Where("embedded cluster of 4 nodes on 127.0.0.1", 1.0)) == "embedded cluster of 4 nodes on 127.0.0.1"


# -- issue 30: where an address came from, and the address a run names ------------------------------------------


def test_a_dead_cluster_in_rays_address_file_says_where_the_address_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray._private.utils as ray_utils

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray_utils, "read_ray_address", lambda *a, **k: "127.0.0.1:1")  # a cluster long gone
    with pytest.raises(cluster.ClusterError) as caught:
        cluster.connect("auto", {})
    message = str(caught.value)
    assert "no Ray cluster answers at 127.0.0.1:1" in message
    assert "--address auto" in message and "Ray's address file" in message and "gone" in message


def test_an_unreachable_ray_address_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(cluster.ClusterError, match=r"from \$RAY_ADDRESS 127\.0\.0\.1:1\)"):
        cluster.connect(None, {})


def test_a_run_on_auto_names_the_address_it_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "connect", lambda address, env: "127.0.0.1:6379")
    with cluster.session("auto", {}, cluster.DEFAULT_LOCAL_NODES) as where:
        assert str(where) == "cluster at 127.0.0.1:6379"  # not "cluster at auto"
