"""Built-in policies: fit, None, infeasible, determinism, objectives, invariants."""
from __future__ import annotations

import math
import pickle
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysched.policies import (
    POLICY_NAMES,
    GreedyPolicy,
    HashPolicy,
    InfeasibleError,
    P2CPolicy,
    PackPolicy,
    Policy,
    PolicyOptions,
    RandomPolicy,
    TaskDemand,
    build_policy,
)
from raysched.ring import HashRing, RingConfig
from raysched.scoring import least_allocated_score, most_allocated_score
from raysched.view import ResourceView

CPU1 = TaskDemand({"CPU": 1}, "k")
SMALL = PolicyOptions(seed=7, vnodes=32)


def view_of(caps: dict[str, dict[str, float]], overcommit: float = 1.0) -> ResourceView:
    v = ResourceView(overcommit)
    for n, c in caps.items():
        v.set_node(n, c)
    return v


def uniform_view(n: int, cpu: float = 4.0, overcommit: float = 1.0) -> ResourceView:
    return view_of({f"node-{i:03d}": {"CPU": cpu} for i in range(n)}, overcommit)


# -- options and demands ----------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"load_factor": 0.9}, "--load-factor"),
        ({"load_factor": float("nan")}, "--load-factor"),
        ({"load_factor": "1.25"}, "--load-factor"),
        ({"vnodes": 0}, "--vnodes"),
        ({"vnodes": 2.5}, "--vnodes"),
        ({"seed": "1"}, "--seed"),
        ({"seed": 1.5}, "--seed"),
    ],
)
def test_policy_options_validated(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        PolicyOptions(**kwargs)


def test_policy_options_defaults():
    o = PolicyOptions()
    assert (o.seed, o.load_factor, o.vnodes) == (None, 1.25, HashRing().config.vnodes)
    assert PolicyOptions(load_factor=None).load_factor is None
    assert PolicyOptions(load_factor=2).load_factor == 2.0


def test_task_demand_validated_and_canonical():
    t = TaskDemand({"memory": 5, "CPU": 1, "GPU": 0}, "user-1")
    assert (t.names, t.amounts) == (("CPU", "memory"), (1.0, 5.0))
    assert t == TaskDemand({"CPU": 1.0, "memory": 5.0, "GPU": 0.0}, "user-1")
    assert hash(t) == hash(TaskDemand({"CPU": 1, "memory": 5}, "user-1"))
    with pytest.raises(ValueError, match="CPU must be a finite amount"):
        TaskDemand({"CPU": -1}, "k")
    with pytest.raises(ValueError, match="key must be a string"):
        TaskDemand({"CPU": 1}, 5)  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(t)) == t


# -- shared contract, every built-in ------------------------------------------------------
@pytest.mark.parametrize("name", POLICY_NAMES)
def test_implements_protocol(name):
    policy = build_policy(name, SMALL)
    assert isinstance(policy, Policy) and policy.name == name


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_infeasible_names_demand_and_largest_node(name):
    v = view_of({"0123456789abcdef": {"CPU": 8, "GPU": 1}, "ffff": {"CPU": 2}})
    with pytest.raises(InfeasibleError) as err:
        build_policy(name, SMALL).choose(TaskDemand({"CPU": 16}, "k"), v)
    msg = str(err.value)
    assert "infeasible demand {CPU: 16}" in msg
    assert "largest node 01234567 has {CPU: 8, GPU: 1}" in msg
    assert isinstance(err.value, ValueError)
    assert err.value.node_id == "0123456789abcdef" and err.value.demand == {"CPU": 16.0}
    again = pickle.loads(pickle.dumps(err.value))
    assert str(again) == msg


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_infeasible_on_empty_view(name):
    with pytest.raises(InfeasibleError, match="no alive nodes"):
        build_policy(name, SMALL).choose(CPU1, ResourceView())


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_none_when_nothing_fits_now(name):
    v = uniform_view(20, cpu=2)
    for n in v.nodes:
        v.reserve(n, {"CPU": 2})
    assert build_policy(name, SMALL).choose(CPU1, v) is None
    if name == "hash":  # hash waits for the key's home rather than take any free slot
        home = HashPolicy(SMALL)
        home.sync(v)
        target = next(iter(home.ring.successors(CPU1.key)))
        v.release(target, {"CPU": 1})
        assert build_policy(name, SMALL).choose(CPU1, v) == target
        return
    v.release("node-013", {"CPU": 1})
    assert build_policy(name, SMALL).choose(CPU1, v) == "node-013"


