"""Declaring a service in a job file: the decorator, its calls, and what loading the job checks (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

import raysched
from raysched.job import JobFileError, load_job, task_demand
from raysched.services import ServiceMethod, spec_of


@raysched.service(num_cpus=2, resources={"ssd": 1}, replicas=3, max_concurrency=4)
class Shard:
    def __init__(self) -> None:
        self.seen = 0

    def predict(self, x: int) -> dict:
        return {"items": x}

    def name(self) -> str:  # a method named like an attribute raysched could have had
        return "shard"


def test_a_service_declares_replicas_demand_and_concurrency() -> None:
    spec = spec_of(Shard)
    assert (spec.name, spec.replicas, spec.max_concurrency) == ("Shard", 3, 4)
    assert spec.replica(2) == "Shard#2"
    assert task_demand(Shard) == {"CPU": 2.0, "ssd": 1.0}


def test_its_methods_are_calls_and_none_of_its_names_are_shadowed() -> None:
    call = Shard.predict
    assert isinstance(call, ServiceMethod) and call.method == "predict" and call.service is Shard
    assert Shard.name == Shard.name and Shard.name.method == "name"
    task = raysched.Task(Shard.predict, args=(1,), key="m1")
    assert task.fn == Shard.predict


@pytest.mark.parametrize("what", ["nope", "_private"])
def test_only_public_methods_of_the_class_are_calls(what: str) -> None:
    with pytest.raises(AttributeError, match="no method"):
        getattr(Shard, what)


def test_a_service_or_a_call_used_in_the_driver_says_how_to_use_it() -> None:
    with pytest.raises(TypeError, match=r"raysched.Task\(Shard.method") as made:
        Shard()
    assert "raysched.get_service('Shard').method.remote(" in str(made.value)
    with pytest.raises(TypeError, match=r"runs on a replica: yield raysched.Task\(Shard.predict") as called:
        Shard.predict(1)
    assert "raysched.get_service('Shard').predict.remote(..., key=...)" in str(called.value)


def test_replicas_low_high_autoscales_and_a_plain_count_does_not() -> None:
    scaled = raysched.service(replicas=(2, 6), autoscale=raysched.Autoscale(target=3))(type("Pool", (), {}))
    spec = spec_of(scaled)
    assert (spec.replicas, spec.high, spec.autoscale.target) == (2, 6, 3)
    assert repr(scaled) == "<raysched service Pool x2-6>"
    fixed = spec_of(Shard)
    assert (fixed.replicas, fixed.high, fixed.max_replicas) == (3, 3, None)
    assert spec_of(raysched.service(replicas=(4, 4))(type("Same", (), {}))).high == 4


@pytest.mark.parametrize(
    ("replicas", "words"),
    [
        ((3, 1), "needs low <= high"),
        ((0, 4), "two whole numbers >= 1"),
        ((1,), "two whole numbers >= 1"),
        ((1, 2, 3), "two whole numbers >= 1"),
        ((1, 2.5), "two whole numbers >= 1"),
        ((True, 2), "two whole numbers >= 1"),
        ("4", "a whole number >= 1 or a pair"),
    ],
)
def test_bad_replica_ranges_are_refused_where_declared(replicas: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        raysched.service(replicas=replicas)  # type: ignore[arg-type]


def test_autoscale_takes_the_knobs_object_only() -> None:
    with pytest.raises(TypeError, match=r"raysched.Autoscale\(target=..."):
        raysched.service(replicas=(1, 2), autoscale={"target": 2})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"replicas": 0}, "replicas"), ({"replicas": 1.5}, "replicas"), ({"max_concurrency": 0}, "max_concurrency")],
)
def test_bad_replicas_or_concurrency_are_refused_where_declared(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        raysched.service(**kwargs)


def test_only_a_class_can_be_a_service() -> None:
    with pytest.raises(TypeError, match="decorates a class"):
        raysched.service()(lambda: None)


def test_the_decorator_without_parentheses_says_how_to_write_it() -> None:
    with pytest.raises(TypeError, match=r"@raysched.service\(...\) with parentheses above class Bare"):

        @raysched.service  # type: ignore[arg-type]
        class Bare:
            pass


def test_loading_a_job_finds_its_services_and_checks_their_demand(tmp_path: Path) -> None:
    good = tmp_path / "svcjob.py"
    good.write_text(
        "import raysched\n"
        "@raysched.service(replicas=2)\nclass Cache:\n    def get(self, k):\n        return {'items': 1}\n"
        "Alias = Cache\n"
        "def tasks():\n    yield raysched.Task(Cache.get, args=(1,), key='a')\n"
    )
    job = load_job(good)
    assert [spec_of(s).name for s in job.services] == ["Cache"]  # once, though bound to two names
    bad = tmp_path / "badsvc.py"
    bad.write_text(
        "import raysched\n"
        "@raysched.service(num_cpus=-1)\nclass Broken:\n    def get(self):\n        return {}\n"
        "def tasks():\n    return []\n"
    )
    with pytest.raises(JobFileError, match=r"service Broken has a bad resource demand"):
        load_job(bad)
