"""The executor pool's rules, without Ray: lazy creation, hand-out that never doubles up, idle retirement, loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from raysched.brain.actor import PlacementBrain
from raysched.brain.executors import LEASE_S, UNUSED_IDLE_S, Executor, ExecutorPool, shape_of, slots
from raysched.policies import build_policy
from raysched.policies.base import PolicyOptions

CPU1 = {"CPU": 1.0}
NODES = {"a": {"CPU": 2.0}, "b": {"CPU": 4.0, "ssd": 1.0}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Actors:
    """Stands in for Ray: the executors spawned and killed, by name."""

    def __init__(self) -> None:
        self.spawned: list[tuple[str, str, dict[str, float]]] = []
        self.killed: list[str] = []

    def spawn(self, name: str, node: str, demand: Mapping[str, float]) -> str:
        self.spawned.append((name, node, dict(demand)))
        return f"handle:{name}"

    def kill(self, handle: Any) -> None:
        self.killed.append(str(handle).removeprefix("handle:"))


def pool_of(idle_s: float = 30.0) -> tuple[ExecutorPool, Actors, Clock]:
    actors, clock = Actors(), Clock()
    return ExecutorPool(actors.spawn, actors.kill, lambda node: NODES[node], clock, idle_s), actors, clock


def name_of(found: Executor | bool | None) -> str:
    assert isinstance(found, Executor), found
    return found.name


def test_slots_per_node_follow_the_demand_shape() -> None:
    # 4 CPUs hold 4 executors of CPU=1, 2 of CPU=2, 8 of CPU=0.5; a shape needing what the node lacks: none.
    assert slots({"CPU": 4.0}, shape_of(CPU1)) == 4
    assert slots({"CPU": 4.0}, shape_of({"CPU": 2.0})) == 2
    assert slots({"CPU": 4.0}, shape_of({"CPU": 0.5})) == 8
    assert slots({"CPU": 4.0}, shape_of({"CPU": 1.0, "GPU": 1.0})) == 0
    assert slots({"CPU": 4.0}, shape_of({"CPU": 0.0})) == 0  # demands nothing: runs as a plain task


def test_executors_are_created_lazily_one_per_slot_then_reused() -> None:
    pool, actors, _ = pool_of()
    first = name_of(pool.hand_out("s1", [1], "a", CPU1))
    assert len(actors.spawned) == 1  # only what the first placement needed
    second = name_of(pool.hand_out("s1", [2], "a", CPU1))
    assert second != first and len(actors.spawned) == 2
    # Node a holds 2: the third call of the same submission queues behind its own, on the least busy one.
    third = name_of(pool.hand_out("s1", [3], "a", CPU1))
    assert third in (first, second) and len(actors.spawned) == 2
    pool.finished("s1", [1, 2, 3])
    assert name_of(pool.hand_out("s1", [4], "a", CPU1)) in (first, second)  # free again: reused, none created
    assert len(actors.spawned) == 2
    assert actors.spawned[0] == (first, "a", CPU1)


def test_a_call_never_queues_behind_another_submissions_call() -> None:
    pool, _, clock = pool_of()
    busy = {name_of(pool.hand_out("s1", [1], "a", CPU1)), name_of(pool.hand_out("s1", [2], "a", CPU1))}
    assert pool.hand_out("s2", [1], "a", CPU1) is None  # both executors hold s1's calls: s2's placement waits
    assert pool.waiting("s2") == 1
    # s1 keeps queueing behind its own calls for a while (a hand-over per call would idle the executor)...
    assert name_of(pool.hand_out("s1", [3], "a", CPU1)) in busy
    clock.now += LEASE_S
    # ...then, with s2 waiting, its executors take no more of its calls: they drain and go to s2 in turn.
    assert pool.hand_out("s1", [4], "a", CPU1) is None
    served = pool.finished("s1", [2])
    (sid, uid, node, *_), executor = served[0]
    assert (sid, uid, node) == ("s2", 1, "a")  # the drained executor goes to the first waiter
    assert name_of(executor) in busy
    assert executor.lessee == "s2" and executor.calls == 1  # type: ignore[union-attr]
    # With nobody else waiting now, s1's waiting placement queues behind its own calls on its other executor.
    assert [(w[0], w[1]) for w, _ in served[1:]] == [("s1", 4)]
    assert name_of(served[1][1]) != name_of(executor)
    assert pool.waiting("s2") == 0 and pool.waiting("s1") == 0
    for e in pool.executors.values():  # never two submissions' calls on one executor
        assert len({s for s, _ in e.uids}) <= 1


def test_a_placement_for_a_shape_the_node_cannot_hold_runs_as_a_plain_task() -> None:
    pool, actors, _ = pool_of()
    assert pool.hand_out("s1", [1], "a", {"CPU": 1.0, "ssd": 1.0}) is False
    assert pool.hand_out("s1", [2], "a", {"CPU": 0.0}) is False
    assert not actors.spawned


def test_idle_executors_retire_after_their_idle_time_and_sooner_when_no_submission_runs() -> None:
    pool, actors, clock = pool_of(idle_s=30.0)
    one = name_of(pool.hand_out("s1", [1], "b", CPU1))
    two = name_of(pool.hand_out("s1", [2], "b", CPU1))
    pool.finished("s1", [1])
    clock.now += 29.0
    assert pool.retire_idle() == 0
    clock.now += 1.0
    assert pool.retire_idle() == 1 and actors.killed == [one]  # the busy one stays
    assert two in pool.executors and one not in pool.executors
    pool.finished("s1", [2])
    clock.now += UNUSED_IDLE_S
    assert pool.retire_idle(in_use=True) == 0
    assert pool.retire_idle(in_use=False) == 1 and actors.killed == [one, two]
    assert pool.status() == []


def test_a_lost_executor_is_replaced_by_a_new_one_on_the_next_placement() -> None:
    pool, actors, _ = pool_of()
    lost = name_of(pool.hand_out("s1", [1], "a", CPU1))
    pool.lost(lost)
    assert lost not in pool.executors and actors.killed == [lost]
    assert pool.finished("s1", [1]) == []  # its call's finish (reported as lost) finds nothing to free
    again = name_of(pool.hand_out("s1", [2], "a", CPU1))
    assert again != lost and len(actors.spawned) == 2


def test_a_node_that_leaves_takes_its_executors_and_releases_what_waited_for_them() -> None:
    pool, actors, _ = pool_of()
    pool.hand_out("s1", [1], "a", CPU1)
    pool.hand_out("s1", [2], "a", CPU1)
    assert pool.hand_out("s2", [1], "a", CPU1) is None
    released = pool.node_gone("a")
    assert [(sid, uid) for sid, uid, *_ in released] == [("s2", 1)]
    assert pool.executors == {} and len(actors.killed) == 2
    assert pool.waiting("s2") == 0


def test_another_shape_makes_room_by_retiring_idle_executors_and_draining_busy_ones() -> None:
    pool, actors, _ = pool_of()
    idle = name_of(pool.hand_out("s1", [1], "a", CPU1))
    busy = name_of(pool.hand_out("s1", [2], "a", CPU1))
    pool.finished("s1", [1])
    # CPU=2 needs the whole node: the idle CPU=1 executor retires at once, the busy one drains, and the CPU=2
    # placement runs as a plain task (Ray starts it when the draining executor's slot is back).
    assert pool.hand_out("s2", [1], "a", {"CPU": 2.0}) is False
    assert actors.killed == [idle]
    assert pool.hand_out("s1", [3], "a", CPU1) is False  # a draining executor takes no more calls
    assert pool.finished("s1", [2]) == []
    assert actors.killed == [idle, busy] and pool.executors == {}
    assert name_of(pool.hand_out("s2", [4], "a", {"CPU": 2.0})).startswith("exec-a-")  # the room is back


def test_plain_tasks_take_the_room_of_every_idle_executor_on_their_node() -> None:
    pool, actors, _ = pool_of()
    one = name_of(pool.hand_out("s1", [1], "b", CPU1))
    two = name_of(pool.hand_out("s1", [2], "b", CPU1))
    busy = name_of(pool.hand_out("s1", [3], "b", CPU1))
    pool.hand_out("s1", [4], "a", CPU1)
    pool.finished("s1", [1, 2])
    pool.room_for_tasks("b")  # plain tasks come to b: all its idle executors retire, the busy one drains
    assert sorted(actors.killed) == sorted([one, two])
    assert busy in pool.executors and len(pool.executors) == 2  # and a's executor is untouched
    assert pool.hand_out("s1", [5], "b", CPU1) is False  # a draining executor takes no call
    pool.finished("s1", [3])
    assert busy in actors.killed and len(pool.executors) == 1  # drained: retired, its slot is the tasks' now


def test_a_plain_submission_gets_room_from_idle_executors_in_the_brain() -> None:
    brain, actors = brain_with_executors()
    brain.sync_nodes({"a": {"CPU": 2.0}})
    register(brain, "s1")
    first = brain.place("s1", [], [(1, CPU1, "x"), (2, CPU1, "y")])
    brain.place("s1", [1, 2], [])
    brain.unregister("s1")
    register(brain, "plain", "off")
    answer = brain.place("plain", [], [(1, CPU1, "x")])
    assert answer.via == {} and len(answer.placed) == 1
    assert sorted(actors.killed) == sorted(first.via.values())  # both idle executors of node a gave their room


def test_a_submission_that_ends_frees_its_executors_for_the_placements_waiting_for_them() -> None:
    pool, _, _ = pool_of()
    pool.hand_out("s1", [1], "a", CPU1)
    pool.hand_out("s1", [2], "a", CPU1)
    assert pool.hand_out("s2", [7], "a", CPU1) is None
    served = pool.drop_submission("s1")
    assert [(w[0], w[1]) for w, _ in served] == [("s2", 7)]
    assert all(e.lessee in (None, "s2") for e in pool.executors.values())


# -- in the brain ---------------------------------------------------------------------------------


def brain_with_executors() -> tuple[PlacementBrain, Actors]:
    actors = Actors()
    brain = PlacementBrain(spawn_executor=actors.spawn, kill_executor=actors.kill)
    brain.sync_nodes(NODES)
    return brain, actors


def register(brain: PlacementBrain, sid: str, executors: str = "on") -> None:
    policy = build_policy("random", PolicyOptions(seed=1))
    brain.register(sid, policy, {"executors": executors})


@pytest.mark.parametrize("mode", ["on", "off"])
def test_the_brain_hands_out_an_executor_with_each_placement_only_to_submissions_on_executors(mode: str) -> None:
    brain, actors = brain_with_executors()
    register(brain, "s1", mode)
    answer = brain.place("s1", [], [(i, CPU1, f"k{i}") for i in range(6)])
    assert len(answer.placed) == 6
    if mode == "off":
        assert answer.via == {} and answer.executors == {} and not actors.spawned
        return
    assert set(answer.via) == {uid for uid, *_ in answer.placed}
    assert set(answer.executors) == set(answer.via.values())  # each handle once, with its first placement
    nodes = {uid: node for uid, node, *_ in answer.placed}
    for uid, name in answer.via.items():
        assert brain.executors is not None and brain.executors.executors[name].node == nodes[uid]
    again = brain.place("s1", list(range(6)), [(6, CPU1, "k6")])
    assert again.executors == {} or set(again.executors).isdisjoint(answer.executors)  # not sent twice


def test_the_brain_holds_a_placement_until_an_executor_of_its_node_is_free_of_other_submissions() -> None:
    brain, _ = brain_with_executors()
    brain.sync_nodes({"a": {"CPU": 2.0}})
    register(brain, "s1")
    register(brain, "s2")
    first = brain.place("s1", [], [(1, CPU1, "x"), (2, CPU1, "y")], {"overcommit": 2.0})
    assert len(first.via) == 2
    second = brain.place("s2", [], [(1, CPU1, "z")], {"overcommit": 2.0})
    assert second.placed == [] and second.waiting == 1  # placed on a, but both executors hold s1's calls
    brain.place("s1", [1], [])  # s1's first call finished: its executor is free
    third = brain.place("s2", [], [])
    assert [uid for uid, *_ in third.placed] == [1] and third.via[1] in first.via.values()
    assert third.executors == {third.via[1]: f"handle:{third.via[1]}"}


def test_an_executor_reported_lost_by_a_driver_is_dropped_by_the_brain() -> None:
    brain, actors = brain_with_executors()
    register(brain, "s1")
    answer = brain.place("s1", [], [(1, CPU1, "x")])
    name = answer.via[1]
    brain.place("s1", [1], [], None, [name])
    assert brain.executors is not None and name not in brain.executors.executors
    assert actors.killed == [name]
    assert brain.status()["executors"] == []


def test_a_batch_of_placements_on_one_node_gets_one_executor() -> None:
    # The driver sends 5 tiny tasks per call (its pacing's batch): the brain hands out one executor per 5.
    brain, _ = brain_with_executors()
    brain.sync_nodes({"a": {"CPU": 4.0}})
    register(brain, "s1")
    answer = brain.place("s1", [], [(i, CPU1, f"k{i}") for i in range(20)], {"overcommit": 5.0, "batch": 5.0})
    assert len(answer.placed) == 20
    per_executor: dict[str, list[int]] = {}
    for uid, *_ in answer.placed:
        per_executor.setdefault(answer.via[uid], []).append(uid)
    assert sorted(len(uids) for uids in per_executor.values()) == [5, 5, 5, 5]
    assert sorted(per_executor.values()) == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
        [10, 11, 12, 13, 14],
        [15, 16, 17, 18, 19],
    ]


def test_a_driver_turns_executors_off_for_its_submission_with_its_pacing() -> None:
    brain, _ = brain_with_executors()
    register(brain, "s1")
    on = brain.place("s1", [], [(1, CPU1, "x")], {"executors": 1.0})
    assert set(on.via) == {1}
    off = brain.place("s1", [1], [(2, CPU1, "y"), (3, {"CPU": 2.0}, "z")], {"executors": 0.0})
    assert len(off.placed) == 2 and off.via == {}  # plain pinned tasks from now on
    register(brain, "plain", "off")
    assert brain.place("plain", [], [(1, CPU1, "x")], {"executors": 1.0}).via == {}  # never turned on by pacing
