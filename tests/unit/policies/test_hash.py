"""The hash policy on its real path: the brain (ledger, parked tasks, rounds) deciding with HashPolicy.

Bounded loads over assigned work, whole keys, delay scheduling, the pure
ring, and a ring that depends only on current membership. Expected owners
come from a separately built ring following the documented rule (points per
CPU), never from the policy's own ring.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from raysched.brain.actor import PlacementBrain
from raysched.core.ring import HashRing, RingConfig
from raysched.core.view import ResourceView
from raysched.policies import Decision, HashPolicy, PolicyOptions, TaskDemand
from raysched.policies.hash import HOT_HEADROOM, _anywhere, _Walk

CPU1 = {"CPU": 1.0}


def node_id(i: int, salt: str = "") -> str:
    """A 56-character id, like Ray's; the salt gives another set of node ids (another ring)."""
    return (f"{i:02d}{salt}" + "ab" * 28)[:56]


class Cluster:
    """A brain with one hash submission, driven by hand on a virtual clock."""

    def __init__(
        self,
        capacities: list[dict[str, float]],
        overcommit: float = 1.0,
        salt: str = "",
        policy_class: type[HashPolicy] = HashPolicy,
        **options,
    ) -> None:
        self.now = 0.0
        self.brain = PlacementBrain(clock=lambda: self.now)
        self.nodes = {node_id(i, salt): cap for i, cap in enumerate(capacities)}
        self.brain.sync_nodes(self.nodes)
        self.policy = policy_class(PolicyOptions(**{"vnodes": 20, **options}))
        self.brain.register("s", self.policy, {"policy": "hash"}, overcommit=overcommit)
        self.uid = 0
        self.placed: dict[int, tuple[str, str, str]] = {}  # uid -> (node, key, spill)
        self.running: dict[int, str] = {}
        self.keys: dict[int, str] = {}
        self.sent = 0
        self.finished = 0

    def send(self, keys: list[str], demand: dict[str, float] = CPU1, finished: list[int] = ()) -> list[int]:
        """One driver call: these tasks finished, these keys are new; the uids placed by the answer."""
        requests = []
        for key in keys:
            requests.append((self.uid, demand, key))
            self.keys[self.uid] = key
            self.uid += 1
        for uid in finished:
            self.running.pop(uid)
        self.sent += len(keys)
        self.finished += len(finished)
        answer = self.brain.place("s", list(finished), requests)
        for uid, node, spill, _wait in answer.placed:
            self.placed[uid] = (node, self.keys[uid], spill)
            self.running[uid] = node
        return [uid for uid, *_ in answer.placed]

    def run(self, keys: list[str], demand: dict[str, float] = CPU1, finish_each: int = 1) -> None:
        """Send every task at once, then finish `finish_each` running task per call until all are done.

        Each task needs at most one call to finish and a few to be placed, so a policy that stops placing
        (or a brain that stops answering) fails here instead of looping forever.
        """
        self.send(keys, demand)
        calls_left = 10 * len(keys) + 100
        while len(self.placed) < len(keys) or self.running:
            calls_left -= 1
            assert calls_left > 0, (
                f"stalled: {len(self.placed)} of {len(keys)} tasks placed, {len(self.running)} running"
            )
            done = sorted(self.running)[:finish_each]
            self.now += 0.01
            self.send([], demand, finished=done)


def documented_ring(nodes: dict[str, dict[str, float]], vnodes: int = 20) -> HashRing:
    """The ring as the README defines it: a node's weight is its CPUs (at least 1), vnodes points per CPU."""
    ring = HashRing(RingConfig(vnodes=vnodes))
    for node, cap in nodes.items():
        ring.add(node, cap.get("CPU", 0) or 1.0)
    return ring


# -- the pure ring -------------------------------------------------------------------------------
def test_pure_ring_sends_each_key_to_its_owner_and_waits_for_it():
    c = Cluster([{"CPU": 2}, {"CPU": 2}, {"CPU": 4}], load_factor=None)
    ring = documented_ring(c.nodes)
    keys = [f"user-{i % 30}" for i in range(300)]
    c.run(keys, finish_each=2)
    for node, key, spill in c.placed.values():
        assert node == ring.lookup(key), key  # never anywhere else, however busy the owner
        assert spill == ""


