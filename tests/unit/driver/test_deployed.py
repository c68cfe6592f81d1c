"""A run calling a deployed service (no Ray): the controller's table turned into the run loop's replica events,
and a run's own service autoscaled by the driver (`ServiceCalls`, its fleet's actors fakes)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from test_fleet import FakeActors, FakeClient

import raysched
from raysched.driver.attempts import Attempt
from raysched.driver.calls import CallRouter
from raysched.driver.deployed import DeployedReplicas, Fleets
from raysched.driver.replicas import Fleet
from raysched.driver.service_calls import ServiceCalls
from raysched.driver.table import ReplicaEntry, RoutingTable
from raysched.policies import PolicyOptions, build_policy
from raysched.services import Autoscale, spec_of


@raysched.service(replicas=2)
class Shard:
    def get(self, key: str) -> dict:
        return {"items": 1}


class FakeController:
    def __init__(self) -> None:
        self.told: list[tuple[Any, ...]] = []
        self.lost = SimpleNamespace(remote=lambda *args: self.told.append(("lost", *args)))
        self.forget = SimpleNamespace(remote=lambda *args: self.told.append(("forget", *args)))


def table(version: int, up: dict[str, int], draining: tuple = (), starting: tuple = ()) -> RoutingTable:
    entries = tuple(ReplicaEntry(name, f"actor-{name}-{epoch}", "node", epoch) for name, epoch in up.items())
    return RoutingTable("Shard", version, "hash", replicas=entries, draining=draining, starting=starting)


def call(uid: int, fn: Any) -> Attempt:
    return Attempt(uid, raysched.Task(fn, args=(uid,), key=f"k{uid}"), f"k{uid}", {"CPU": 1.0}, "CPU=1")


def deployed() -> tuple[DeployedReplicas, list[tuple[str, str]], FakeController]:
    controller = FakeController()
    d = DeployedReplicas(spec_of(Shard), controller)
    seen: list[tuple[str, str]] = []
    d.on_up = lambda replica: seen.append(("up", replica.name))
    d.on_lost = lambda name: seen.append(("lost", name))
    d.on_removed = lambda name: seen.append(("removed", name))
    return d, seen, controller


def test_the_tables_changes_become_up_lost_and_removed() -> None:
    d, seen, _ = deployed()
    d._apply(table(1, {"Shard#0": 1, "Shard#1": 1}))
    assert seen == [("up", "Shard#0"), ("up", "Shard#1")] and d.is_up("Shard#1")
    seen.clear()
    d._apply(table(2, {"Shard#0": 1}, starting=("Shard#1",)))  # being re-created
    assert seen == [("lost", "Shard#1")] and not d.is_up("Shard#1")
    d._apply(table(3, {"Shard#0": 1, "Shard#1": 2}))
    assert seen[-1] == ("up", "Shard#1") and d.replicas["Shard#1"].handle == "actor-Shard#1-2"
    seen.clear()
    d._apply(table(4, {"Shard#0": 1}, draining=("Shard#1",)))  # no new calls; those under way finish
    assert seen == [("removed", "Shard#1")] and d.is_up("Shard#1")
    d._apply(table(5, {"Shard#0": 1}))  # gone for good
    assert seen == [("removed", "Shard#1")] and "Shard#1" not in d.replicas


def test_a_replica_recreated_between_two_refreshes_is_lost_then_up() -> None:
    d, seen, _ = deployed()
    d._apply(table(1, {"Shard#0": 1}))
    d._apply(table(2, {"Shard#0": 2}))
    assert seen == [("up", "Shard#0"), ("lost", "Shard#0"), ("up", "Shard#0")]


def test_an_actor_the_run_saw_die_is_not_used_again_and_the_controller_hears_of_it() -> None:
    d, seen, controller = deployed()
    d._apply(table(1, {"Shard#0": 1}))
    d.lost("Shard#0")
    d.lost("Shard#0")  # once
    assert seen == [("up", "Shard#0"), ("lost", "Shard#0")] and controller.told == [("lost", "Shard#0", 1)]
    d._apply(table(2, {"Shard#0": 1}))  # the controller has not noticed yet: still the dead actor
    assert not d.is_up("Shard#0")
    d._apply(table(3, {"Shard#0": 2}))
    assert d.is_up("Shard#0")


def test_a_run_reports_its_calls_per_replica_and_the_router_drops_a_draining_replica() -> None:
    d, _, controller = deployed()
    spec = spec_of(Shard)
    router = CallRouter(spec, build_policy("hash", PolicyOptions()))
    calls = ServiceCalls(Fleets(None, {"Shard": d}), {"Shard": router})
    d.on_up = lambda replica: calls.replica_up(replica.name)
    d._apply(table(1, {"Shard#0": 1, "Shard#1": 1}))
    assert set(router.live) == {"Shard#0", "Shard#1"}
    for i in range(3):
        calls.hold(call(i, Shard.get))
    list(calls.route({"overcommit": 4.0}))
    outstanding, waiting = d.load()
    assert sum(outstanding.values()) + waiting == 3
    d._apply(table(2, {"Shard#0": 1}, draining=("Shard#1",)))
    assert router.live == ("Shard#0",)
    calls.stop()
    assert controller.told[-1] == ("forget", d.client_id)


def test_a_runs_own_service_grows_under_load_and_drains_its_highest_replica_when_idle() -> None:
    declared = raysched.service(replicas=(1, 3), autoscale=Autoscale(target=2, up_delay_s=1.0, down_delay_s=1.0))(
        type("Pool", (), {"get": lambda self, k: {"items": 1}})
    )
    spec = spec_of(declared)
    now = [0.0]
    policy = build_policy("greedy", PolicyOptions())
    client: Any = FakeClient()
    fleet = Fleet([declared], client, policy, lambda s: {"CPU": 1.0}, actors=FakeActors(), clock=lambda: now[0])
    router = CallRouter(spec, build_policy("hash", PolicyOptions()))
    calls = ServiceCalls(fleet, {"Pool": router}, clock=lambda: now[0])
    fleet.on_up = lambda replica: calls.replica_up(replica.name)
    fleet.start()
    held = [call(i, declared.get) for i in range(6)]
    for a in held:
        calls.hold(a)
    placed = [p for answer in calls.route({"overcommit": 1.0}) for p in answer.placed]
    now[0] = 1.0
    list(calls.route({"overcommit": 1.0}))  # 6 calls asked for 3 replicas for the up delay: grows
    fleet.poll()
    assert fleet.names("Pool") == ["Pool#0", "Pool#1", "Pool#2"] and set(router.live) == set(fleet.names("Pool"))
    by_uid = {a.task_id: a for a in held}
    for _ in range(10):  # every call routed finishes, until none is left
        for uid, replica in list(calls.outstanding["Pool"].items()):
            by_uid[uid].replica = replica
            calls.finished(by_uid[uid])
        list(calls.route({"overcommit": 1.0}))
    assert placed and calls.load_of("Pool") == ({}, 0)
    now[0] = 2.0
    list(calls.route({"overcommit": 1.0}))
    now[0] = 3.0
    list(calls.route({"overcommit": 1.0}))  # idle for the down delay: back to 1, the highest drained first
    assert fleet.names("Pool") == ["Pool#0"] and router.live == ("Pool#0",)
