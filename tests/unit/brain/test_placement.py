"""The placement brain as a plain class: ledger, late binding, rounds, membership, validation (no Ray)."""

from __future__ import annotations

import logging

import pytest
from conftest import wait_for

from raysched.brain.actor import PlacementBrain
from raysched.brain.membership import schedulable_capacity
from raysched.brain.state import PolicyError, UnknownSubmission
from raysched.policies import PolicyOptions, build_policy

A, B, C = "a" * 56, "b" * 56, "c" * 56
ONE = {"CPU": 1.0}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_brain(nodes: dict | None = None, policy: str = "greedy", overcommit: float = 1.0, **kwargs) -> PlacementBrain:
    brain = PlacementBrain(**kwargs)
    brain.sync_nodes(nodes or {A: {"CPU": 2.0}, B: {"CPU": 1.0}})
    brain.register(
        "s1", build_policy(policy, PolicyOptions(seed=1)), {"run_id": "s1", "policy": policy}, overcommit=overcommit
    )
    return brain


def in_flight(brain: PlacementBrain) -> int:
    return sum(n["tasks_in_flight"] for n in brain.status()["nodes"])


def placed(answer) -> list[int]:
    return [uid for uid, *_ in answer.placed]


def test_ray_resources_become_schedulable_capacity() -> None:
    raw = {
        "CPU": 4.0,
        "memory": 1e9,
        "object_store_memory": 1e8,
        "node:127.0.0.1": 1.0,
        "node:__internal_head__": 1.0,
        "accelerator_type:A100": 1.0,
        "ssd": 2.0,
    }
    assert schedulable_capacity(raw) == {"CPU": 4.0, "memory": 1e9, "ssd": 2.0}


def test_status_reports_the_ring_of_hash_submissions() -> None:
    brain = make_brain(policy="hash")
    brain.place("s1", [], [(0, ONE, "k")])
    sub = brain.status()["submissions"][0]
    # 100 ring points per CPU: A (2 CPUs) 200 + B (1 CPU) 100
    assert sub["ring_nodes"] == 2 and sub["ring_vnodes"] == 300


def test_places_until_full_then_holds_the_rest_and_places_them_as_room_appears() -> None:
    brain = make_brain()
    answer = brain.place("s1", [], [(i, ONE, str(i)) for i in range(4)])
    assert len(answer.placed) == 3 and answer.waiting == 1  # 2 + 1 CPUs; task 3 stays with the brain
    assert {node for _, node, _, _ in answer.placed} == {A, B}
    again = brain.place("s1", [answer.placed[0][0]], [])  # nothing re-sent: the brain kept task 3
    assert placed(again) == [3] and again.placed[0][1] == answer.placed[0][1]  # the freed slot
    assert brain.status()["submissions"][0]["done"] == 1


@pytest.mark.parametrize("policy", ["greedy", "hash"])
def test_waiting_costs_no_decisions(policy: str) -> None:
    """Regression: waiting tasks were re-sent and re-decided on every call (3,096 decisions for 200 tasks)."""
    brain = make_brain(nodes={A: {"CPU": 2.0}}, policy=policy)
    brain.place("s1", [], [(i, ONE, str(i)) for i in range(200)])  # 2 placed, 198 wait
    for _ in range(50):
        assert brain.place("s1", [], []).placed == []  # nothing freed: nothing asked again
    running = [0, 1]
    for _ in range(99):
        answer = brain.place("s1", running, [])
        running = placed(answer)
    assert brain.status()["submissions"][0]["done"] == 198
    # one decision per placed task, plus at most one failed try per round that freed room
    assert brain.decisions <= 200 + 100


