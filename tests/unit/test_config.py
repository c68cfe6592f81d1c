"""Config files and their clear errors; configs/local.yaml matches the built-in defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysched.cluster import DEFAULT_LOCAL_NODES, DEFAULT_SYSTEM_CONFIG, LocalNode, scale_nodes
from raysched.config import ConfigError, Settings, load_config, parse_load_factor

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_local_config_is_the_default() -> None:
    settings = load_config(ROOT / "configs" / "local.yaml")
    assert settings == Settings()
    assert settings.local_nodes == DEFAULT_LOCAL_NODES
    assert dict(settings.system_config) == dict(DEFAULT_SYSTEM_CONFIG)
    assert [n.num_cpus for n in DEFAULT_LOCAL_NODES] == [1, 2, 2, 4]


def test_shipped_cluster_config_joins_an_existing_cluster() -> None:
    assert load_config(ROOT / "configs" / "cluster.yaml").address == "auto"


def test_shipped_even_config_has_four_equal_nodes_in_two_zones() -> None:
    nodes = load_config(ROOT / "configs" / "even.yaml").local_nodes
    assert len(nodes) == 4 and all(n.num_cpus == 4 and n.resources == {"ssd": 2} for n in nodes)
    assert [n.labels["zone"] for n in nodes] == ["east", "east", "west", "west"]


@pytest.mark.parametrize("labels", ["zone=east", {"zone": 1}, {1: "east"}])
def test_node_labels_must_map_names_to_strings(tmp_path: Path, labels: object) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"local_nodes": [{"num_cpus": 1, "labels": labels}]}))
    with pytest.raises(ConfigError, match=r"local_nodes\[0\].labels"):
        load_config(path)


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "policy: p2c\nseed: 7\nload_factor: off\nlocal_nodes:\n  - {num_cpus: 3, resources: {gpu_like: 1}}\n"
    )
    settings = load_config(path)
    assert settings.policy == "p2c" and settings.seed == 7 and settings.load_factor is None
    assert settings.local_nodes == (LocalNode(num_cpus=3, resources={"gpu_like": 1}),)


@pytest.mark.parametrize(
    "text, message",
    [
        ("polcy: hash\n", "unknown config key(s): polcy; known keys:"),
        ("load_factor: 0.5\n", "load factor must be >= 1"),
        ("vnodes: many\n", "vnodes must be an integer"),
        ("retries: -1\n", "retries must be >= 0"),
        ("local_nodes: []\n", "local_nodes must be a non-empty list"),
        ("local_nodes:\n  - {num_cpus: two}\n", "local_nodes[0].num_cpus must be a number"),
        ("local_nodes:\n  - {num_cpus: 1, resources: {ssd: -1}}\n", "local_nodes[0].resources.ssd must be >= 0"),
        ("overcommit: .inf\n", "overcommit must be a finite number >= 1 (1.0 = strict), got inf (or 'auto')"),
        ("overcommit: 0.5\n", "overcommit must be a finite number >= 1 (1.0 = strict), got 0.5 (or 'auto')"),
        ("batch: 0\n", "batch must be 'auto', 'off' or a whole number"),
        ("batch: 2.5\n", "batch must be 'auto', 'off' or a whole number"),
        ("locality_wait: -1\n", "locality_wait must be 'auto' or a number >= 0"),
        ("executors: sometimes\n", "executors must be one of auto, on, off; got 'sometimes'"),
        ("executor_idle_s: 0\n", "executor_idle_s must be >= 0.1"),
        ("keys_per_node: 0\n", "keys_per_node must be >= 1"),
        ("keys_per_node: lots\n", "keys_per_node must be an integer"),
        ("- a\n- b\n", "must be a mapping"),
        ("policy: [unclosed\n", "is not valid YAML (line 2)"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "mode"), [("executors: off\n", "off"), ("executors: on\n", "on"), ("executors: 'auto'\n", "auto")]
)
def test_executors_take_yaml_on_and_off_as_words(tmp_path: Path, text: str, mode: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + "executor_idle_s: 5\n")
    settings = load_config(path)
    assert settings.executors == mode and settings.executor_idle_s == 5.0


def test_load_factor_parsing() -> None:
    assert parse_load_factor("off") is None and parse_load_factor("1.5") == 1.5
    with pytest.raises(ConfigError):
        parse_load_factor("0.9")


def test_local_nodes_pattern_repeats() -> None:
    assert [n.num_cpus for n in scale_nodes(DEFAULT_LOCAL_NODES, 6)] == [1, 2, 2, 4, 1, 2]
    with pytest.raises(ValueError):
        scale_nodes(DEFAULT_LOCAL_NODES, 0)


def test_local_yaml_states_the_adaptive_locality_wait_the_hash_policy_uses() -> None:
    """Issue 30: configs/local.yaml said "3 x the job's 90th-percentile"; auto is one median task time."""
    from raysched.policies import hash as hash_policy

    text = (Path(__file__).resolve().parents[2] / "configs" / "local.yaml").read_text()
    comment = text.split("locality_wait:", 1)[0].rsplit("\n\n", 1)[1]
    assert hash_policy.AUTO_WAIT_TASKS == 1.0 and "one median task time" in comment, comment
    assert f"{hash_policy.AUTO_WAIT_MIN_S:g} s and {hash_policy.AUTO_WAIT_MAX_S:g} s" in comment, comment
    assert "90th" not in comment
