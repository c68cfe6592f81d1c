"""BrainClient's protocol and recovery paths, against an in-process PlacementBrain behind a fake handle.

The fake transport runs calls at once and can make the brain "die" (its
handle raises, as Ray's ActorDiedError does) or "restart" (a fresh brain that
knows nobody, as after Ray restarts the actor).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import wait_for

from raysched.brain.actor import PlacementBrain
from raysched.brain.client import BrainClient
from raysched.brain.state import PolicyError
from raysched.cluster import ClusterError
from raysched.policies import PolicyOptions, build_policy

A, B = "a" * 56, "b" * 56
ONE = {"CPU": 1.0}


class BrainGone(Exception):
    """Stands for Ray's ActorDiedError / ActorUnavailableError."""


class Ref:
    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


class FakeTransport:
    """Calls go straight to an in-process brain; the test can kill or restart it."""

    gone_errors = (BrainGone,)

    def __init__(self, **brain_options: Any) -> None:
        self.brain_options = brain_options
        self.brain = self._new_brain()
        self.alive = True
        self.handles = 0
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def _new_brain(self) -> PlacementBrain:
        brain = PlacementBrain(**self.brain_options)
        brain.sync_nodes({A: {"CPU": 2.0}, B: {"CPU": 1.0}})
        return brain

    def restart(self) -> None:
        """Ray restarted the actor: a new incarnation that knows no submission."""
        self.brain = self._new_brain()

    def handle(self) -> Any:
        """Like Ray's named actor handle: it follows the actor across restarts."""
        self.handles += 1
        if not self.alive:
            raise BrainGone("actor not ready")
        return self

    def call(self, handle: Any, method: str, *args: Any) -> Ref:
        with self.lock:
            self.calls.append(method)
            if not self.alive:
                return Ref(error=BrainGone(f"{method}: the actor died"))
            try:
                return Ref(getattr(self.brain, method)(*args))
            except Exception as err:  # delivered at get(), as Ray does
                return Ref(error=err)

    def ready(self, ref: Ref) -> bool:
        return True

    def get(self, ref: Ref, timeout: float | None = None) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value


def client_for(transport: FakeTransport, **kwargs: Any) -> BrainClient:
    policy = build_policy("greedy", PolicyOptions(seed=1))
    client = BrainClient(
        "run-1",
        policy,
        {"run_id": "run-1", "policy": "greedy"},
        transport,
        sleep=lambda s: None,
        overcommit=1.0,
        **kwargs,
    )
    client.start()
    return client


def roundtrip(client: BrainClient, finished=(), requests=()) -> list[int]:
    client.send(list(finished), list(requests))
    answer = client.receive(block=True)
    assert answer is not None
    return [uid for uid, *_ in answer.placed]


def test_places_and_keeps_track_of_what_the_brain_knows() -> None:
    transport = FakeTransport()
    client = client_for(transport)
    assert roundtrip(client, requests=[(i, ONE, str(i)) for i in range(4)]) == [0, 1, 2]  # 2 + 1 CPUs
    assert sorted(client.held) == [0, 1, 2] and list(client.at_brain) == [3]
    assert roundtrip(client, finished=[0]) == [3]  # the brain kept task 3 and placed it as room appeared
    assert sorted(client.held) == [1, 2, 3] and client.at_brain == {}
    with pytest.raises(RuntimeError, match="already under way"):
        client.send([], [])
        client.send([], [])


def test_a_restarted_brain_gets_everything_it_should_know_again() -> None:
    transport = FakeTransport()
    client = client_for(transport)
    roundtrip(client, requests=[(i, ONE, str(i)) for i in range(4)])
    transport.restart()  # the new incarnation does not know run-1
    assert roundtrip(client, finished=[1]) == []  # UnknownSubmission -> registered again, nothing placed yet
    assert client.reregistrations == 1
    status = transport.brain.status()
    assert status["submissions"][0]["in_flight"] == 2 and status["submissions"][0]["waiting"] == 1
    assert roundtrip(client, finished=[0]) == [3]  # the new brain places the waiting task as room appears


def test_a_dead_brain_actor_is_replaced_by_a_fresh_handle() -> None:
    transport = FakeTransport()
    client = client_for(transport)
    roundtrip(client, requests=[(0, ONE, "0")])
    transport.restart()
    transport.alive = False
    client.send([0], [(1, ONE, "1"), (2, ONE, "2")])  # the call is lost with the actor
    transport.alive = True  # Ray brings it back
    assert client.receive(block=True).placed == []
    assert transport.handles >= 2 and client.reregistrations == 1
    assert sorted(client.at_brain) == [1, 2]  # nothing sent was forgotten
    assert sorted(roundtrip(client)) == [1, 2]


def test_gives_up_with_a_clear_error_when_the_brain_never_comes_back() -> None:
    transport = FakeTransport()
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    client = BrainClient(
        "run-1", build_policy("greedy"), {}, transport, retry_s=60, clock=lambda: clock["now"], sleep=sleep
    )
    client.start()
    transport.alive = False
    client.send([], [(0, ONE, "0")])
    with pytest.raises(ClusterError, match="has not answered for 60 s"):
        client.receive(block=True)
    assert clock["now"] > 60


def test_a_policy_error_reaches_the_driver() -> None:
    class Broken:
        name = "broken"

        def choose(self, task, view):
            raise KeyError("bucket")

    transport = FakeTransport()
    client = BrainClient("run-1", Broken(), {"policy": "mine:Broken"}, transport, sleep=lambda s: None, overcommit=1.0)
    client.start()
    client.send([], [(0, ONE, "0")])
    with pytest.raises(PolicyError, match="mine:Broken raised KeyError"):
        client.receive(block=True)


def test_heartbeats_keep_a_slow_driver_alive_and_a_forgotten_one_registers_again() -> None:
    """Regression: heartbeats came only from the driver loop, so a tasks() generator slower than the
    expiry got its submission expired and its reservations dropped."""
    transport = FakeTransport(expiry_s=0.5)
    client = client_for(transport, heartbeat_s=0.1)
    roundtrip(client, requests=[(0, ONE, "0")])
    started = time.monotonic()
    assert wait_for(
        lambda: time.monotonic() - started > 1.5 and transport.calls.count("heartbeat") >= 3, timeout=30
    )  # the driver "draws" a slow task: no call for 3 expiry periods
    assert roundtrip(client, requests=[(1, ONE, "1")]) == [1]  # still known: no re-registration
    assert client.reregistrations == 0 and transport.brain.status()["submissions"][0]["in_flight"] == 2
    transport.restart()
    assert wait_for(lambda: client._forgotten.is_set(), timeout=30)  # a heartbeat found it forgotten
    assert roundtrip(client, requests=[(2, ONE, "2")]) == [2]  # registered again before the call
    assert client.reregistrations == 1
    client.close()


def test_close_unregisters_and_returns_the_runs_counters() -> None:
    transport = FakeTransport()
    client = client_for(transport)
    roundtrip(client, requests=[(0, ONE, "0"), (1, ONE, "1")])
    counters = client.close()
    assert counters.decisions == 2
    assert transport.brain.status()["submissions"] == []
    assert sum(n["tasks_in_flight"] for n in transport.brain.status()["nodes"]) == 0
    transport.alive = False
    assert client_for(FakeTransport()).close().decisions == 0
    gone = BrainClient("run-2", build_policy("greedy"), {}, transport, sleep=lambda s: None)
    assert gone.close().decisions is None  # never started: nothing to unregister, no error
