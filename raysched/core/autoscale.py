"""How many replicas a service wants, from its load over time: the autoscaling rule, without Ray.

A service declared with ``replicas=(low, high)`` grows when calls queue beyond a target per
replica and shrinks when idle. The load is every call outstanding at the service (running or
queued at a replica, or waiting in a router for one); the count it asks for is
``ceil(load / target)`` kept within ``[low, high]``. A change is made only once the load has
asked for it for a while (``up_delay_s`` to grow, ``down_delay_s`` to shrink), so a burst does
not start replicas that are idle by the time they are ready, and a pause between bursts does not
throw warm caches away. Over that while it grows to the *least* count asked for, and shrinks to the
*most* (the count the whole while needed). Who acts on the answer (a run's driver, a deployed
service's controller) adds replica ``Name#k`` with the next index, or drains and removes the
highest, so with hash routing only the keys the ring gives to that replica move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_DOWN_DELAY_S", "DEFAULT_TARGET_PER_SLOT", "DEFAULT_UP_DELAY_S", "Autoscale", "Autoscaler"]

DEFAULT_TARGET_PER_SLOT = 2.0  # calls outstanding per call slot of a replica (Ray Serve's target_ongoing_requests)
DEFAULT_UP_DELAY_S = 2.0  # a replica takes 1-3 s to start here: a shorter burst is over before it helps
DEFAULT_DOWN_DELAY_S = 30.0  # an idle replica keeps its warm cache this long in case the load comes back


@dataclass(frozen=True)
class Autoscale:
    """The knobs of autoscaling, validated once (``@raysched.service(replicas=(1, 8), autoscale=Autoscale(...))``).

    target: calls outstanding per replica the service aims at (None: 2 per call slot, i.e.
        ``2 * max_concurrency``). Lower: more replicas and less queueing; higher: fewer replicas, each busier.
    up_delay_s: how long the load must ask for more replicas before they are added. Shorter follows bursts
        sooner, and starts replicas for bursts that end before they are ready.
    down_delay_s: how long the load must ask for fewer before one is drained and removed. Shorter frees
        resources sooner, and loses warm caches between bursts.
    """

    target: float | None = None
    up_delay_s: float = DEFAULT_UP_DELAY_S
    down_delay_s: float = DEFAULT_DOWN_DELAY_S

    def __post_init__(self) -> None:
        if self.target is not None and not _number(self.target, above=0.0):
            raise ValueError(f"autoscale target must be a number of calls > 0, got {self.target!r}")
        for name in ("up_delay_s", "down_delay_s"):
            if not _number(getattr(self, name), above=None):
                raise ValueError(f"autoscale {name} must be a number of seconds >= 0, got {getattr(self, name)!r}")

    def target_for(self, max_concurrency: int) -> float:
        """Calls outstanding per replica to aim at, for replicas of ``max_concurrency`` call slots."""
        return float(self.target) if self.target is not None else DEFAULT_TARGET_PER_SLOT * max_concurrency


def _number(value: object, above: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > above if above is not None else value >= 0


class Autoscaler:
    """Samples of a service's load in, the replica count it wants out (see the module docstring)."""

    def __init__(self, low: int, high: int, rules: Autoscale | None = None, max_concurrency: int = 1) -> None:
        if not 1 <= low <= high:
            raise ValueError(f"autoscaling needs 1 <= low <= high, got ({low}, {high})")
        self.low, self.high = low, high
        self.rules = rules if rules is not None else Autoscale()
        self.target = self.rules.target_for(max_concurrency)
        self._up_since: float | None = None  # when the load first asked for more (this streak)
        self._up_to = 0  # the least it asked for since
        self._down_since: float | None = None
        self._down_to = 0  # the most it asked for since

    @property
    def scales(self) -> bool:
        """Whether the count can change at all (``low < high``)."""
        return self.low < self.high

    def asked(self, load: float) -> int:
        """The count this load alone asks for: ``ceil(load / target)`` within ``[low, high]``."""
        return min(self.high, max(self.low, math.ceil(max(0.0, load) / self.target - 1e-9)))

    def wanted(self, now: float, load: float, current: int) -> int:
        """The replica count to have now, given the load sampled at ``now`` and the ``current`` count."""
        if current < self.low or current > self.high:
            self._reset()
            return min(self.high, max(self.low, current))
        asked = self.asked(load)
        if asked > current:
            self._down_since = None
            if self._up_since is None:
                self._up_since, self._up_to = now, asked
            self._up_to = min(self._up_to, asked)
            if now - self._up_since >= self.rules.up_delay_s:
                wanted = self._up_to
                self._reset()
                return wanted
        elif asked < current:
            self._up_since = None
            if self._down_since is None:
                self._down_since, self._down_to = now, asked
            self._down_to = max(self._down_to, asked)
            if now - self._down_since >= self.rules.down_delay_s:
                wanted = self._down_to
                self._reset()
                return wanted
        else:
            self._reset()
        return current

    def _reset(self) -> None:
        self._up_since = self._down_since = None
