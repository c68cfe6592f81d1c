"""Services: long-lived replicas of a class, placed by the brain, with keyed calls routed to them.

A job file declares one with `service` and sends calls as tasks whose function is
a method of it::

    @raysched.service(num_cpus=1, replicas=4)
    class Shard:
        def __init__(self):            # once per replica, on the node the brain chose
            self.models = {}
        def predict(self, model_id, x):
            return {"items": 1}

    def tasks():
        yield raysched.Task(Shard.predict, args=("m1", 0), key="m1")

`Shard` becomes a `Service`; `Shard.predict` is a `ServiceMethod`, a call's function.
The class itself travels to the replicas (pickled with the job), never runs in the driver.
`raysched deploy` keeps a job file's services up past one run; `raysched.get_service(name)`
gives any program a handle to call them (`raysched.deployment`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raysched.core.autoscale import Autoscale
from raysched.job import DEMAND_ATTR, raw_demand

__all__ = ["Autoscale", "Service", "ServiceMethod", "ServiceSpec", "service", "spec_of"]

_SPEC_ATTR = "__raysched_service__"


@dataclass(frozen=True)
class ServiceSpec:
    """What raysched reads of a service: its class, its name, how many replicas (at the start, and at most when
    it autoscales), calls at once per replica, and how it autoscales."""

    cls: type
    name: str
    replicas: int  # at the start, and the fewest it keeps
    max_concurrency: int
    max_replicas: int | None = None  # the most it grows to (None: ``replicas``, no autoscaling)
    autoscale: Autoscale = field(default_factory=Autoscale)

    @property
    def high(self) -> int:
        """The most replicas it may have."""
        return self.max_replicas if self.max_replicas is not None else self.replicas

    def replica(self, index: int) -> str:
        """How a replica is named in rows, the sidecar and status: ``Shard#2``."""
        return f"{self.name}#{index}"


class Service:
    """A declared service. Its attributes are its class's methods (as `ServiceMethod`); raysched reads it with
    `spec_of`, so no name of the user's class is shadowed."""

    kind = "service"  # how errors name it

    def __init__(
        self,
        cls: type,
        raw: Mapping[str, Any],
        replicas: int,
        max_concurrency: int,
        max_replicas: int | None = None,
        autoscale: Autoscale | None = None,
    ) -> None:
        spec = ServiceSpec(cls, cls.__name__, replicas, max_concurrency, max_replicas, autoscale or Autoscale())
        self.__dict__[_SPEC_ATTR] = spec
        self.__dict__[DEMAND_ATTR] = dict(raw)  # read (and validated) like a task function's demand
        self.__dict__["__qualname__"] = cls.__qualname__

    def __getattr__(self, method: str) -> ServiceMethod:
        spec = self.__dict__.get(_SPEC_ATTR)
        if spec is None or method.startswith("_") or not callable(getattr(spec.cls, method, None)):
            raise AttributeError(f"service has no method {method!r}")
        call = self.__dict__[method] = ServiceMethod(self, method)  # one object per method: equal is identical
        return call

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as its spec and demand (a deployed service's controller gets it): the methods it cached in its
        ``__dict__`` are made again on use, so pickling never walks a dict that a lookup may grow."""
        spec = spec_of(self)
        return (
            Service,
            (
                spec.cls,
                self.__dict__[DEMAND_ATTR],
                spec.replicas,
                spec.max_concurrency,
                spec.max_replicas,
                spec.autoscale,
            ),
        )

    def __repr__(self) -> str:
        spec = spec_of(self)
        count = f"{spec.replicas}" if spec.high == spec.replicas else f"{spec.replicas}-{spec.high}"
        return f"<raysched service {spec.name} x{count}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = spec_of(self).name
        raise TypeError(
            f"service {name} is not created by the job: raysched creates its replicas; "
            f"send calls with raysched.Task({name}.method, args=(...), key=...), or, once it is deployed "
            f"(raysched deploy), from any program with raysched.get_service({name!r}).method.remote(..., key=...)"
        )


def spec_of(declared: Service) -> ServiceSpec:
    """The spec of a declared service."""
    spec: ServiceSpec = declared.__dict__[_SPEC_ATTR]
    return spec


class ServiceMethod:
    """``Service.method``: the function of a call. A task with one is routed to a replica, not placed on a node."""

    def __init__(self, owner: Service, method: str) -> None:
        self.service = owner
        self.method = method
        self.__name__ = method
        self.__qualname__ = f"{spec_of(owner).name}.{method}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        service, method = self.__qualname__.split(".", 1)
        raise TypeError(
            f"{self.__qualname__} runs on a replica: yield raysched.Task({self.__qualname__}, args=(...)) from "
            f"tasks(), or call a deployed service (raysched deploy) from any program: "
            f"raysched.get_service({service!r}).{method}.remote(..., key=...) returns a Ray ObjectRef of its value"
        )

    def __repr__(self) -> str:
        return f"<raysched call {self.__qualname__}>"


def service(
    num_cpus: float = 1,
    num_gpus: float = 0,
    memory: float = 0,
    resources: Mapping[str, float] | None = None,
    replicas: int | tuple[int, int] = 1,
    max_concurrency: int = 1,
    autoscale: Autoscale | None = None,
) -> Callable[[type], Service]:
    """Declare a service: ``replicas`` copies of the class, each holding this demand while it lives.

    The demand arguments are `raysched.task`'s. A replica runs one call at a time unless
    ``max_concurrency`` says more (Ray's actor option of that name); calls to it queue there.
    ``replicas=(low, high)`` autoscales: it starts with ``low`` and grows up to ``high`` while calls
    queue beyond a target per replica, shrinking back when idle (`Autoscale` holds the knobs).
    """
    if isinstance(num_cpus, type):  # @raysched.service without its parentheses
        raise TypeError(
            f"write @raysched.service(...) with parentheses above class {num_cpus.__name__}, "
            "e.g. @raysched.service(num_cpus=1, replicas=4)"
        )
    low, high = replica_range(replicas)
    if not _whole(max_concurrency):
        raise ValueError(f"@raysched.service max_concurrency must be a whole number >= 1, got {max_concurrency!r}")
    if autoscale is not None and not isinstance(autoscale, Autoscale):
        raise TypeError(
            f"@raysched.service autoscale takes raysched.Autoscale(target=..., up_delay_s=..., down_delay_s=...), "
            f"got {autoscale!r}"
        )
    raw = raw_demand(num_cpus, num_gpus, memory, resources)

    def declare(cls: type) -> Service:
        if not isinstance(cls, type):
            raise TypeError("@raysched.service decorates a class")
        return Service(cls, raw, low, max_concurrency, high if high != low else None, autoscale)

    return declare


def replica_range(replicas: object) -> tuple[int, int]:
    """``replicas=N`` or ``replicas=(low, high)`` as (low, high); a clear ValueError for anything else."""
    if isinstance(replicas, (tuple, list)):
        if len(replicas) != 2 or not all(_whole(v) for v in replicas):
            raise ValueError(
                f"@raysched.service replicas=(low, high) takes two whole numbers >= 1, got {replicas!r}; "
                "e.g. replicas=(1, 8) starts 1 replica and grows to 8 under load"
            )
        low, high = int(replicas[0]), int(replicas[1])
        if low > high:
            raise ValueError(f"@raysched.service replicas=(low, high) needs low <= high, got {replicas!r}")
        return low, high
    if not _whole(replicas):
        raise ValueError(
            f"@raysched.service replicas must be a whole number >= 1 or a pair (low, high), got {replicas!r}"
        )
    return int(replicas), int(replicas)  # type: ignore[call-overload]


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