def test_hash_waits_for_a_busy_home_instead_of_scattering_the_key():
    """Regression: on a saturated cluster, hash spilled each task to whatever slot freed up,
    so keys lost their warm node (cache_affinity.py ran like random)."""
    v = uniform_view(4, cpu=2)
    p = HashPolicy(PolicyOptions(load_factor=1.25, vnodes=32))
    key = TaskDemand({"CPU": 1}, "dataset-7")
    home = p.choose(key, v)
    for n in v.nodes:
        v.reserve(n, {"CPU": 2})  # every node full: 8 tasks in flight, home well under its bound
    v.release(next(n for n in v.nodes if n != home), {"CPU": 1})
    assert p.choose(key, v) is None  # a slot elsewhere is free, but the key waits for home
    v.release(home, {"CPU": 1})
    assert p.choose(key, v) == home


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_empty_demand_goes_somewhere(name):
    v = uniform_view(5)
    assert build_policy(name, SMALL).choose(TaskDemand({}, "k"), v) in v.nodes


demands = st.sampled_from([{"CPU": 1}, {"CPU": 2}, {"CPU": 1, "GPU": 1}, {"GPU": 1}, {"CPU": 0.5, "memory": 2}, {}])
shapes = st.sampled_from([{"CPU": 4}, {"CPU": 8, "GPU": 2}, {"CPU": 2, "memory": 8}, {"GPU": 1}, {"CPU": 16, "memory": 4}])


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(POLICY_NAMES),
    caps=st.lists(shapes, min_size=1, max_size=8),
    stream=st.lists(st.tuples(demands, st.text(max_size=4), st.booleans()), max_size=60),
    overcommit=st.sampled_from([1.0, 2.0]),
)
def test_choices_always_fit_and_never_touch_the_view(name, caps, stream, overcommit):
    v = view_of({f"n{i}": c for i, c in enumerate(caps)}, overcommit)
    policy = build_policy(name, SMALL)
    placed: list[tuple[str, dict]] = []
    for demand, key, release in stream:
        task = TaskDemand(demand, key)
        before = (v.version, v.total_tasks_in_flight, {n: dict(v.reserved(n)) for n in v.nodes})
        try:
            node = policy.choose(task, v)
        except InfeasibleError:
            assert not any(all(a <= v.capacity(n).get(r, 0) for r, a in demand.items()) for n in v.nodes)
            continue
        assert before == (v.version, v.total_tasks_in_flight, {n: dict(v.reserved(n)) for n in v.nodes})
        if node is None:
            assert not any(v.fits_now(n, demand) for n in v.nodes)
        else:
            assert v.fits_now(node, demand)
            v.reserve(node, demand)
            placed.append((node, demand))
        if release and placed:
            n, d = placed.pop(0)
            v.release(n, d)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_policies_pickle_and_keep_deciding_the_same(name):
    v = uniform_view(30)
    a = build_policy(name, SMALL)
    a.choose(CPU1, v)
    b = pickle.loads(pickle.dumps(a))
    keys = [TaskDemand({"CPU": 1}, f"k{i}") for i in range(40)]
    assert [a.choose(t, v) for t in keys] == [b.choose(t, v) for t in keys]


