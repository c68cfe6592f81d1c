"""greedy and pack's scores (and the view's dominant share): table tests, arithmetic in the comments (k8s style)."""

from __future__ import annotations

import math

import pytest

from raysched.core.view import dominant_share
from raysched.policies.noderesources import least_allocated_score, most_allocated_score

INF = math.inf


@pytest.mark.parametrize(
    "capacity, reserved, demand, least, most",
    [
        # empty node, 1 of 4 CPU: left (4-0-1)/4 = .75; used (0+1)/4 = .25
        ({"CPU": 4}, {}, {"CPU": 1}, 0.75, 0.25),
        # half full: left (4-2-1)/4 = .25; used (2+1)/4 = .75
        ({"CPU": 4}, {"CPU": 2}, {"CPU": 1}, 0.25, 0.75),
        # exactly full after placing: left (4-3-1)/4 = 0; used 4/4 = 1
        ({"CPU": 4}, {"CPU": 3}, {"CPU": 1}, 0.0, 1.0),
        # two resources, averaged: CPU (8-2-2)/8 = .5, memory (100-0-50)/100 = .5 -> .5
        #   used: CPU (2+2)/8 = .5, memory 50/100 = .5 -> .5
        ({"CPU": 8, "memory": 100}, {"CPU": 2}, {"CPU": 2, "memory": 50}, 0.5, 0.5),
        # unequal fractions: CPU (4-0-1)/4 = .75, GPU (2-1-1)/2 = 0 -> (.75+0)/2 = .375
        #   used: CPU 1/4 = .25, GPU (1+1)/2 = 1 -> (.25+1)/2 = .625
        ({"CPU": 4, "GPU": 2}, {"GPU": 1}, {"CPU": 1, "GPU": 1}, 0.375, 0.625),
        # only demanded resources count: GPU is reserved but not asked for
        ({"CPU": 4, "GPU": 2}, {"GPU": 2}, {"CPU": 2}, 0.5, 0.5),
        # zero demands are ignored: CPU 0 -> scored on memory only, (10-5)/10 = .5
        ({"CPU": 4, "memory": 10}, {}, {"CPU": 0, "memory": 5}, 0.5, 0.5),
        # overcommit is not clamped: (4-6-1)/4 = -.75; used (6+1)/4 = 1.75
        ({"CPU": 4}, {"CPU": 6}, {"CPU": 1}, -0.75, 1.75),
        # zero capacity for a demanded resource: cannot host -> -inf for both
        ({"CPU": 4, "GPU": 0}, {}, {"GPU": 1}, -INF, -INF),
        # absent resource = zero capacity
        ({"CPU": 4}, {}, {"CPU": 1, "custom": 1}, -INF, -INF),
        # empty demand: nothing to compare -> 0
        ({"CPU": 4}, {"CPU": 1}, {}, 0.0, 0.0),
    ],
)
def test_least_and_most_allocated(capacity, reserved, demand, least, most):
    assert least_allocated_score(capacity, reserved, demand) == pytest.approx(least)
    assert most_allocated_score(capacity, reserved, demand) == pytest.approx(most)


@pytest.mark.parametrize(
    "capacity, reserved, share",
    [
        ({"CPU": 4}, {}, 0.0),
        # max(1/4, 50/100) = .5
        ({"CPU": 4, "memory": 100}, {"CPU": 1, "memory": 50}, 0.5),
        # overcommitted: 6/4 = 1.5
        ({"CPU": 4}, {"CPU": 6}, 1.5),
        # reserved on zero capacity: inf
        ({"CPU": 4, "GPU": 0}, {"GPU": 1}, INF),
        # reserved zero on zero capacity: ignored
        ({"CPU": 4}, {"GPU": 0.0, "CPU": 2}, 0.5),
    ],
)
def test_dominant_share(capacity, reserved, share):
    assert dominant_share(capacity, reserved) == pytest.approx(share)
