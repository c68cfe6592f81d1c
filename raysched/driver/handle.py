"""`raysched.get_service(NAME)`: a handle on a deployed service for any program, returning real values.

``handle.predict.remote(model_id, x, key=model_id)`` routes the call by the service's policy over its
routable replicas (`raysched.driver.table.TableRouter`, by the handle's cached copy of the controller's
table) and sends it straight to that replica's actor: the per-call path is a ring lookup and one actor
call, no round trip to the controller or the brain. It returns the Ray ObjectRef of the method's own
return value (any picklable value); an exception the method raises is raised by ``ray.get``, as Ray does.

A thread per handle keeps the table fresh and the counts honest: every `WATCH_S` it notes which of its
calls have finished (``ray.wait``, without fetching values), and every `REFRESH_S` it reports its
calls outstanding per replica to the controller and takes a newer table if there is one. A call sent to
a replica whose actor has died fails (``ray.get`` raises Ray's ``ActorDiedError``); it is not re-sent,
since the handle gave its ObjectRef away already. Once the controller has noticed (within about a
second) the table routes the replica's keys to stand-ins (the next replica clockwise on the ring with room
for them), and back to it when it is re-created under its name; no other key moves.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

from raysched.driver.controller import CONTROLLER_PREFIX, find_controller
from raysched.driver.table import REFRESH_S, RoutingTable, TableRouter

__all__ = ["WATCH_S", "MethodHandle", "NotDeployed", "ServiceHandle", "open_handle"]

WATCH_S = 0.05  # how often a handle notes which of its calls finished (outstanding counts, for routing by load)


class ServiceHandle:
    """A deployed service's methods, as ``handle.METHOD.remote(*args, key=K, **kwargs) -> ObjectRef``."""

    def __init__(self, name: str, controller: Any, table: RoutingTable) -> None:
        self._name = name
        self._controller = controller
        self._client_id = f"handle-{uuid.uuid4().hex[:8]}"
        self._router = TableRouter(table, ask=self._ask_homes)
        self._calls: dict[Any, str] = {}  # ObjectRef -> replica, until it is seen finished
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._gone = ""  # why the service can no longer be called (undeployed)
        self._thread = threading.Thread(target=self._watch, daemon=True, name=f"raysched-handle-{name}")
        self._thread.start()

    def _ask_homes(self, keys: list[str]) -> dict[str, str]:
        """New keys' homes from the controller: once per key for this handle, never per call."""
        import ray

        homes: dict[str, str] = ray.get(self._controller.place_keys.remote(keys), timeout=10)
        return homes

    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        """Closed by `close`, or the service was undeployed."""
        return self._closed.is_set()

    def __getattr__(self, method: str) -> MethodHandle:
        if method.startswith("_"):
            raise AttributeError(method)
        methods = self._router.table.methods
        if methods and method not in methods:
            raise AttributeError(f"service {self._name} has no method {method!r} (it has: {', '.join(methods)})")
        return MethodHandle(self, method)

    def __repr__(self) -> str:
        table = self._router.table
        return f"<raysched service handle {self._name}: {len(table.replicas)} replicas up, routed by {table.routing}>"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """A handle sent to a Ray task or actor becomes a handle of its own there."""
        return (open_handle, (self._name,))

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], key: object = None) -> Any:
        """Route one call and send it; its ObjectRef."""
        if self._gone:
            raise RuntimeError(self._gone)
        with self._lock:
            try:
                entry = self._router.pick(key)
            except LookupError:
                raise RuntimeError(
                    f"service {self._name} has no replica up right now (they are being re-created); retry shortly"
                ) from None
            ref = entry.handle.invoke.remote(method, args, kwargs)
            self._calls[ref] = entry.name
            self._router.sent(entry.name)
        return ref

    def close(self) -> None:
        """Stop the handle's thread; the controller stops counting its calls."""
        self._closed.set()
        with contextlib.suppress(Exception):
            self._controller.forget.remote(self._client_id)

    @property
    def outstanding(self) -> dict[str, int]:
        """This handle's calls not seen finished yet, per replica."""
        with self._lock:
            return dict(self._router.own)

    # -- the thread ------------------------------------------------------------------------------------
    def _watch(self) -> None:
        import ray

        since_sync = REFRESH_S
        while not self._closed.wait(WATCH_S):
            if not ray.is_initialized():  # the program ended its Ray session: never start another from here
                self._gone = f"service {self._name}: this process's Ray session ended; get a new handle"
                self._closed.set()
                return
            self._note_finished(ray)
            since_sync += WATCH_S
            if since_sync >= REFRESH_S:
                since_sync = 0.0
                self._sync(ray)

    def _note_finished(self, ray: Any) -> None:
        with self._lock:
            refs = list(self._calls)
        if not refs:
            return
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        with self._lock:
            for ref in done:
                name = self._calls.pop(ref, None)
                if name is not None:
                    self._router.done(name)

    def _sync(self, ray: Any) -> None:
        with self._lock:
            own = dict(self._router.own)
            known = self._router.table.version
        try:
            table = ray.get(self._controller.sync.remote(self._client_id, own, 0, known), timeout=10)
        except ray.exceptions.RayActorError:
            self._gone = f"service {self._name} is no longer deployed (undeployed?); deploy it and get a new handle"
            self._closed.set()
            return
        except ray.exceptions.GetTimeoutError:
            return  # a busy controller: keep the table we have
        if table is not None:
            with self._lock:
                self._router.update(table)


class MethodHandle:
    """``handle.METHOD``: ``.remote(*args, key=K, **kwargs)`` sends one call and returns its ObjectRef."""

    def __init__(self, owner: ServiceHandle, method: str) -> None:
        self._owner = owner
        self._method = method

    def remote(self, *args: Any, key: object = None, **kwargs: Any) -> Any:
        """Call METHOD(*args, **kwargs) on the replica the service's policy picks for ``key`` (hash: its ring owner,
        the same replica from every client); the Ray ObjectRef of its return value."""
        return self._owner.call(self._method, args, kwargs, key)

    def __repr__(self) -> str:
        return f"<raysched call {self._owner.name}.{self._method} (use .remote(..., key=...))>"


class NotDeployed(LookupError):
    """No service of that name is deployed on the cluster; the message lists those that are."""


def deployed_names() -> list[str]:
    """The services deployed on the connected cluster (their controllers' names), sorted."""
    from ray.util import list_named_actors

    from raysched.cluster import NAMESPACE

    names = []
    for actor in list_named_actors(all_namespaces=True):
        name, namespace = (actor["name"], actor["namespace"]) if isinstance(actor, dict) else (actor, NAMESPACE)
        if namespace == NAMESPACE and name.startswith(CONTROLLER_PREFIX):
            names.append(name[len(CONTROLLER_PREFIX) :])
    return sorted(names)


def open_handle(service: str) -> ServiceHandle:
    """A handle on a deployed service of the cluster this process is connected to (NotDeployed if none)."""
    import ray

    controller = find_controller(service)
    if controller is None:
        raise not_deployed(service)
    try:
        table = ray.get(controller.table.remote(), timeout=30)
    except ray.exceptions.RayActorError:
        raise not_deployed(service) from None
    return ServiceHandle(service, controller, table)


def not_deployed(service: str) -> NotDeployed:
    names = deployed_names()
    listed = f"deployed: {', '.join(names)}" if names else "nothing is deployed on this cluster"
    return NotDeployed(f"no service named {service!r} is deployed ({listed}); deploy it with `raysched deploy JOB.py`")