# -- random and p2c ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [RandomPolicy, P2CPolicy])
def test_seeded_policies_are_reproducible(cls):
    def run(seed):
        v = uniform_view(50, cpu=100)
        p = cls(PolicyOptions(seed=seed))
        out = []
        for _ in range(300):
            n = p.choose(CPU1, v)
            v.reserve(n, CPU1.resources)
            out.append(n)
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_random_is_uniform_over_fitting_nodes_only():
    v = uniform_view(10, cpu=1)
    for n in v.nodes[:6]:
        v.reserve(n, {"CPU": 1})  # 6 full, 4 fit: mostly the index fallback path
    p = RandomPolicy(PolicyOptions(seed=3))
    counts = Counter(p.choose(CPU1, v) for _ in range(4000))
    assert set(counts) == set(v.nodes[6:])
    assert all(850 <= c <= 1150 for c in counts.values())  # 1000 each expected


def test_p2c_beats_random_on_max_load():
    maxima = {}
    for cls in (RandomPolicy, P2CPolicy):
        v = uniform_view(100, cpu=1000)
        p = cls(PolicyOptions(seed=42))
        for _ in range(10_000):
            v.reserve(p.choose(CPU1, v), CPU1.resources)
        maxima[cls.name] = max(v.tasks_in_flight(n) for n in v.nodes)
    assert maxima["p2c"] < maxima["random"]
    assert maxima["p2c"] <= 103  # mean 100: two choices keep it within a few


def test_p2c_prefers_less_loaded_then_id():
    v = view_of({"a": {"CPU": 4}, "b": {"CPU": 4}})
    v.reserve("a", {"CPU": 2})
    p = P2CPolicy(PolicyOptions(seed=0))
    assert {p.choose(CPU1, v) for _ in range(20)} == {"b"}  # both sampled every time: b lighter
    v.reserve("b", {"CPU": 2})
    assert {p.choose(CPU1, v) for _ in range(20)} == {"a"}  # equal share and count: smaller id


# -- greedy and pack -----------------------------------------------------------------------
def brute_best(v: ResourceView, task: TaskDemand, score) -> str | None:
    fitting = [n for n in v.nodes if v.fits_now(n, task.resources)]
    if not fitting:
        return None
    return min(fitting, key=lambda n: (-score(v.capacity(n), v.reserved(n), task.resources), n))


# Powers of two keep every fraction exact, so "best" has no rounding ties.
exact_shapes = st.sampled_from([{"CPU": 4}, {"CPU": 8}, {"CPU": 8, "GPU": 2}, {"CPU": 16, "memory": 8}, {"CPU": 2, "GPU": 4}])
exact_demands = st.sampled_from([{"CPU": 1}, {"CPU": 2}, {"CPU": 1, "GPU": 1}, {"GPU": 2}, {"CPU": 4, "memory": 2}, {"memory": 1}])


@settings(max_examples=80, deadline=None)
@given(
    caps=st.lists(exact_shapes, min_size=1, max_size=10),
    history=st.lists(st.tuples(st.integers(0, 9), exact_demands), max_size=40),
    task=exact_demands,
    overcommit=st.sampled_from([1.0, 2.0]),
)
def test_greedy_and_pack_match_a_full_scan(caps, history, task, overcommit):
    v = view_of({f"n{i}": c for i, c in enumerate(caps)}, overcommit)
    greedy, pack = GreedyPolicy(SMALL), PackPolicy(SMALL)
    if not v.could_ever_fit(task):
        with pytest.raises(InfeasibleError):
            greedy.choose(TaskDemand(task), v)
        return
    greedy.choose(TaskDemand(task), v)  # build indices before the history
    pack.choose(TaskDemand(task), v)
    for i, d in history:
        n = f"n{i % len(caps)}"
        if v.fits_now(n, d):
            v.reserve(n, d)
    t = TaskDemand(task, "k")
    assert greedy.choose(t, v) == brute_best(v, t, least_allocated_score)
    assert pack.choose(t, v) == brute_best(v, t, most_allocated_score)


def test_greedy_spreads_and_pack_packs():
    v = view_of({"a": {"CPU": 4}, "b": {"CPU": 4}, "c": {"CPU": 8}})
    v.reserve("a", {"CPU": 2})
    # greedy: left after placing CPU 1 -> a (4-2-1)/4 = .25, b (4-0-1)/4 = .75, c (8-0-1)/8 = .875 -> c
    assert GreedyPolicy().choose(CPU1, v) == "c"
    # pack: used after placing -> a (2+1)/4 = .75, b 1/4 = .25, c 1/8 = .125 -> a
    assert PackPolicy().choose(CPU1, v) == "a"
    v.reserve("a", {"CPU": 2})  # a is full now: pack takes the next fullest, b (.25) over c (.125)
    assert PackPolicy().choose(CPU1, v) == "b"