def test_pure_ring_skips_nodes_that_could_never_hold_the_task():
    c = Cluster([{"CPU": 4}] * 3 + [{"CPU": 4, "ssd": 1}] + [{"CPU": 4}] * 2, load_factor=None)
    c.run(["any-key", "other-key"], demand={"CPU": 1, "ssd": 1})
    assert {node for node, _, _ in c.placed.values()} == {node_id(3)}


def test_pure_ring_places_a_keys_gpu_task_sent_with_its_cpu_tasks_on_a_node_with_a_gpu():
    """One call, one key, two demands: each demand gets its own home (the CPU tasks' owner has no GPU; the GPU
    task, homed there with them, blocked that node's queue for good)."""
    c = Cluster([{"CPU": 8}, {"CPU": 8}, {"CPU": 2, "GPU": 1}], load_factor=None)
    ring = documented_ring(c.nodes)
    key = next(k for k in (f"user-{i}" for i in range(100)) if ring.lookup(k) != node_id(2))
    requests = [(0, CPU1, key), (1, {"CPU": 1.0, "GPU": 1.0}, key), (2, CPU1, key)]
    answer = c.brain.place("s", [], requests)
    assert {uid: node for uid, node, *_ in answer.placed} == {0: ring.lookup(key), 1: node_id(2), 2: ring.lookup(key)}
    c.brain.check_structures()


def test_a_key_moving_whole_leaves_behind_the_tasks_its_new_node_could_never_hold():
    c = Cluster([{"CPU": 1, "GPU": 1}, {"CPU": 4}], load_factor=None)
    gpu, cpu_only = node_id(0), node_id(1)
    key = next(k for k in (f"user-{i}" for i in range(100)) if documented_ring(c.nodes).lookup(k) == gpu)
    busy = c.send(["other"], demand={"CPU": 1.0, "GPU": 1.0})  # fills the GPU node
    assert busy == [0]
    c.brain.place("s", [], [(1, CPU1, key), (2, {"CPU": 1.0, "GPU": 1.0}, key)])
    sub = c.brain._subs["s"]
    assert sub.waiting[1].home == sub.waiting[2].home == gpu  # both wait at the key's owner
    c.brain._move_key(sub, key, gpu, cpu_only, c.now)  # as work conservation or a key capacity moves a key
    assert sub.waiting[1].home == cpu_only
    assert sub.waiting[2].home == gpu  # never to a node without a GPU
    c.brain.check_structures()
    answer = c.brain.place("s", [0], [])  # the GPU frees: the task left behind runs there
    assert (2, gpu) in [(uid, node) for uid, node, *_ in answer.placed]
    assert 1 in sub.waiting or 1 in [uid for uid, *_ in answer.placed]  # nothing lost
    c.brain.check_structures()


def test_a_keys_walk_after_any_of_its_nodes_is_the_rest_of_the_walk():
    """`_Walk.after` (a moved key's next nodes clockwise): after the first node, a later one, or a node not on the
    walk, however much of the walk was consumed before; with and without nodes that could never hold the task."""
    nodes = {node_id(i): {"CPU": 4} for i in range(12)}
    ring = documented_ring(nodes)
    for eligible in (_anywhere, {node_id(i) for i in range(0, 12, 2)}.__contains__):
        for key in ("a", "user-7", "zz"):
            full = [n for n in ring.successors(key) if eligible(n)]
            for node in (full[0], full[1], full[-1], "not-a-node"):
                for consumed in (0, 1, 3):
                    walk = _Walk(ring.successors(key), eligible, ring, key)
                    list(itertools.islice(walk, consumed))
                    rest = full[full.index(node) + 1 :] if node in full else full
                    assert list(walk.after(node)) == rest, (key, node, consumed)


