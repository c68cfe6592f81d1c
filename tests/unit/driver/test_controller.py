"""A deployed service's controller without Ray: its fleet's actors and the brain are fakes (`test_fleet`).

Rules: the table lists the up replicas and changes version when they change; a client gets the table only when
its copy is old, with the loads of the other clients; reports of silent clients expire; it grows by ``Name#k``
once the reported load asked for it for the up delay; it drains the highest replica and removes it only once
every client has reported, with the table that dropped it in hand, no call there; stop removes everything.
"""

from __future__ import annotations

import pytest
from test_fleet import FakeActors, FakeClient

import raysched
from raysched.driver.controller import DRAIN_TIMEOUT_S, REPORT_TTL_S, ServiceController
from raysched.policies import build_policy
from raysched.policies.base import PolicyOptions
from raysched.services import Autoscale


class Cache:
    def get(self, key: str) -> int:
        return 0


def controller(replicas: object = 2, up: float = 1.0, down: float = 5.0) -> tuple[ServiceController, list[float]]:
    declared = raysched.service(replicas=replicas, autoscale=Autoscale(target=2, up_delay_s=up, down_delay_s=down))(
        Cache
    )
    now = [100.0]
    c = ServiceController(
        declared,
        build_policy("greedy", PolicyOptions()),
        "hash",
        {"job": "job.py"},
        client=FakeClient(),  # type: ignore[arg-type]
        actors=FakeActors(),
        clock=lambda: now[0],
    )
    c.start(background=False)
    return c, now


def test_the_table_lists_the_up_replicas_and_a_client_gets_it_only_when_its_copy_is_old() -> None:
    c, _ = controller(2)
    table = c.sync("a", {}, 0, -1)
    assert table is not None and [e.name for e in table.replicas] == ["Cache#0", "Cache#1"]
    assert table.methods == ("get",) and table.routing == "hash"
    assert c.sync("a", {"Cache#0": 3}, 0, table.version) is None
    other = c.sync("b", {"Cache#1": 1}, 0, -1)
    assert other is not None and dict(other.loads) == {"Cache#0": 3.0}  # the other client's calls, not its own
    assert c.load() == 4.0 and c.status()["clients"] == 2


def test_a_silent_clients_report_expires() -> None:
    c, now = controller(2)
    c.sync("a", {"Cache#0": 3}, 1, -1)
    now[0] += REPORT_TTL_S + 0.1
    assert c.load() == 0.0


def test_it_grows_by_the_next_index_once_the_load_asked_for_the_up_delay() -> None:
    c, now = controller((1, 4), up=1.0)
    v0 = c.version
    c.sync("a", {"Cache#0": 5}, 2, v0)  # 7 calls: asks ceil(7 / 2) = 4
    c.tick()
    assert c.fleet.count("Cache") == 1
    now[0] += 1.0
    c.sync("a", {"Cache#0": 5}, 2, v0)
    c.tick()  # grows
    c.tick()  # the fake actors are ready at once
    table = c.table()
    assert [e.name for e in table.replicas] == ["Cache#0", "Cache#1", "Cache#2", "Cache#3"]
    assert table.version > v0


def test_it_drains_the_highest_and_removes_it_once_every_client_saw_it_go_with_no_call_there() -> None:
    c, now = controller((1, 3), down=2.0)
    for _ in range(2):
        c.fleet.grow("Cache")
    c.tick()
    assert c.fleet.count("Cache") == 3
    v = c.table().version
    c.sync("a", {"Cache#2": 1}, 0, v)
    c.tick()
    now[0] += 2.0
    c.sync("a", {"Cache#2": 1}, 0, v)
    c.tick()  # 1 call asks for 1 replica: the two highest drain
    table = c.table()
    assert [e.name for e in table.replicas] == ["Cache#0"] and set(table.draining) == {"Cache#1", "Cache#2"}
    assert c.fleet.count("Cache") == 3  # the client has not seen the new table yet
    c.sync("a", {"Cache#2": 1}, 0, table.version)  # has it now, but still has a call there
    c.tick()
    assert c.fleet.count("Cache") == 3
    c.sync("a", {}, 0, table.version)
    c.tick()
    assert c.fleet.names("Cache") == ["Cache#0"]
    assert c.client.released == ["Cache#2", "Cache#1"]  # type: ignore[attr-defined]


def test_a_draining_replica_is_removed_after_the_drain_timeout_whatever_clients_say() -> None:
    c, now = controller((1, 2), down=0.0)
    c.fleet.grow("Cache")
    c.sync("a", {"Cache#1": 1}, 0, -1)
    c.tick()  # drains Cache#1 at once (no down delay), the client still reports a call there
    assert "Cache#1" in c.table().draining
    for _ in range(3):
        now[0] += DRAIN_TIMEOUT_S / 2
        c.sync("a", {"Cache#1": 1}, 0, c.version)
        c.tick()
    assert c.fleet.names("Cache") == ["Cache#0"]


def test_a_load_that_returns_takes_a_draining_replica_back_first() -> None:
    c, _ = controller((1, 2), up=0.0, down=0.0)
    c.fleet.grow("Cache")
    c.sync("a", {"Cache#1": 1}, 0, -1)
    c.tick()
    assert "Cache#1" in c.table().draining
    c.sync("a", {"Cache#0": 3, "Cache#1": 1}, 0, -1)
    c.tick()
    assert not c.table().draining and len(c.table().replicas) == 2 and c.fleet.count("Cache") == 2


def test_with_no_client_a_drained_replica_goes_at_once() -> None:
    c, _ = controller((1, 2), down=0.0)
    c.fleet.grow("Cache")
    c.tick()
    assert c.fleet.names("Cache") == ["Cache#0"]


def test_stop_removes_every_replica_and_ends_the_registration() -> None:
    c, _ = controller(3)
    handles = sorted(r.handle for r in c.fleet.replicas.values())
    final = c.stop()
    assert [r["name"] for r in final["replicas"]] == ["Cache#0", "Cache#1", "Cache#2"]
    assert sorted(c.fleet.actors.killed) == handles  # type: ignore[attr-defined]
    assert c.client.closed  # type: ignore[attr-defined]


def test_a_service_that_cannot_start_leaves_nothing_behind() -> None:
    declared = raysched.service(replicas=1)(Cache)
    actors = FakeActors(fail_init=True)
    client = FakeClient()
    c = ServiceController(
        declared,
        build_policy("greedy", PolicyOptions()),
        "hash",
        {},
        client=client,  # type: ignore[arg-type]
        actors=actors,
    )
    with pytest.raises(Exception, match="raised ValueError: no model file here"):
        c.start(background=False)
    assert client.closed and len(actors.killed) == len(actors.created)