def test_greedy_and_pack_break_ties_by_node_id():
    v = view_of({"n2": {"CPU": 4}, "n1": {"CPU": 4}, "n3": {"CPU": 4}})
    assert GreedyPolicy().choose(CPU1, v) == "n1"
    assert PackPolicy().choose(CPU1, v) == "n1"
    v.reserve("n1", {"CPU": 1})
    assert GreedyPolicy().choose(CPU1, v) == "n2"  # n2 and n3 tie at .75: smaller id
    assert PackPolicy().choose(CPU1, v) == "n1"


def test_greedy_multi_resource_averages_fractions():
    v = view_of({"cpuheavy": {"CPU": 16, "GPU": 1}, "gpuheavy": {"CPU": 4, "GPU": 4}})
    t = TaskDemand({"CPU": 2, "GPU": 1})
    # cpuheavy: ((16-2)/16 + (1-1)/1) / 2 = (.875 + 0) / 2 = .4375
    # gpuheavy: ((4-2)/4 + (4-1)/4) / 2 = (.5 + .75) / 2 = .625 -> gpuheavy
    assert GreedyPolicy().choose(t, v) == "gpuheavy"
    assert PackPolicy().choose(t, v) == "cpuheavy"  # (.125 + 1) / 2 = .5625 > .375


def test_many_capacity_classes_still_pick_a_fitting_node():
    # Per-node memory sizes: every node its own class -> the sampled path.
    v = view_of({f"n{i:03d}": {"CPU": 4, "memory": 1000 + i} for i in range(200)})
    t = TaskDemand({"CPU": 1, "memory": 10})
    for policy in (GreedyPolicy(SMALL), PackPolicy(SMALL)):
        node = policy.choose(t, v)
        assert node is not None and v.fits_now(node, t.resources)
    for n in v.nodes[:-1]:
        v.reserve(n, {"CPU": 4})
    assert GreedyPolicy(SMALL).choose(t, v) == v.nodes[-1]  # beyond the sample: full walk


# -- hash ---------------------------------------------------------------------------------
def test_hash_without_load_follows_the_ring():
    v = uniform_view(20, cpu=1000)
    p = HashPolicy(PolicyOptions(load_factor=None, vnodes=32))
    ring = HashRing(RingConfig(vnodes=32))
    for n in v.nodes:
        ring.add(n)
    for i in range(200):
        t = TaskDemand({"CPU": 1}, f"user-{i}")
        node = p.choose(t, v)
        assert node == ring.lookup(t.key)
        v.reserve(node, t.resources)


def test_hash_same_key_same_node_while_under_bound():
    v = uniform_view(10, cpu=100)
    p = HashPolicy(SMALL)
    t = TaskDemand({"CPU": 1}, "user-7")
    assert len({p.choose(t, v) for _ in range(10)}) == 1


def test_hash_bounded_skips_full_nodes_clockwise():
    v = uniform_view(8, cpu=2)
    p = HashPolicy(PolicyOptions(load_factor=1.25, vnodes=32))
    t = TaskDemand({"CPU": 1}, "user-1")
    first = p.choose(t, v)
    walk = list(p.ring.successors("user-1"))
    assert first == walk[0]
    v.reserve(walk[0], {"CPU": 2})
    assert p.choose(t, v) == walk[1]


def test_pure_ring_waits_for_a_full_owner_instead_of_moving_the_key():
    v = uniform_view(8, cpu=2)
    p = HashPolicy(PolicyOptions(load_factor=None, vnodes=32))
    t = TaskDemand({"CPU": 1}, "user-1")
    owner = p.choose(t, v)
    v.reserve(owner, {"CPU": 2})
    assert p.choose(t, v) is None  # the caller waits; the key stays home
    v.release(owner, {"CPU": 2})
    assert p.choose(t, v) == owner


