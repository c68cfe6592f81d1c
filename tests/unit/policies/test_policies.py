"""Built-in policies: fit, None, infeasible, determinism, objectives, invariants."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysched.core.view import ResourceView
from raysched.policies import (
    POLICY_NAMES,
    InfeasibleError,
    P2CPolicy,
    Policy,
    PolicyOptions,
    RandomPolicy,
    TaskDemand,
    build_policy,
    check_feasible,
)
from raysched.policies.noderesources import least_allocated_score, most_allocated_score

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
        ({"locality_wait": -1}, "--locality-wait"),
        ({"locality_wait": float("inf")}, "--locality-wait"),
        ({"locality_wait": "2"}, "--locality-wait"),
        ({"seed": "1"}, "--seed"),
        ({"seed": 1.5}, "--seed"),
    ],
)
def test_policy_options_validated(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        PolicyOptions(**kwargs)


def test_policy_options_defaults():
    o = PolicyOptions()
    # 1.25 (DESIGN's default load factor), 100 ring points per CPU, locality wait adaptive
    assert (o.seed, o.load_factor, o.vnodes, o.locality_wait) == (None, 1.25, 100, None)
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


def test_infeasible_names_demand_and_largest_node():
    v = view_of({"0123456789abcdef": {"CPU": 8, "GPU": 1}, "ffff": {"CPU": 2}})
    with pytest.raises(InfeasibleError) as err:
        check_feasible(v, {"CPU": 16})  # the brain's check, before any policy is asked
    msg = str(err.value)
    assert "infeasible demand {CPU: 16}" in msg
    assert "largest node 01234567 has {CPU: 8, GPU: 1}" in msg
    assert isinstance(err.value, ValueError)
    assert err.value.node_id == "0123456789abcdef" and err.value.demand == {"CPU": 16.0}
    again = pickle.loads(pickle.dumps(err.value))
    assert str(again) == msg


def test_infeasible_on_empty_view():
    with pytest.raises(InfeasibleError, match="no alive nodes"):
        check_feasible(ResourceView(), {"CPU": 1})


@pytest.mark.parametrize("name", [n for n in POLICY_NAMES if n != "hash"])
def test_none_when_nothing_fits_now(name):
    v = uniform_view(20, cpu=2)
    for n in v.nodes:
        v.reserve(n, {"CPU": 2})
    assert build_policy(name, SMALL).choose(CPU1, v) is None
    v.release("node-013", {"CPU": 1})
    assert build_policy(name, SMALL).choose(CPU1, v) == "node-013"  # the only node with room


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_empty_demand_goes_somewhere(name):
    v = uniform_view(5)
    assert build_policy(name, SMALL).choose(TaskDemand({}, "k"), v) in v.nodes


demands = st.sampled_from([{"CPU": 1}, {"CPU": 2}, {"CPU": 1, "GPU": 1}, {"GPU": 1}, {"CPU": 0.5, "memory": 2}, {}])
shapes = st.sampled_from(
    [{"CPU": 4}, {"CPU": 8, "GPU": 2}, {"CPU": 2, "memory": 8}, {"GPU": 1}, {"CPU": 16, "memory": 4}]
)


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
        if not v.could_ever_fit(demand):
            continue  # the brain answers infeasible demands before any policy is asked
        before = (v.version, v.total_tasks_in_flight, {n: dict(v.reserved(n)) for n in v.nodes})
        node = policy.choose(task, v)
        assert before == (v.version, v.total_tasks_in_flight, {n: dict(v.reserved(n)) for n in v.nodes})
        if node is None and name == "hash":
            # hash waits for its key's home instead of spilling to any free slot: None means the home
            # it waits for could hold the task, and either has no room now or is at its bounded load
            decision = policy.decide(task, v)
            home = decision.waits_for
            assert home is not None and v.could_hold(home, demand)
            assert not decision.assigned or not v.fits_now(home, demand)
        elif node is None:
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


@pytest.mark.parametrize("cls", [RandomPolicy, P2CPolicy])
def test_the_kept_list_of_fitting_nodes_shrinks_as_they_fill_and_is_listed_again_when_room_appears(cls):
    """On a nearly full cluster the fitting nodes are listed once and kept until room appears: every choice
    still fits, the nodes that fill are dropped, and a node freed by a release is chosen again."""
    v = uniform_view(200, cpu=2)
    for n in v.nodes[:190]:
        v.reserve(n, {"CPU": 2})  # 10 nodes with 2 free slots each: random draws miss, the list is used
    p = cls(PolicyOptions(seed=5))
    placed = []
    for _ in range(20):
        node = p.choose(CPU1, v)
        assert node is not None and v.fits_now(node, CPU1.resources)
        v.reserve(node, CPU1.resources)
        placed.append(node)
    assert Counter(placed) == Counter({n: 2 for n in v.nodes[190:]})  # every free slot taken, none twice over
    assert p.choose(CPU1, v) is None  # full: the kept list is empty
    freed = v.nodes[7]
    v.release(freed, {"CPU": 2})  # room appears on a node the kept list never had
    assert {p.choose(CPU1, v) for _ in range(5)} == {freed}


@pytest.mark.parametrize("cls", [RandomPolicy, P2CPolicy])
def test_a_higher_overcommit_lists_the_fitting_nodes_again(cls):
    """Room appears on every full node when the admission limit rises: the kept list must not hide them."""
    v = uniform_view(20_000, cpu=1)
    for n in v.nodes[:19_995]:
        for _ in range(2):
            v.reserve(n, {"CPU": 1})  # full even at overcommit 2
    for n in v.nodes[19_995:19_999]:
        v.reserve(n, {"CPU": 1})  # full at overcommit 1, room for one at 2
    p = cls(PolicyOptions(seed=2))
    assert p.choose(CPU1, v) == v.nodes[19_999]  # the one node with room: the kept list holds it alone
    v.overcommit = 2.0  # the four half-full nodes admit one more: random draws still miss, the list is used
    chosen = {p.choose(CPU1, v) for _ in range(20)}
    assert chosen <= set(v.nodes[19_995:]) and chosen - {v.nodes[19_999]}  # the newly admitting nodes are seen


def test_random_is_uniform_over_a_kept_list_that_shrinks():
    """Draws from the kept list while nodes fill stay uniform over the nodes that still fit."""
    v = uniform_view(400, cpu=1)
    for n in v.nodes[:380]:
        v.reserve(n, {"CPU": 1})
    p = RandomPolicy(PolicyOptions(seed=11))
    p.choose(CPU1, v)  # lists the 20 fitting nodes
    for n in v.nodes[380:390]:
        v.reserve(n, {"CPU": 1})  # 10 of them fill (no room appeared: the list is kept)
    counts = Counter(p.choose(CPU1, v) for _ in range(5000))
    assert set(counts) == set(v.nodes[390:])
    assert all(400 <= c <= 600 for c in counts.values())  # 500 each expected


class CountingView(ResourceView):
    """A real view that counts its fit checks (what a decision costs on a full cluster)."""

    checks = 0

    def fits_now(self, node_id, demand):
        self.checks += 1
        return super().fits_now(node_id, demand)


def test_random_draws_from_a_kept_list_without_blind_draws_first():
    """While the list is kept (no room appeared), a decision draws from it at once: blind draws over 1,000
    nodes of which 2 fit missed, eight fit checks per decision."""
    v = CountingView()
    for i in range(1000):
        v.set_node(f"n{i:04d}", {"CPU": 4})
    for n in v.nodes[:998]:
        v.reserve(n, {"CPU": 4})
    p = RandomPolicy(PolicyOptions(seed=4))
    assert p.choose(CPU1, v) in v.nodes[998:]  # lists the two fitting nodes
    v.checks = 0
    for _ in range(50):
        assert p.choose(CPU1, v) in v.nodes[998:]
    assert v.checks == 50  # one check per decision: each draw from the list of two fits


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
exact_shapes = st.sampled_from(
    [{"CPU": 4}, {"CPU": 8}, {"CPU": 8, "GPU": 2}, {"CPU": 16, "memory": 8}, {"CPU": 2, "GPU": 4}]
)
exact_demands = st.sampled_from(
    [{"CPU": 1}, {"CPU": 2}, {"CPU": 1, "GPU": 1}, {"GPU": 2}, {"CPU": 4, "memory": 2}, {"memory": 1}]
)


@settings(max_examples=80, deadline=None)
@given(
    caps=st.lists(exact_shapes, min_size=1, max_size=10),
    history=st.lists(st.tuples(st.integers(0, 9), exact_demands), max_size=40),
    task=exact_demands,
    overcommit=st.sampled_from([1.0, 2.0]),
)
def test_greedy_and_pack_match_a_full_scan(caps, history, task, overcommit):
    v = view_of({f"n{i}": c for i, c in enumerate(caps)}, overcommit)
    greedy, pack = build_policy("greedy", SMALL), build_policy("pack", SMALL)
    if not v.could_ever_fit(task):
        return  # infeasible: the brain's answer, never a policy's
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
    assert build_policy("greedy").choose(CPU1, v) == "c"
    # pack: used after placing -> a (2+1)/4 = .75, b 1/4 = .25, c 1/8 = .125 -> a
    assert build_policy("pack").choose(CPU1, v) == "a"
    v.reserve("a", {"CPU": 2})  # a is full now: pack takes the next fullest, b (.25) over c (.125)
    assert build_policy("pack").choose(CPU1, v) == "b"


def test_greedy_and_pack_break_ties_by_node_id():
    v = view_of({"n2": {"CPU": 4}, "n1": {"CPU": 4}, "n3": {"CPU": 4}})
    assert build_policy("greedy").choose(CPU1, v) == "n1"
    assert build_policy("pack").choose(CPU1, v) == "n1"
    v.reserve("n1", {"CPU": 1})
    assert build_policy("greedy").choose(CPU1, v) == "n2"  # n2 and n3 tie at .75: smaller id
    assert build_policy("pack").choose(CPU1, v) == "n1"


def test_greedy_multi_resource_averages_fractions():
    v = view_of({"cpuheavy": {"CPU": 16, "GPU": 1}, "gpuheavy": {"CPU": 4, "GPU": 4}})
    t = TaskDemand({"CPU": 2, "GPU": 1})
    # cpuheavy: ((16-2)/16 + (1-1)/1) / 2 = (.875 + 0) / 2 = .4375
    # gpuheavy: ((4-2)/4 + (4-1)/4) / 2 = (.5 + .75) / 2 = .625 -> gpuheavy
    assert build_policy("greedy").choose(t, v) == "gpuheavy"
    assert build_policy("pack").choose(t, v) == "cpuheavy"  # (.125 + 1) / 2 = .5625 > .375


def test_many_capacity_classes_still_pick_a_fitting_node():
    # Per-node memory sizes: every node its own class -> the sampled path.
    v = view_of({f"n{i:03d}": {"CPU": 4, "memory": 1000 + i} for i in range(200)})
    t = TaskDemand({"CPU": 1, "memory": 10})
    for policy in (build_policy("greedy", SMALL), build_policy("pack", SMALL)):
        node = policy.choose(t, v)
        assert node is not None and v.fits_now(node, t.resources)
    for n in v.nodes[:-1]:
        v.reserve(n, {"CPU": 4})
    assert build_policy("greedy", SMALL).choose(t, v) == v.nodes[-1]  # beyond the sample: full walk