# -- bounded loads on the real path ----------------------------------------------------------------
class DefersOnlyWhenFull(HashPolicy):
    """HashPolicy that checks each deferral: a key's tasks wait unassigned for their home only when the home
    could not admit them at once (running or queued, ``view.overcommit`` x its CPUs), never while it has room."""

    def assign(self, task: TaskDemand, view: ResourceView, count: int = 1) -> Decision | None:
        decision = super().assign(task, view, count)
        if decision is not None and not decision.assigned:
            self._check(view, decision.waits_for, count)
        return decision

    def decide(self, task: TaskDemand, view: ResourceView) -> Decision:
        decision = super().decide(task, view)
        if decision.node is None and not decision.assigned:
            self._check(view, decision.waits_for, 1)
        return decision

    @staticmethod
    def _check(view: ResourceView, home: str | None, count: int) -> None:
        assert home is not None
        admits = view.capacity(home)["CPU"] * view.overcommit
        assert view.assigned(home) + count > admits, f"deferred {count} at {home[:2]} holding {view.assigned(home)}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    caps=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=6),
    c=st.sampled_from([1.0, 1.25, 1.5, 2.0]),
    bursts=st.lists(st.tuples(st.integers(1, 40), st.integers(0, 30)), min_size=1, max_size=8),
    seed=st.integers(0, 1000),
)
@example(caps=[1, 1, 1, 4], c=1.0, bursts=[(1, 0), (7, 1)], seed=1)  # at `<` the 4-CPU node defers its 8th
def test_no_node_takes_more_than_its_bound_of_assigned_work(caps, c, bursts, seed):
    """MTZ on assigned work (placed + waiting for the node): a node that takes new work in a burst
    holds at most ceil(c * T * w / W) after it, T = all work the brain holds, w its CPUs, W their sum,
    or what it admits at once (2 x CPUs here, overcommit 2), so a lull never pushes work off free slots.
    And the lower side (`DefersOnlyWhenFull`): a key waits for its home only when the home holds too much
    to admit it; at `held + count < admits` a node holding one task short of its admission deferred the next."""
    rng = random.Random(seed)
    cluster = Cluster([{"CPU": float(x)} for x in caps], overcommit=2.0, load_factor=c, policy_class=DefersOnlyWhenFull)
    view = cluster.brain.view
    weights = {node_id(i): float(x) for i, x in enumerate(caps)}
    W = sum(weights.values())
    zipf = [1 / r**1.1 for r in range(1, 60)]
    for arrivals, finishes in bursts:
        done = rng.sample(sorted(cluster.running), min(finishes, len(cluster.running)))
        cluster.now += 0.001
        cluster.send([], finished=done)  # releases happen between bursts
        before = {n: view.assigned(n) for n in view.nodes}
        keys = rng.choices([f"key-{r}" for r in range(1, 60)], weights=zipf, k=arrivals)
        cluster.send(keys)
        held = cluster.sent - cluster.finished  # placed and not finished, or waiting in the brain
        for n in view.nodes:
            if view.assigned(n) > before[n]:
                bound = max(math.ceil(c * held * weights[n] / W - 1e-9), 2 * weights[n])
                assert view.assigned(n) <= bound, (n[:2], view.assigned(n))


def test_a_node_with_a_free_slot_takes_the_next_task_of_its_key():
    """The fallback of the bound is inclusive: a node takes tasks while `held + count <= what it admits`. Four
    4-CPU nodes, few tasks held: the MTZ bound ceil(1.25 x (T + 1) x 4/16) is 2, so only the fallback keeps a
    key's 4th task on the node holding its first three (at `<` it waited, deferred, beside a free slot)."""
    c = Cluster([{"CPU": 4}] * 4, locality_wait=10.0)
    c.policy.arrived({f"earlier-{i}": 1 for i in range(400)})  # a long run so far: "k" is a cold key
    owner = documented_ring(c.nodes).lookup("k")
    first = c.send(["k"] * 3)
    assert [c.placed[u][0] for u in first] == [owner] * 3
    fourth = c.send(["k"])
    assert [c.placed[u] for u in fourth] == [(owner, "k", "")]
    fifth = c.send(["k"])  # the owner is full now (4 of 4 admitted): the fifth waits for it, deferred
    assert fifth == [] and c.brain.view.assigned(owner) == 4