def test_infeasible_demand_is_reported_not_waited_on() -> None:
    brain = make_brain()
    answer = brain.place("s1", [], [(0, {"CPU": 64.0}, "0"), (1, ONE, "1")])
    uid, message = answer.infeasible[0]
    assert uid == 0 and "infeasible demand {CPU: 64}" in message and f"largest node {A[:8]}" in message
    assert placed(answer) == [1]
    assert brain.decisions == 1  # the brain checks feasibility: no policy was asked about task 0


def test_a_policy_that_never_checks_feasibility_is_protected() -> None:
    class Waiter:
        name = "waiter"

        def choose(self, task, view):
            return None  # never checks feasibility itself

    brain = make_brain()
    brain.register("s2", Waiter(), {"policy": "waiter"})
    assert brain.place("s2", [], [(0, {"CPU": 99.0}, "0")]).infeasible  # reported, not waited on forever


def test_bad_requests_are_refused_and_change_nothing() -> None:
    brain = make_brain()
    brain.place("s1", [], [(0, ONE, "0")])
    before = brain.status()["nodes"]
    for bad in (
        [(1, ONE, "1"), (2, {"CPU": -1.0}, "2")],  # one bad demand in a batch
        [(3, {"CPU": float("inf")}, "3")],
        [(4, ONE, "4"), (4, ONE, "4")],  # the same task twice
        [(0, ONE, "0")],
    ):  # a task the brain already holds
        with pytest.raises(ValueError):
            brain.place("s1", [], bad)
        assert brain.status()["nodes"] == before and brain.status()["submissions"][0]["waiting"] == 0
    with pytest.raises(UnknownSubmission):
        brain.place("nobody", [], [(0, ONE, "0")])


def test_a_task_can_finish_and_come_back_as_a_retry_in_one_call() -> None:
    brain = make_brain()
    brain.place("s1", [], [(0, ONE, "0")])
    answer = brain.place("s1", [0], [(0, ONE, "0")])  # attempt 1 lost, attempt 2 sent
    assert placed(answer) == [0] and in_flight(brain) == 1


def test_unknown_finishes_are_counted_not_released() -> None:
    brain = make_brain()
    brain.place("s1", [], [(0, ONE, "0")])
    brain.place("s1", [0], [])
    brain.place("s1", [0, 12345], [])  # reported twice, and a task never placed
    assert in_flight(brain) == 0 and brain.status()["submissions"][0]["unknown_finishes"] == 2


def test_a_policy_choosing_no_live_node_or_a_full_one_breaks_only_its_submission() -> None:
    class Rogue:
        name = "rogue"

        def choose(self, task, view):
            return "nowhere"

    class Overfill:
        name = "overfill"

        def choose(self, task, view):
            return B  # B has one CPU

    brain = make_brain()
    brain.register("s2", Rogue(), {"policy": "rogue"}, overcommit=1.0)
    with pytest.raises(PolicyError, match="no live node with room"):
        brain.place("s2", [], [(0, ONE, "0")])
    brain.register("s3", Overfill(), {"policy": "overfill"}, overcommit=1.0)
    with pytest.raises(PolicyError, match="no live node with room"):
        brain.place("s3", [], [(0, ONE, "0"), (1, ONE, "1")])  # the second one overfills B
    # all or nothing: the placement s3's driver never received does not stay reserved
    assert in_flight(brain) == 0
    assert placed(brain.place("s1", [], [(0, ONE, "0")])) == [0]  # other submissions go on


def test_a_policy_that_raises_is_reported_and_the_view_is_untouched() -> None:
    class Broken:
        name = "broken"

        def choose(self, task, view):
            raise KeyError("bucket")

    brain = make_brain()
    brain.register("s2", Broken(), {"policy": "mypolicies:Broken"})
    with pytest.raises(PolicyError, match="policy mypolicies:Broken raised KeyError"):
        brain.place("s2", [], [(0, ONE, "0")])
    assert in_flight(brain) == 0


