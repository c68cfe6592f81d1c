"""ResourceView: ledger arithmetic, validation without corruption, indices."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysched.core.view import LedgerError, ResourceView, UnknownNodeError


def view_of(caps: dict[str, dict[str, float]], overcommit: float = 1.0) -> ResourceView:
    v = ResourceView(overcommit)
    for n, c in caps.items():
        v.set_node(n, c)
    return v


def snapshot(v: ResourceView):
    return (
        v.version,
        v.nodes,
        {n: dict(v.capacity(n)) for n in v.nodes},
        {n: dict(v.reserved(n)) for n in v.nodes},
        {n: v.tasks_in_flight(n) for n in v.nodes},
        v.total_tasks_in_flight,
        {n: v.load(n) for n in v.nodes},
    )


@pytest.mark.parametrize("o", [0.5, 0, float("inf"), float("nan"), True, "2"])
def test_overcommit_validated(o):
    with pytest.raises(ValueError, match="overcommit"):
        ResourceView(o)


def test_membership_and_version():
    v = ResourceView()
    assert v.nodes == () and len(v) == 0 and v.version == 0
    v.set_node("b", {"CPU": 2})
    v.set_node("a", {"CPU": 4})
    assert v.nodes == ("a", "b") and "a" in v and v.version == 2
    v.set_node("a", {"CPU": 4})  # unchanged capacity: no version bump
    assert v.version == 2
    v.set_node("a", {"CPU": 8})
    assert v.version == 3
    v.reserve("a", {"CPU": 1})  # the ledger is not membership
    assert v.version == 3
    v.remove_node("b")
    assert v.nodes == ("a",) and v.version == 4


def test_unknown_node_everywhere():
    v = view_of({"a": {"CPU": 1}})
    for call in (
        lambda: v.remove_node("zz"),
        lambda: v.reserve("zz", {"CPU": 1}),
        lambda: v.release("zz", {"CPU": 1}),
        lambda: v.fits_now("zz", {"CPU": 1}),
        lambda: v.capacity("zz"),
        lambda: v.reserved("zz"),
        lambda: v.tasks_in_flight("zz"),
        lambda: v.load("zz"),
        lambda: v.weight("zz"),
    ):
        with pytest.raises(UnknownNodeError) as err:
            call()
        assert isinstance(err.value, KeyError)
        assert str(err.value).startswith("unknown node 'zz'")


@pytest.mark.parametrize(
    "demand, match",
    [
        ({"CPU": -1}, "CPU must be a finite amount >= 0"),
        ({"CPU": float("nan")}, "CPU must be a finite amount"),
        ({"CPU": float("inf")}, "CPU must be a finite amount"),
        ({"CPU": "1"}, "CPU must be a number"),
        ({"": 1}, "resource names"),
        ({"CPU": 1, "GPU": -0.5}, "GPU must be"),  # valid part must not be applied either
    ],
)
def test_bad_demand_leaves_state_unchanged(demand, match):
    v = view_of({"a": {"CPU": 4, "GPU": 1}, "b": {"CPU": 2}})
    v.reserve("a", {"CPU": 1})
    v.ordered_index(("CPU",))  # indices must not be corrupted either
    before = snapshot(v)
    with pytest.raises(ValueError, match=match):
        v.reserve("a", demand)
    with pytest.raises(ValueError, match=match):
        v.release("a", demand)
    assert snapshot(v) == before
    assert set(v.fitting_nodes({"CPU": 1})) == {"a", "b"}


def test_demand_must_be_a_mapping():
    v = view_of({"a": {"CPU": 1}})
    with pytest.raises(TypeError, match="mapping"):
        v.reserve("a", [("CPU", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize("cap", [{"CPU": -1}, {"CPU": float("nan")}, {"CPU": "x"}, {3: 1}])
def test_bad_capacity_leaves_state_unchanged(cap):
    v = view_of({"a": {"CPU": 4}})
    before = snapshot(v)
    with pytest.raises(ValueError, match="capacity of node"):
        v.set_node("a", cap)
    with pytest.raises(ValueError):
        v.set_node("new", cap)
    assert snapshot(v) == before


@pytest.mark.parametrize("node_id", ["", None, 7])
def test_bad_node_id(node_id):
    with pytest.raises(ValueError, match="node_id"):
        ResourceView().set_node(node_id, {"CPU": 1})


def test_reserve_release_arithmetic():
    v = view_of({"a": {"CPU": 4, "memory": 100}})
    v.reserve("a", {"CPU": 1.5, "memory": 30})
    v.reserve("a", {"CPU": 1})
    assert dict(v.reserved("a")) == {"CPU": 2.5, "memory": 30}
    assert v.tasks_in_flight("a") == 2 and v.total_tasks_in_flight == 2
    v.release("a", {"CPU": 1})
    v.release("a", {"CPU": 1.5, "memory": 30})
    assert dict(v.reserved("a")) == {}
    assert v.tasks_in_flight("a") == 0 and v.total_tasks_in_flight == 0


def test_a_double_release_is_an_error_and_changes_nothing():
    """Regression: releases were clamped at zero, so a task released twice went unnoticed."""
    v = view_of({"a": {"CPU": 4, "memory": 100}})
    v.reserve("a", {"CPU": 1, "memory": 30}, key="k")
    before = snapshot(v)
    with pytest.raises(LedgerError, match="holds only"):
        v.release("a", {"CPU": 5})  # more than is reserved
    with pytest.raises(LedgerError, match="key 'other'"):
        v.release("a", {"CPU": 1, "memory": 30}, key="other")  # a key the node holds none of
    assert snapshot(v) == before
    v.release("a", {"CPU": 1, "memory": 30}, key="k")
    with pytest.raises(LedgerError, match="holds no task"):
        v.release("a", {"CPU": 1, "memory": 30}, key="k")  # the same task again
    with pytest.raises(LedgerError, match="no task waits"):
        v.unpark("a")
    assert v.tasks_in_flight("a") == 0 and v.key_assigned("k", "a") == 0


def test_the_brains_checked_ledger_path_counts_and_refuses_as_the_public_one():
    """reserve_checked/release_checked skip only the validation of a demand the brain validated already."""
    checked, public = view_of({"a": {"CPU": 4}}), view_of({"a": {"CPU": 4}})
    for key in ("k", "k", "j", None):
        checked.reserve_checked("a", {"CPU": 1.0}, key)
        public.reserve("a", {"CPU": 1.0}, key)
        assert snapshot(checked) == snapshot(public)
        assert (checked.keys_on("a"), checked.total_keys) == (public.keys_on("a"), public.total_keys)
    for key in ("k", "j", "k", None):
        checked.release_checked("a", {"CPU": 1.0}, key)
        public.release("a", {"CPU": 1.0}, key)
        assert snapshot(checked) == snapshot(public)
        assert (checked.keys_on("a"), checked.total_keys) == (public.keys_on("a"), public.total_keys)
    with pytest.raises(LedgerError, match="holds no task"):
        checked.release_checked("a", {"CPU": 1.0}, "k")


def test_parking_a_group_of_one_key_counts_as_parking_each_of_its_tasks():
    group, each = view_of({"a": {"CPU": 4}}), view_of({"a": {"CPU": 4}})
    group.park("a", "k", count=3)
    for _ in range(3):
        each.park("a", "k")
    assert (group.parked("a"), group.key_parked("k", "a"), group.keys_on("a"), group.total_keys) == (
        each.parked("a"),
        each.key_parked("k", "a"),
        each.keys_on("a"),
        each.total_keys,
    )
    with pytest.raises(ValueError, match="count must be at least 1"):
        group.park("a", "k", count=0)


def test_assigned_work_counts_placed_and_parked_tasks_and_keys():
    v = view_of({"a": {"CPU": 2}, "b": {"CPU": 2}})
    v.reserve("a", {"CPU": 1}, key="k1")
    v.park("a", key="k1")  # a task waiting in the brain for a as its home
    v.park("a", key="k2")
    v.reserve("b", {"CPU": 1}, key="k1")
    # a: 1 placed + 2 parked = 3; b: 1 placed; total 4 (pending tasks are not assigned to a node)
    assert (v.assigned("a"), v.assigned("b"), v.total_assigned) == (3, 1, 4)
    assert (v.tasks_in_flight("a"), v.parked("a"), v.total_parked) == (1, 2, 2)
    assert (v.key_assigned("k1", "a"), v.key_assigned("k2", "a"), v.key_assigned("k1", "b")) == (2, 1, 1)
    assert v.load("a") == 0.5  # parked tasks hold no resources: 1 CPU of 2
    v.unpark("a", key="k1")
    v.remove_node("a")  # its placed and parked work go with it
    assert (v.total_assigned, v.total_parked, v.key_assigned("k2", "a")) == (1, 0, 0)


def test_overcommit_is_the_admission_limit_and_can_change():
    v = view_of({"a": {"CPU": 2}})
    v.reserve("a", {"CPU": 2})
    assert not v.fits_now("a", {"CPU": 1})  # 2 + 1 > 2 x 1.0
    v.overcommit = 2.0  # the brain sets it for the submission it places
    assert v.fits_now("a", {"CPU": 2})  # 2 + 2 <= 2 x 2.0
    assert not v.fits_now("a", {"CPU": 3})  # bigger than the node: never
    with pytest.raises(ValueError, match="overcommit"):
        v.overcommit = 0.5


def test_capacity_and_reserved_are_read_only():
    v = view_of({"a": {"CPU": 4}})
    with pytest.raises(TypeError):
        v.capacity("a")["CPU"] = 100  # type: ignore[index]
    with pytest.raises(TypeError):
        v.reserved("a")["CPU"] = 100  # type: ignore[index]


def test_fits_now_strict_and_overcommit():
    v = view_of({"a": {"CPU": 4, "GPU": 1}})
    assert v.fits_now("a", {"CPU": 4})
    assert not v.fits_now("a", {"CPU": 4.5})
    assert not v.fits_now("a", {"custom": 1})  # absent resource counts as 0
    assert v.fits_now("a", {"custom": 0, "CPU": 0})  # zero demands always fit
    v.reserve("a", {"CPU": 3})
    assert v.fits_now("a", {"CPU": 1}) and not v.fits_now("a", {"CPU": 1.5})
    o = view_of({"a": {"CPU": 4}}, overcommit=2.0)
    o.reserve("a", {"CPU": 7})
    assert o.fits_now("a", {"CPU": 1})  # 7 + 1 <= 4 * 2
    assert not o.fits_now("a", {"CPU": 2})  # 7 + 2 > 8
    assert not o.fits_now("a", {"CPU": 5})  # bigger than the node: never, even overcommitted


def test_fits_now_rejects_negative_or_nan_demand():
    v = view_of({"a": {"CPU": 4}})
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="CPU"):
            v.fits_now("a", {"CPU": bad})


def test_could_ever_fit_and_cache_invalidation():
    # Regression: the per-demand cache must be dropped on membership/capacity change.
    v = view_of({"a": {"CPU": 4}})
    assert not v.could_ever_fit({"CPU": 8})
    v.set_node("b", {"CPU": 8})
    assert v.could_ever_fit({"CPU": 8})
    v.remove_node("b")
    assert not v.could_ever_fit({"CPU": 8})
    v.set_node("a", {"CPU": 16})
    assert v.could_ever_fit({"CPU": 8})
    v.reserve("a", {"CPU": 16})  # full now, but could still fit later
    assert v.could_ever_fit({"CPU": 8})
    assert v.could_ever_fit({}) and not ResourceView().could_ever_fit({})
    assert not v.could_ever_fit({"CPU": 1, "GPU": 1})
    with pytest.raises(ValueError):
        v.could_ever_fit({"CPU": -1})


def test_load_is_dominant_share_with_zero_capacity_explicit():
    v = view_of({"a": {"CPU": 4, "memory": 100, "GPU": 0}})
    assert v.load("a") == 0.0
    v.reserve("a", {"CPU": 1, "memory": 50})
    assert v.load("a") == 0.5  # max(1/4, 50/100)
    v.reserve("a", {"GPU": 1})  # reserved on a zero-capacity resource
    assert v.load("a") == math.inf
    v.release("a", {"GPU": 1})
    assert v.load("a") == 0.5


def test_weight_is_cpu_or_one_capped():
    v = view_of({"a": {"CPU": 8}, "b": {"GPU": 2}, "c": {"CPU": 0}, "d": {"CPU": 1000}})
    # d: 1000 CPUs count as MAX_RING_CPUS = 128 on the ring
    assert (v.weight("a"), v.weight("b"), v.weight("c"), v.weight("d")) == (8.0, 1.0, 1.0, 128.0)


def test_largest_node():
    v = view_of({"a": {"CPU": 4}, "b": {"CPU": 16, "GPU": 1}, "c": {"CPU": 16}})
    assert v.largest_node() == ("b", {"CPU": 16, "GPU": 1})
    with pytest.raises(LookupError, match="no alive nodes"):
        ResourceView().largest_node()


def test_remove_node_drops_its_reservations():
    v = view_of({"a": {"CPU": 4}, "b": {"CPU": 4}})
    v.reserve("a", {"CPU": 2})
    v.reserve("b", {"CPU": 1})
    v.remove_node("a")
    assert v.total_tasks_in_flight == 1
    v.set_node("a", {"CPU": 4})  # comes back empty
    assert dict(v.reserved("a")) == {} and v.tasks_in_flight("a") == 0


# -- the ordered index agrees with brute force under any history --------------------
ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "remove", "reserve", "release", "ask"]),
        st.sampled_from(["n0", "n1", "n2", "n3", "n4"]),
        st.sampled_from([{"CPU": 1}, {"CPU": 2, "GPU": 1}, {"GPU": 1}, {"memory": 3}, {}]),
        st.sampled_from([{"CPU": 4}, {"CPU": 4, "GPU": 2}, {"CPU": 8, "memory": 8}, {"GPU": 1}]),
    ),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(history=ops, overcommit=st.sampled_from([1.0, 1.5]))
def test_fitting_nodes_match_brute_force(history, overcommit):
    v = ResourceView(overcommit)
    demands = [{"CPU": 1}, {"CPU": 2, "GPU": 1}, {"GPU": 1}, {"memory": 4}, {"CPU": 3, "memory": 1}]
    for d in demands[:2]:
        v.fitting_nodes(d)  # build some indices early so updates are exercised
    held: list[tuple[str, dict]] = []  # releases only of what was reserved (a double release is an error)
    for op, node, demand, cap in history:
        if op == "set":
            v.set_node(node, cap)
        elif op == "ask":  # a question between changes: the indexes file the nodes changed since the last one
            v.fitting_nodes(demand)
        elif node not in v:
            continue
        elif op == "remove":
            v.remove_node(node)
            held = [(n, d) for n, d in held if n != node]
        elif op == "reserve":
            v.reserve(node, demand)
            held.append((node, demand))
        elif held:
            v.release(*held.pop(0))
    for d in demands:
        brute = {n for n in v.nodes if v.fits_now(n, d)}
        got = v.fitting_nodes(d)
        assert set(got) == brute and len(got) == len(brute)
        assert v.any_fits_now(d) == bool(brute)
        names = tuple(sorted(r for r, a in d.items() if a > 0))
        for descending in (False, True):  # each capacity class in its order: least (or most) allocated, then id
            idx = v.ordered_index(names, descending)
            for caps in idx.classes:
                walk = list(v.fitting_in_class(idx, caps, d, tuple(d[r] for r in names)))
                share = {n: sum(v.reserved(n).get(r, 0.0) / c for r, c in zip(names, caps, strict=True)) for n in walk}
                sign = -1.0 if descending else 1.0
                assert walk == sorted(walk, key=lambda n: (sign * share[n], n))
                assert set(walk) == {n for n in brute if idx.caps_of(v.capacity(n)) == caps}


def test_the_index_files_a_node_again_after_its_reservations_change() -> None:
    v = ResourceView()
    for node in ("a", "b", "c"):
        v.set_node(node, {"CPU": 4})
    assert v.fitting_nodes({"CPU": 1}) == ["a", "b", "c"]  # builds the index: equal shares, by id
    v.reserve("a", {"CPU": 2})
    v.reserve("b", {"CPU": 1})
    assert v.fitting_nodes({"CPU": 1}) == ["c", "b", "a"]  # least allocated first
    assert v.fitting_nodes({"CPU": 3}) == ["c", "b"]  # a's share is past the bound: the walk stops there
    v.release("a", {"CPU": 2})
    v.reserve("c", {"CPU": 4})
    assert v.fitting_nodes({"CPU": 1}) == ["a", "b"]
    idx = v.ordered_index(("CPU",), descending=True)  # pack's order: fullest first
    assert list(v.fitting_in_class(idx, (4.0,), {"CPU": 1}, (1.0,))) == ["b", "a"]