def test_ssd_tasks_fill_the_ssd_node_not_one_at_a_time():
    """Regression: with only ssd tasks in flight, the node with ssd: 2 admitted one at a time,
    because the bound compared them with a CPU-weighted share of every node."""
    c = Cluster([{"CPU": 1}, {"CPU": 2}, {"CPU": 2, "ssd": 2}, {"CPU": 4}])
    placed = c.send([f"k{i}" for i in range(6)], demand={"CPU": 1, "ssd": 1})
    assert len(placed) == 2  # both ssd slots at once; the other four wait for the only ssd node
    assert {c.placed[u][0] for u in placed} == {node_id(2)}


def test_gpu_tasks_share_the_gpu_nodes_by_their_own_weights():
    # Two GPU nodes (4 and 2 CPUs) among CPU-only ones: GPU tasks are bounded within the GPU nodes.
    c = Cluster([{"CPU": 8}, {"CPU": 4, "GPU": 2}, {"CPU": 2, "GPU": 2}, {"CPU": 8}], overcommit=8.0)
    c.send([f"gpu-key-{i % 3}" for i in range(24)], demand={"CPU": 1, "GPU": 0.25})
    view = c.brain.view
    gpu_nodes = [node_id(1), node_id(2)]
    assert all(view.assigned(n) == 0 for n in (node_id(0), node_id(3)))
    # T = 24 held, W = 4 + 2 CPUs: bounds ceil(1.25 * 24 * 4/6) = 20 and ceil(1.25 * 24 * 2/6) = 10
    assert view.assigned(gpu_nodes[0]) <= 20 and view.assigned(gpu_nodes[1]) <= 10
    assert sum(view.assigned(n) for n in gpu_nodes) == 24


def hot_key_nodes(ring: HashRing, key: str, spread: int) -> list[str]:
    """A hot key's nodes as the policy documents them: its owner, then the owners of key NUL 1, key NUL 2..."""
    nodes = [ring.lookup(key)]
    tried = 0
    while len(nodes) < spread:
        tried += 1
        node = ring.lookup(f"{key}\x00{tried}")
        if node not in nodes:
            nodes.append(node)
    return nodes


@pytest.mark.parametrize("salt", ["", "b", "c"])
def test_a_hot_key_spreads_over_the_nodes_its_share_needs_evenly(salt):
    c = Cluster([{"CPU": 2}] * 4, overcommit=2.0, salt=salt)
    keys = ["hot" if i % 2 == 0 else f"cold-{i}" for i in range(80)]
    c.run(keys, finish_each=4)
    hot_nodes = Counter(node for node, key, _ in c.placed.values() if key == "hot")
    # Its share is 1/2 of the work on a ring of weight 8, nodes of weight 2: d = ceil(1.25 * 0.5 * 8 / 2) = 3.
    spread = math.ceil(HOT_HEADROOM * 0.5 * 8 / 2)
    assert spread == 3
    assert set(hot_nodes) == set(hot_key_nodes(documented_ring(c.nodes), "hot", spread)), hot_nodes
    # Each task goes to the least loaded of the key's nodes: its 40 tasks split 14/13/13.
    assert sum(hot_nodes.values()) == 40 and max(hot_nodes.values()) - min(hot_nodes.values()) <= 1, hot_nodes


# -- whole keys --------------------------------------------------------------------------------------
def test_keys_move_whole_when_their_owner_is_over_its_bound():
    """Few keys rarely split in proportion to capacity; shedding single tasks would split every key of
    an overloaded node. Keys that have not run yet move whole, so each still runs on one node."""
    caps = [{"CPU": 1}, {"CPU": 2}, {"CPU": 2}, {"CPU": 4}]
    affinities = []
    for salt in "abcdefgh":  # eight rings: eight ways 20 keys fall on the nodes
        c = Cluster(caps, overcommit=2.0, salt=salt, locality_wait=10.0)  # no delay-scheduling spills here
        keys = [f"user-{i % 20}" for i in range(200)]
        c.run(keys, finish_each=3)
        nodes_per_key = defaultdict(set)
        for node, key, _ in c.placed.values():
            nodes_per_key[key].add(node)
        affinities.append(sum(len(v) == 1 for v in nodes_per_key.values()) / len(nodes_per_key))
        loads = Counter(node for node, _, _ in c.placed.values())
        assert len(loads) == 4  # every node got keys
    # Every key on one node, on every ring: no margin, because the rule is exact here. A key splits only when
    # no node can take it whole, and a key of 10 tasks never exceeds a node's bound (>= ceil(1.25 x 201 / 9) = 28
    # on the 1-CPU node). Measured: affinity 1.0 on 52 rings x 2 seeds. With keys shed task by task instead of
    # moved whole, one key of 20 splits on ring "b" (0.95): a margin of one key would hide exactly that
    # (the old acceptance, min 0.85 and mean 0.9, let 3 of 20 keys split on every ring).
    assert affinities == [1.0] * 8, affinities