def test_registering_an_existing_id_releases_what_the_old_one_held() -> None:
    """Regression: re-registering dropped the old ledger without releasing its reservations."""
    brain = make_brain()
    brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1"), (2, ONE, "2"), (3, ONE, "3")])
    assert in_flight(brain) == 3
    brain.register("s1", build_policy("greedy", PolicyOptions()), {}, held=[(0, A, ONE, "0")])
    assert in_flight(brain) == 1 and brain.status()["submissions"][0]["waiting"] == 0


def test_reregistration_after_restart_restores_work_in_flight_and_waiting() -> None:
    brain = make_brain()
    answer = brain.place("s1", [], [(i, ONE, str(i)) for i in range(4)])
    fresh = PlacementBrain()  # a restarted brain starts empty
    fresh.sync_nodes({A: {"CPU": 2.0}, B: {"CPU": 1.0}})
    with pytest.raises(UnknownSubmission):
        fresh.place("s1", [], [])
    held = [(uid, node, ONE, str(uid)) for uid, node, _, _ in answer.placed]
    fresh.register("s1", build_policy("greedy", PolicyOptions()), {}, held=held, waiting=[(3, ONE, "3")])
    assert in_flight(fresh) == 3
    assert placed(fresh.place("s1", [held[0][0]], [])) == [3]  # the waiting task, as soon as room appears


def test_dead_node_leaves_at_once_and_stays_out_until_ray_agrees() -> None:
    clock = Clock()
    brain = make_brain(clock=clock, condemn_grace_s=30)
    brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1"), (2, ONE, "2")])
    assert brain.report_node_failure(A, "lost") is True
    assert [n["node_id"] for n in brain.status()["nodes"]] == [B]
    clock.now = 10
    brain.sync_nodes({A: {"CPU": 2.0}, B: {"CPU": 1.0}})  # health checks have not caught up yet
    assert [n["node_id"] for n in brain.status()["nodes"]] == [B]
    assert brain.status()["reported_dead"][0]["reason"] == "lost"
    brain.sync_nodes({B: {"CPU": 1.0}, C: {"CPU": 4.0}})  # now Ray agrees, and C joined
    assert brain.status()["reported_dead"] == []
    assert {n["node_id"] for n in brain.status()["nodes"]} == {B, C}
    brain.place("s1", [0, 1, 2], [])  # releasing work of a node that left is harmless
    assert in_flight(brain) == 0


def test_a_spuriously_reported_node_comes_back_after_the_grace_period() -> None:
    """Regression: one TaskUnschedulableError excluded a live node for as long as Ray said it lived."""
    clock = Clock()
    brain = make_brain(clock=clock, condemn_grace_s=30)
    live = {A: {"CPU": 2.0}, B: {"CPU": 1.0}}
    brain.report_node_failure(A, "stalled")
    clock.now = 29
    brain.sync_nodes(live)
    assert A not in {n["node_id"] for n in brain.status()["nodes"]}
    clock.now = 31  # Ray still reports it alive after the grace period: it was a false alarm
    brain.sync_nodes(live)
    assert A in {n["node_id"] for n in brain.status()["nodes"]}
    assert [kind for _, kind, node in brain.status()["membership_changes"] if node == A][-1] == "rejoin"


def test_a_reported_node_is_dropped_only_if_its_raylet_fails_the_probe() -> None:
    """Long tasks look like a stall to a driver; the probe (the raylet's health check) tells them apart."""
    dead: set[str] = set()
    asked: list[list[str]] = []

    def probe(nodes):
        asked.append(sorted(nodes))
        return {n for n in nodes if n in dead}

    brain = make_brain(node_probe=probe)
    assert brain.report_node_failure(A, "stalled") is True  # a suspicion, not yet a verdict
    assert {n["node_id"] for n in brain.status()["nodes"]} == {A, B}
    assert brain.status()["suspected"] == [A]
    assert brain.check_suspects() == []  # A answers its health check: it only runs long tasks
    assert asked == [[A]] and {n["node_id"] for n in brain.status()["nodes"]} == {A, B}
    dead.add(A)  # now its raylet is gone
    brain.report_node_failure(A, "stalled")
    assert brain.check_suspects() == [A]
    assert [n["node_id"] for n in brain.status()["nodes"]] == [B]
    assert brain.status()["reported_dead"][0]["reason"] == "stalled"
    assert brain.check_suspects() == []  # nothing left to probe
    assert asked == [[A], [A]]


