"""Routing calls over replicas: the brain's own policies, with replicas for nodes (no Ray)."""

from __future__ import annotations

from collections import defaultdict

from raysched.driver.calls import CallRouter
from raysched.policies import PolicyOptions, build_policy
from raysched.services import ServiceSpec

SPEC = ServiceSpec(cls=object, name="Shard", replicas=4, max_concurrency=1)
ONE = {"CPU": 1.0}


def router(policy: str, replicas: int = 4) -> CallRouter:
    r = CallRouter(SPEC, build_policy(policy, PolicyOptions(seed=1)))
    for i in range(replicas):
        r.replica_up(SPEC.replica(i))
    return r


def run_calls(r: CallRouter, keys: list[str]) -> dict[str, set[str]]:
    """Send every call, finish each as soon as it is routed; the replicas each key's calls went to."""
    served: dict[str, set[str]] = defaultdict(set)
    key_of = dict(enumerate(keys))
    answer = r.route([], [(uid, ONE, key) for uid, key in key_of.items()], {"overcommit": 4.0})
    pending = len(keys)
    for _ in range(10 * len(keys)):
        done = []
        for uid, replica, *_ in answer.placed:
            served[key_of[uid]].add(replica)
            done.append(uid)
        pending -= len(done)
        answer = r.route(done, [], {"overcommit": 4.0})
        if not pending:
            return served
    raise AssertionError(f"calls stalled: {pending} of {len(keys)} not routed")


def test_hash_sends_every_call_of_a_key_to_one_replica() -> None:
    keys = [f"model-{i % 20}" for i in range(400)]
    served = run_calls(router("hash"), keys)
    assert all(len(replicas) == 1 for replicas in served.values()), served
    assert len({next(iter(r)) for r in served.values()}) == 4  # and the keys use every replica


def test_random_routing_sends_a_key_to_many_replicas() -> None:
    served = run_calls(router("random"), [f"model-{i % 5}" for i in range(400)])
    assert all(len(replicas) == 4 for replicas in served.values())


def test_a_replica_that_goes_moves_only_its_own_keys() -> None:
    keys = [f"model-{i % 20}" for i in range(200)]
    r = router("hash")
    before = {k: next(iter(v)) for k, v in run_calls(r, keys).items()}
    r.replica_gone("Shard#1")
    after = {k: next(iter(v)) for k, v in run_calls(r, keys).items()}
    moved = {k for k in keys if before[k] != after[k]}
    assert moved == {k for k in keys if before[k] == "Shard#1"}
    assert "Shard#1" not in after.values()


def test_a_keys_call_waits_for_its_own_busy_replica_however_long_another_idles() -> None:
    # Tasks under hash take a free slot elsewhere after their locality wait (work conservation); calls do not:
    # a replica's warm state is what the key was routed there for.
    r = router("hash", replicas=2)
    now = [100.0]
    r.brain.clock = lambda: now[0]
    first = r.route([], [(1, ONE, "model-a")], {"overcommit": 1.0})
    ((_, home, *_),) = first.placed
    assert r.route([], [(2, ONE, "model-a")], {"overcommit": 1.0}).placed == []  # its replica is busy
    for _ in range(5):
        now[0] += 1.0  # far past any locality wait, while the other replica idles
        assert r.route([], [], {"overcommit": 1.0}).placed == []
    ((uid, again, *_),) = r.route([1], [], {"overcommit": 1.0}).placed
    assert (uid, again) == (2, home)  # it ran on its own replica once that was free