# -- delay scheduling ---------------------------------------------------------------------------------
def test_a_task_waits_for_its_busy_home_then_takes_the_next_node_with_room():
    # Two 1-CPU nodes; a load factor of 4 keeps both tasks of the key under the home's bound, so the
    # only reason to wait is a full home (delay scheduling), not the bound.
    c = Cluster([{"CPU": 1}] * 2, load_factor=4.0, locality_wait=0.5)
    ring = documented_ring(c.nodes)
    key = "dataset-7"
    home, other = list(ring.successors(key))
    first = c.send([key])
    assert [c.placed[u][0] for u in first] == [home]
    assert c.send([key]) == []  # the home is busy and the other node idle: it waits for its home
    c.now += 0.4
    assert c.send([]) == []  # still within the locality wait
    c.now += 0.2
    spilled = c.send([])  # 0.6 s > 0.5 s: the next node clockwise with room
    assert [c.placed[u][0] for u in spilled] == [other] and c.placed[spilled[0]][2] == "wait"


def test_a_task_that_waited_takes_its_home_when_room_appears_first():
    c = Cluster([{"CPU": 1}] * 2, load_factor=4.0, locality_wait=0.5)
    home = documented_ring(c.nodes).lookup("k")
    first = c.send(["k"])
    assert c.send(["k"]) == []
    c.now += 0.3
    again = c.send([], finished=first)  # the home frees within the wait: the task runs at home
    assert [c.placed[u] for u in again] == [(home, "k", "")]


def test_the_adaptive_locality_wait_follows_the_jobs_task_times():
    policy = HashPolicy(PolicyOptions())
    assert policy.locality_wait_s == 0.2  # nothing measured yet: the floor
    policy.pace({"task_p50_s": 0.5, "task_p90_s": 0.9})
    assert policy.locality_wait_s == 0.5  # one median task time: a free slot idles about one task at most
    policy.pace({"task_p50_s": 0.05, "task_p90_s": 0.1})
    assert policy.locality_wait_s == 0.2  # the floor
    policy.pace({"task_p50_s": 60.0, "task_p90_s": 90.0})
    assert policy.locality_wait_s == 10.0  # capped
    fixed = HashPolicy(PolicyOptions(locality_wait=2.0))
    fixed.pace({"task_p50_s": 0.5})
    assert fixed.locality_wait_s == 2.0  # --locality-wait wins


# -- membership ------------------------------------------------------------------------------------
def test_a_dead_node_moves_only_its_own_keys():
    c = Cluster([{"CPU": 100}] * 6, load_factor=None)
    keys = [f"user-{i}" for i in range(300)]
    policy, view = c.policy, c.brain.view
    before = {k: policy.choose(TaskDemand(CPU1, k), view) for k in keys}
    dead = node_id(2)
    c.brain.report_node_failure(dead)
    after = {k: policy.choose(TaskDemand(CPU1, k), view) for k in keys}
    assert any(node == dead for node in before.values())
    assert all(after[k] == node for k, node in before.items() if node != dead)
    assert dead not in after.values()


