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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from raysched.job import DEMAND_ATTR, raw_demand

__all__ = ["Service", "ServiceMethod", "ServiceSpec", "service", "spec_of"]

_SPEC_ATTR = "__raysched_service__"


@dataclass(frozen=True)
class ServiceSpec:
    """What raysched reads of a service: its class, its name, how many replicas, calls at once per replica."""

    cls: type
    name: str
    replicas: int
    max_concurrency: int

    def replica(self, index: int) -> str:
        """How a replica is named in rows, the sidecar and status: ``Shard#2``."""
        return f"{self.name}#{index}"


class Service:
    """A declared service. Its attributes are its class's methods (as `ServiceMethod`); raysched reads it with
    `spec_of`, so no name of the user's class is shadowed."""

    kind = "service"  # how errors name it

    def __init__(self, cls: type, raw: Mapping[str, Any], replicas: int, max_concurrency: int) -> None:
        self.__dict__[_SPEC_ATTR] = ServiceSpec(cls, cls.__name__, replicas, max_concurrency)
        self.__dict__[DEMAND_ATTR] = dict(raw)  # read (and validated) like a task function's demand
        self.__dict__["__qualname__"] = cls.__qualname__

    def __getattr__(self, method: str) -> ServiceMethod:
        spec = self.__dict__.get(_SPEC_ATTR)
        if spec is None or method.startswith("_") or not callable(getattr(spec.cls, method, None)):
            raise AttributeError(f"service has no method {method!r}")
        call = self.__dict__[method] = ServiceMethod(self, method)  # one object per method: equal is identical
        return call

    def __repr__(self) -> str:
        spec = spec_of(self)
        return f"<raysched service {spec.name} x{spec.replicas}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = spec_of(self).name
        raise TypeError(
            f"service {name} is not created by the job: raysched creates its replicas; "
            f"send calls with raysched.Task({name}.method, args=(...), key=...)"
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
        raise TypeError(
            f"{self.__qualname__} runs on a replica: yield raysched.Task({self.__qualname__}, args=(...)) from tasks()"
        )

    def __repr__(self) -> str:
        return f"<raysched call {self.__qualname__}>"


def service(
    num_cpus: float = 1,
    num_gpus: float = 0,
    memory: float = 0,
    resources: Mapping[str, float] | None = None,
    replicas: int = 1,
    max_concurrency: int = 1,
) -> Callable[[type], Service]:
    """Declare a service: ``replicas`` copies of the class, each holding this demand for the whole run.

    The demand arguments are `raysched.task`'s. A replica runs one call at a time unless
    ``max_concurrency`` says more (Ray's actor option of that name); calls to it queue there.
    """
    if isinstance(num_cpus, type):  # @raysched.service without its parentheses
        raise TypeError(
            f"write @raysched.service(...) with parentheses above class {num_cpus.__name__}, "
            "e.g. @raysched.service(num_cpus=1, replicas=4)"
        )
    for name, value in (("replicas", replicas), ("max_concurrency", max_concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"@raysched.service {name} must be a whole number >= 1, got {value!r}")
    raw = raw_demand(num_cpus, num_gpus, memory, resources)

    def declare(cls: type) -> Service:
        if not isinstance(cls, type):
            raise TypeError("@raysched.service decorates a class")
        return Service(cls, raw, replicas, max_concurrency)

    return declare