def test_pure_ring_skips_nodes_that_could_never_hold_the_task():
    v = ResourceView()
    for i in range(6):
        v.set_node(f"node-{i:03d}", {"CPU": 4, **({"ssd": 1} if i == 3 else {})})
    p = HashPolicy(PolicyOptions(load_factor=None, vnodes=32))
    assert p.choose(TaskDemand({"CPU": 1, "ssd": 1}, "any-key"), v) == "node-003"


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 16), m=st.integers(1, 300), c=st.sampled_from([1.0, 1.25, 1.5]), seed=st.integers(0, 5))
def test_hash_bounded_invariant_under_zipf_keys(n, m, c, seed):
    v = uniform_view(n, cpu=10_000)
    p = HashPolicy(PolicyOptions(load_factor=c, vnodes=32))
    rng = random.Random(seed)
    weights = [1 / r**1.1 for r in range(1, 200)]
    keys = rng.choices([f"key-{r}" for r in range(1, 200)], weights=weights, k=m)
    for t, k in enumerate(keys, start=1):
        v.reserve(p.choose(TaskDemand({"CPU": 1}, k), v), {"CPU": 1})
        assert max(v.tasks_in_flight(x) for x in v.nodes) <= math.ceil(c * t / n)


def test_hash_weighted_bound_follows_cpu():
    v = view_of({"big": {"CPU": 8}, **{f"s{i}": {"CPU": 4} for i in range(4)}})
    p = HashPolicy(PolicyOptions(load_factor=1.25, vnodes=64))
    for _ in range(120):
        v.reserve(p.choose(TaskDemand({"CPU": 0.01}, "hot"), v), {"CPU": 0.01})
    # W = 8 + 4*4 = 24 CPUs: big may hold ceil(1.25*120*8/24) = 50, a small one 25.
    assert v.tasks_in_flight("big") <= 50
    assert all(v.tasks_in_flight(f"s{i}") <= 25 for i in range(4))


def test_hash_resync_moves_only_the_removed_nodes_keys():
    v = uniform_view(12, cpu=1000)
    p = HashPolicy(PolicyOptions(load_factor=None, vnodes=32))
    tasks = [TaskDemand({"CPU": 1}, f"user-{i}") for i in range(300)]
    before = [p.choose(t, v) for t in tasks]
    v.remove_node("node-004")
    after = [p.choose(t, v) for t in tasks]
    assert all(new == old for old, new in zip(before, after) if old != "node-004")
    assert "node-004" in before
    assert "node-004" not in after and "node-004" not in p.ring
    v.set_node("node-004", {"CPU": 1000})  # back: every key returns home
    assert [p.choose(t, v) for t in tasks] == before


def test_hash_resyncs_on_capacity_change_and_new_view():
    v = uniform_view(4, cpu=4)
    p = HashPolicy(SMALL)
    p.choose(CPU1, v)
    assert p.ring.weight("node-000") == 1.0
    v.set_node("node-000", {"CPU": 8})
    p.choose(CPU1, v)
    assert p.ring.weight("node-000") == 2.0  # relative to the first sync's largest (4 CPUs)
    other = view_of({"x": {"CPU": 4}})
    assert p.choose(CPU1, other) == "x"  # a different view: full resync
    assert p.ring.nodes == ("x",)


def test_hash_never_overfills_a_node_past_its_bound():
    # b is full (one big task) and a is over its bound: the task waits rather than break the bound.
    v = view_of({"a": {"CPU": 100}, "b": {"CPU": 100}})
    v.reserve("b", {"CPU": 100})
    p = HashPolicy(SMALL)
    placed = 0
    while (node := p.choose(CPU1, v)) is not None:
        assert node == "a"
        v.reserve(node, CPU1.resources)
        placed += 1
    # a holds at most its bound: ceil(1.25 * (T + 1) / 2) with T = placed + 1 in flight
    assert placed <= math.ceil(1.25 * (placed + 2) / 2)
    v.release("b", {"CPU": 100})
    assert p.choose(CPU1, v) is not None