def test_a_failing_probe_drops_nothing() -> None:
    def probe(nodes):
        raise ConnectionError("GCS unavailable")

    brain = make_brain(node_probe=probe)
    brain.report_node_failure(A, "lost")
    assert brain.check_suspects() == []
    assert {n["node_id"] for n in brain.status()["nodes"]} == {A, B}


def test_tasks_whose_only_node_was_reported_wait_for_it_then_are_infeasible_once_ray_agrees() -> None:
    big = {"CPU": 2.0}  # only A (2 CPUs) can hold it; B has 1
    brain = make_brain()
    first = brain.place("s1", [], [(0, big, "0"), (1, big, "1")])
    assert placed(first) == [0] and first.waiting == 1
    brain.report_node_failure(A, "lost")  # task 1 waits for A, which is now out of the view
    answer = brain.place("s1", [], [])
    assert answer.infeasible == [] and answer.waiting == 1  # A may come back (Ray still lists it)
    brain.sync_nodes({B: {"CPU": 1.0}})  # Ray agrees A is dead: no node left could ever hold it
    answer = brain.place("s1", [], [])
    assert [uid for uid, _ in answer.infeasible] == [1] and answer.waiting == 0
    assert "infeasible demand {CPU: 2}" in answer.infeasible[0][1]


def test_a_task_whose_node_comes_back_is_placed_there() -> None:
    big = {"CPU": 2.0}
    brain = make_brain()
    brain.place("s1", [], [(0, big, "0"), (1, big, "1")])
    brain.report_node_failure(A, "lost")
    brain.place("s1", [0], [])
    brain.sync_nodes({A: {"CPU": 2.0}, B: {"CPU": 1.0}})  # Ray lists A: still out (grace period)
    assert brain.place("s1", [], []).placed == []
    brain._condemned.clear()  # the grace period ended (tested above with the clock)
    brain.sync_nodes({A: {"CPU": 2.0}, B: {"CPU": 1.0}})
    assert [(uid, node) for uid, node, *_ in brain.place("s1", [], []).placed] == [(1, A)]


def test_idle_submissions_expire_unless_they_heartbeat() -> None:
    clock = Clock()
    brain = make_brain(clock=clock, expiry_s=60)
    brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1")])
    brain.register("s2", build_policy("random", PolicyOptions(seed=2)), {})
    for t in (30, 60, 90):  # s1 heartbeats (a driver busy in a slow tasks() generator); s2 is silent
        clock.now = t
        assert brain.heartbeat("s1") is True
    with pytest.raises(UnknownSubmission):
        brain.place("s2", [], [])  # expired: its driver died
    assert [s["submission_id"] for s in brain.status()["submissions"]] == ["s1"]
    assert in_flight(brain) == 2  # s1 kept its work
    assert brain.heartbeat("s2") is False  # the driver learns it must register again


def test_two_submissions_see_each_others_load_and_share_freed_room() -> None:
    brain = make_brain(nodes={A: {"CPU": 2.0}})
    brain.register("s2", build_policy("p2c", PolicyOptions(seed=3)), {}, overcommit=1.0)
    first = brain.place("s1", [], [(i, ONE, str(i)) for i in range(4)])
    second = brain.place("s2", [], [(i, ONE, str(i)) for i in range(4)])
    assert len(first.placed) == 2 and second.placed == []  # one ledger: the node is full
    freed = brain.place("s1", placed(first), [])  # s1 frees both slots: the round shares them
    later = brain.place("s2", [], [])
    assert len(freed.placed) == 1 and len(later.placed) == 1  # one each, not both to s1