def test_the_ring_depends_only_on_current_membership():
    """Regression: ring weights were scaled to the largest node of the first sync, so join order (and a
    brain restart) changed the ring. Built incrementally in one order and fresh in another, owners agree."""
    caps = {node_id(i): {"CPU": float(c)} for i, c in enumerate([4, 64, 2, 16, 8, 1])}
    incremental, fresh = HashPolicy(PolicyOptions(vnodes=10)), HashPolicy(PolicyOptions(vnodes=10))
    grown = ResourceView()
    for node in sorted(caps):  # a 4-CPU node first, then a 64-CPU one joins, ...
        grown.set_node(node, caps[node])
        incremental.sync(grown)
    whole = ResourceView()
    for node in sorted(caps, reverse=True):
        whole.set_node(node, caps[node])
    fresh.sync(whole)
    keys = [f"k{i}" for i in range(100_000)]
    assert [incremental.ring.lookup(k) for k in keys] == [fresh.ring.lookup(k) for k in keys]


@pytest.mark.parametrize("cpus, points", [(1, 10), (64, 640), (1000, 1280)])
def test_ring_points_per_cpu_with_a_cap(cpus, points):
    view = ResourceView()
    view.set_node(node_id(0), {"CPU": float(cpus)})
    policy = HashPolicy(PolicyOptions(vnodes=10))
    policy.sync(view)
    assert policy.ring.points == points  # 10 per CPU, at most 128 CPUs counted


def test_a_join_or_leave_recomputes_only_that_nodes_ring_points():
    """The policy follows membership through the ring's incremental path: a node joining (or leaving) the view
    costs its own points only, and no key moves between two nodes that stayed."""
    from unittest import mock

    from raysched.core import ring as ring_module

    view = ResourceView()
    for i in range(20):
        view.set_node(node_id(i), {"CPU": 4.0})
    policy = HashPolicy(PolicyOptions(vnodes=10, load_factor=None))
    keys = [f"user-{i}" for i in range(2000)]
    before = {k: policy.choose(TaskDemand(CPU1, k), view) for k in keys}
    with mock.patch.object(ring_module, "_blake2b_points", wraps=ring_module._blake2b_points) as digests:
        view.set_node(node_id(20), {"CPU": 4.0})
        joined = {k: policy.choose(TaskDemand(CPU1, k), view) for k in keys}
        view.remove_node(node_id(3))
        left = {k: policy.choose(TaskDemand(CPU1, k), view) for k in keys}
    assert [c.args[0] for c in digests.call_args_list] == [f"{node_id(20)}#".encode()]  # the joining node's alone
    assert all(joined[k] in (owner, node_id(20)) for k, owner in before.items())
    assert all(left[k] == owner for k, owner in joined.items() if owner != node_id(3))


# -- what the policy remembers between decisions ----------------------------------------------------------------
def test_remembered_eligible_nodes_follow_membership_and_speed():
    """Tasks of one validated demand share its signature object, and the policy keeps the last one's eligible
    nodes and their weight: a join, a leave or a speed report must be seen at the very next decision."""
    view = ResourceView()
    for i in range(3):
        view.set_node(node_id(i), {"CPU": 4.0})
    policy = HashPolicy(PolicyOptions(seed=0))
    cpu = TaskDemand(CPU1, "k")
    gpu = TaskDemand({"CPU": 1.0, "GPU": 1.0}, "g")
    policy.decide(cpu, view)
    assert policy._eligible_nodes(cpu, view) == (None, 12.0)
    view.set_node(node_id(3), {"CPU": 8.0, "GPU": 1.0})
    policy.decide(cpu.with_key("k2"), view)  # the same signature object, a new member
    assert policy._eligible_nodes(cpu, view) == (None, 20.0)
    policy.decide(gpu, view)
    assert policy._eligible_nodes(gpu, view) == (frozenset({node_id(3)}), 8.0)
    view.remove_node(node_id(0))
    policy.decide(cpu, view)
    assert policy._eligible_nodes(cpu, view) == (None, 16.0)
    runs: dict[str, float] = {}
    for n, seconds in ((1, 8.0), (2, 1.0), (3, 1.0)):  # node 1 runs its tasks 8 times slower
        runs |= {f"run_s@{node_id(n)}": 40 * seconds, f"runs@{node_id(n)}": 40.0}
    policy.pace(runs)
    assert policy.speed.factors  # bounds weigh node 1 less from the next decision on
    assert policy._eligible_nodes(cpu, view)[1] == pytest.approx(policy._share_total) != 16.0
