"""KeyDemand: each key's share of recent work in bounded memory, and the spread that share needs."""

from __future__ import annotations

import random

import pytest

from raysched.policies.key_demand import KeyDemand


def test_shares_follow_the_tasks_seen() -> None:
    demand = KeyDemand(horizon=1e9)  # no decay to speak of
    for i in range(1000):
        demand.add("hot" if i % 4 == 0 else f"cold-{i}")
    assert demand.share("hot") == pytest.approx(0.25, abs=1e-3)
    assert demand.share("cold-1") == pytest.approx(0.001, abs=1e-4)
    assert demand.share("never-seen") == 0.0


def test_old_work_fades_after_the_horizon() -> None:
    demand = KeyDemand(horizon=1000)
    demand.add("was-hot", 1000)
    assert demand.share("was-hot") == pytest.approx(1.0)
    for i in range(5000):  # five horizons of other keys: exp(-5) of its weight is left
        demand.add(f"k{i % 50}")
    assert demand.share("was-hot") < 0.01


def test_a_million_distinct_keys_cost_a_bounded_table_and_the_head_survives() -> None:
    demand = KeyDemand(horizon=1e6, keep=100)
    rng = random.Random(3)
    for i in range(200_000):
        demand.add("head" if i % 10 == 0 else f"tail-{rng.randrange(10**9)}")
        assert len(demand) <= 2 * 100
    assert demand.share("head") == pytest.approx(0.1, rel=0.05)


def test_spread_grows_at_once_shrinks_only_at_half_and_needs_evidence() -> None:
    demand = KeyDemand()
    demand.add("k", 100)
    assert demand.spread("k", 0.9) == 1  # fits one node: a cold key
    assert demand.spread("k", 6.2) == 7  # grows at once
    assert demand.spread("k", 5.0) == 7  # not below half: kept (no flapping)
    assert demand.spread("k", 3.4) == 7  # needs 4 of 7: more than half, kept
    assert demand.spread("k", 3.0) == 3  # needs 3 of 7: at half or less, shrinks
    assert demand.hot() == {"k": 3}
    assert demand.spread("k", 1.0) == 1 and demand.hot() == {}  # back to one node: cold again
    demand.add("new", 4)
    assert demand.spread("new", 50.0) == 2  # four tasks are evidence for two nodes, not fifty


@pytest.mark.parametrize(
    "have, need, after",
    [
        (2, 1.0, 1),  # needs 1 of 2: exactly half, back to one node (a cold key again, exact affinity)
        (4, 2.0, 2),  # exactly half: shrinks
        (6, 3.0, 3),  # exactly half: shrinks
        (4, 2.01, 4),  # needs ceil(2.01) = 3 of 4: more than half, kept
        (5, 2.5, 5),  # needs 3 of 5: more than half, kept
        (8, 3.9, 4),  # needs 4 of 8: half, shrinks to what it needs
    ],
)
def test_spread_shrinks_at_exactly_half(have: int, need: float, after: int) -> None:
    """The hysteresis boundary: a spread of d shrinks once the need is d / 2 or less. At "less than half" a key
    at d = 2 could never shrink (it would need 0 nodes), and would stay hot for ever."""
    demand = KeyDemand()
    demand.add("k", 100)  # evidence for up to 50 nodes
    assert demand.spread("k", float(have)) == have
    assert demand.spread("k", need) == after
    assert demand.is_hot("k") == (after > 1)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        KeyDemand(horizon=0)
    with pytest.raises(ValueError, match="keep"):
        KeyDemand(keep=0)


def test_adding_a_batch_is_adding_its_tasks_one_by_one():
    """`add(key, count)` sums in registers: the very same floats as ``count`` single adds (placements read them).
    (Forgetting light keys happens after a whole batch, as it always did: keep enough keys here that it does not.)"""
    batch, single = KeyDemand(horizon=50.0, keep=64), KeyDemand(horizon=50.0, keep=64)
    for i, count in enumerate([3, 1, 0, 7, 2, 40, 1, 5, 9, 3] * 20):
        key = f"k{i % 13}"
        batch.add(key, count)
        for _ in range(count):
            single.add(key)
        assert batch._counts == single._counts and list(batch._counts) == list(single._counts)
        assert (batch._unit, batch._total) == (single._unit, single._total)