def test_a_full_cluster_is_not_asked_again_for_equal_demands() -> None:
    calls = []

    class Counting:
        name = "counting"
        none_means_no_room = True

        def choose(self, task, view):
            calls.append(task.key)
            return None

    brain = make_brain()
    assert len(brain.place("s1", [], [(i, ONE, str(i)) for i in range(3)]).placed) == 3  # the cluster is full
    brain.register("s2", Counting(), {}, overcommit=1.0)
    answer = brain.place("s2", [], [(i, ONE, str(i)) for i in range(50)] + [(99, {"CPU": 2.0}, "big")])
    assert answer.waiting == 51 and calls == ["0", "big"]  # one question per distinct demand
    brain.place("s2", [], [])
    assert calls == ["0", "big"]  # no room appeared: nobody asked again


def test_admission_follows_the_submissions_overcommit() -> None:
    brain = make_brain(nodes={A: {"CPU": 2.0}}, overcommit=1.0)
    assert len(brain.place("s1", [], [(i, ONE, str(i)) for i in range(8)]).placed) == 2
    # the driver measured that a queue pays: 2 x 3 = 6 may be held at the node
    assert len(brain.place("s1", [], [], {"overcommit": 3.0}).placed) == 4
    with pytest.raises(ValueError, match="overcommit"):
        brain.place("s1", [], [], {"overcommit": 0.5})


def test_the_membership_watcher_logs_a_failing_streak_once_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    state = {"fail": False, "calls": 0}

    def nodes():
        state["calls"] += 1
        if state["fail"]:
            raise ConnectionError("GCS unavailable")
        return {A: {"CPU": 1.0}}

    brain = PlacementBrain(nodes_source=nodes, refresh_s=0.01)
    with caplog.at_level(logging.WARNING, logger="raysched.brain.actor"):
        state["fail"] = True
        assert wait_for(lambda: state["calls"] > 20, timeout=30)
        state["fail"] = False
        assert wait_for(lambda: "works again" in caplog.text, timeout=30)
    failures = [r for r in caplog.records if "reading cluster membership failed" in r.getMessage()]
    assert len(failures) == 1 and "GCS unavailable" in failures[0].getMessage()
    brain.close()
    calls = state["calls"]
    assert not brain._watcher.is_alive()
    assert state["calls"] == calls  # stopped: no more reads


def test_a_dead_driver_releases_its_work_without_waiting_for_the_expiry() -> None:
    """Regression: a driver killed hard kept its reservations for the expiry (a minute), blocking --resume."""
    brain = make_brain()
    brain.register("s2", build_policy("random", PolicyOptions(seed=2)), {"driver_job": "0200"})
    brain.place("s2", [], [(0, ONE, "0"), (1, ONE, "1")])
    assert in_flight(brain) == 2
    assert brain.release_dead_drivers({"0100"}) == []  # someone else's job
    assert brain.release_dead_drivers({"0100", "0200"}) == ["s2"]
    assert in_flight(brain) == 0 and [s["submission_id"] for s in brain.status()["submissions"]] == ["s1"]


def test_a_slot_freed_by_a_driver_goes_to_that_drivers_waiting_task_first() -> None:
    """Placements reach a driver only in its own answer: the caller's task takes the slot its release freed."""
    brain = make_brain({A: {"CPU": 1.0}})
    brain.register("s2", build_policy("greedy", PolicyOptions(seed=1)), {"run_id": "s2"}, overcommit=1.0)
    assert placed(brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1")])) == [0]  # A's one slot
    assert placed(brain.place("s2", [], [(0, ONE, "0")])) == []  # no room: it waits (s1's task 1 waits too)
    # s1's task 0 finishes: s1 asks, and its own task 1 gets the slot, though s2's waited as long
    assert placed(brain.place("s1", [0], [])) == [1]
    assert placed(brain.place("s2", [], [])) == []
    assert placed(brain.place("s1", [1], [])) == []  # no more s1 work: the slot is s2's at its next call
    assert placed(brain.place("s2", [], [])) == [0]


@pytest.mark.parametrize(
    "adaptive, held",
    [
        # two drivers whose pacing asked for a depth of 2 each: A (2 CPUs) holds 2 x (2 + 2) = 8
        (1.0, 8),
        # the same depths given as a fixed --overcommit 2: a limit on the node's whole queue, 2 x 2 = 4
        (0.0, 4),
    ],
)
def test_several_drivers_share_the_sum_of_their_paced_depths(adaptive: float, held: int) -> None:
    brain = make_brain({A: {"CPU": 2.0}}, overcommit=2.0)
    brain.register("s2", build_policy("greedy", PolicyOptions(seed=1)), {"run_id": "s2"}, overcommit=2.0)
    pacing = {"overcommit": 2.0, "adaptive": adaptive}
    first = placed(brain.place("s1", [], [(i, ONE, str(i)) for i in range(10)], pacing))
    second = placed(brain.place("s2", [], [(i, ONE, str(i)) for i in range(10)], pacing))
    assert len(first) + len(second) == held
    assert in_flight(brain) == held


def test_shared_nodes_keep_a_lease_turn_of_each_drivers_short_tasks() -> None:
    """Several paced drivers: each keeps at least 2 s of its own tasks queued per slot (four of Ray's lease turns)."""
    brain = make_brain({A: {"CPU": 1.0}}, overcommit=2.0)
    brain.register("s2", build_policy("greedy", PolicyOptions(seed=1)), {"run_id": "s2"}, overcommit=2.0)
    pacing = {"overcommit": 2.0, "adaptive": 1.0, "task_p50_s": 0.01}
    # 10 ms tasks: 1 + 2 / 0.01 = 201 tasks per slot for each driver, so A's one slot holds 2 x 201 = 402
    first = brain.place("s1", [], [(i, ONE, str(i)) for i in range(500)], pacing)
    second = brain.place("s2", [], [(i, ONE, str(i)) for i in range(500)], pacing)
    assert first.depth == second.depth == pytest.approx(201.0)
    assert in_flight(brain) == 402
    # alone again, a driver gets the depth its own pacing asked for, and no hint to widen its window
    brain.unregister("s2")
    assert brain.place("s1", [], [], pacing).depth is None


@pytest.mark.parametrize("policy", ["random", "p2c", "greedy", "pack"])
def test_tasks_waiting_for_room_are_placed_before_newer_ones(policy: str) -> None:
    """First come, first placed: a slot that frees while new tasks arrive goes to the oldest waiting task.

    Regression: new tasks were decided before the ones already waiting for room, so under a steady flow the
    first tasks of a run waited until the flow stopped (measured on jobs/cache_affinity.py under random: 3% of
    the tasks waited 7.4 s of a 7.8 s run).
    """
    brain = make_brain(policy=policy)  # 3 slots
    first = brain.place("s1", [], [(i, ONE, str(i)) for i in range(6)])
    running = placed(first)
    assert len(running) == 3 and first.waiting == 3  # tasks 3, 4, 5 wait for room
    order: list[int] = []
    next_id = 6
    for _ in range(20):  # each call: one task finishes, two new ones arrive
        answer = brain.place(
            "s1", [running.pop(0)], [(next_id, ONE, str(next_id)), (next_id + 1, ONE, str(next_id + 1))]
        )
        next_id += 2
        order += placed(answer)
        running += placed(answer)
    assert order == list(range(3, 23))  # in arrival order: the waiting ones first, none overtaken


class HomeOnA:
    """A user policy that waits for node A, lets work conservation offer other slots, and vets them."""

    name = "home-on-a"
    work_conserving = True
    locality_wait_s = 0.0

    def __init__(self, takes: object) -> None:
        self.takes = takes  # True / False, or an exception to raise

    def choose(self, task, view):
        return A if view.fits_now(A, task.resources) else None

    def decide(self, task, view):
        from raysched.policies import Decision

        return Decision(self.choose(task, view), waits_for=A)

    def takes_slot(self, task, node, view):
        if isinstance(self.takes, Exception):
            raise self.takes
        return self.takes


@pytest.mark.parametrize("takes", [True, False])
def test_a_policy_may_refuse_a_free_slot_that_work_conservation_offers(takes: bool) -> None:
    """A fills A's one CPU; the next task waits for A while B idles. With takes_slot True it runs on B
    (spill "wait"); with False it keeps waiting for A and runs there once A frees its slot."""
    clock = Clock()
    brain = make_brain({A: {"CPU": 1.0}, B: {"CPU": 1.0}}, clock=clock)
    brain.register("s2", HomeOnA(takes), {"policy": "mine:HomeOnA"}, overcommit=1.0)
    assert placed(brain.place("s2", [], [(0, ONE, "k")])) == [0]
    clock.now += 1.0
    answer = brain.place("s2", [], [(1, ONE, "k")])
    clock.now += 1.0
    answer = answer if answer.placed else brain.place("s2", [], [])
    if takes:
        assert [(u, n, s) for u, n, s, _ in answer.placed] == [(1, B, "wait")]
    else:
        assert answer.placed == []
        assert [(u, n) for u, n, *_ in brain.place("s2", [0], []).placed] == [(1, A)]


def test_a_takes_slot_that_raises_is_reported_and_nothing_is_placed_twice() -> None:
    clock = Clock()
    brain = make_brain({A: {"CPU": 1.0}, B: {"CPU": 1.0}}, clock=clock)
    brain.register("s2", HomeOnA(KeyError("cache")), {"policy": "mine:HomeOnA"}, overcommit=1.0)
    assert placed(brain.place("s2", [], [(0, ONE, "k")])) == [0]
    clock.now += 1.0
    with pytest.raises(PolicyError, match="policy mine:HomeOnA raised KeyError"):
        brain.place("s2", [], [(1, ONE, "k")])
        clock.now += 1.0
        brain.place("s2", [], [])
    assert in_flight(brain) == 1  # only task 0, on A


def test_a_task_placed_before_its_node_was_reported_finishes_after_the_node_rejoined() -> None:
    """Regression: a node reported dead that Ray still lists comes back under the same id with an empty ledger; a
    task placed there before, finishing after the rejoin, made the driver's call fail with a LedgerError (a
    release of what the fresh ledger never held). Its finish now releases nothing, and the node's room is whole."""
    clock = Clock()
    brain = make_brain(clock=clock, condemn_grace_s=30)
    live = {A: {"CPU": 2.0}, B: {"CPU": 1.0}}
    first = brain.place("s1", [], [(0, ONE, "0"), (1, ONE, "1"), (2, ONE, "2")])
    on_a = [uid for uid, node, *_ in first.placed if node == A]
    assert on_a
    brain.report_node_failure(A, "stalled")  # a false alarm: the tasks on A run on
    clock.now = 31
    brain.sync_nodes(live)  # the grace period is over and Ray lists A alive: it rejoins, empty
    assert [kind for _, kind, node in brain.status()["membership_changes"] if node == A][-1] == "rejoin"
    answer = brain.place("s1", on_a, [(3, ONE, "3"), (4, ONE, "4")])  # no LedgerError
    assert sorted(uid for uid, node, *_ in answer.placed if node == A) == [3, 4]  # A's two CPUs are free
    done = [uid for uid, *_ in first.placed if uid not in on_a] + [3, 4]
    brain.place("s1", done, [])
    assert in_flight(brain) == 0
