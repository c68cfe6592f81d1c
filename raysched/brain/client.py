"""BrainClient: the one place that speaks the brain's protocol, as Ray's `util/queue.Queue` wraps its actor.

The driver loop only draws tasks, dispatches what the brain placed and writes
rows; everything about talking to the brain lives here:

* register the submission (get-or-create the actor first);
* pipelined calls: one ``place`` in flight at a time, carrying finished tasks
  and new tasks, answered with placements (the driver keeps collecting
  results meanwhile);
* the client remembers what the brain should know (tasks placed and not
  finished, tasks sent and not placed), so that when the brain restarts
  (``UnknownSubmission``) or its actor dies it re-registers with exactly that;
* a heartbeat thread keeps the submission alive while the driver is busy
  elsewhere (a slow ``tasks()`` generator, a long collect);
* gives up with a clear error after ``retry_s`` without an answer;
* unregisters at the end, returning the brain's counters for the run.

`Transport` is how calls reach the brain: `RayTransport` in production, an
in-process fake in tests (see tests/unit/brain/test_client.py).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from raysched.brain.actor import brain_handle, find_brain
from raysched.brain.lifecycle import HEARTBEAT_S
from raysched.brain.state import Placement, PolicyError, Request, UnknownSubmission
from raysched.cluster import ClusterError
from raysched.core.view import DEFAULT_OVERCOMMIT
from raysched.policies import Policy

log = logging.getLogger(__name__)

BRAIN_RETRY_S = 60.0
RETRY_PAUSE_S = 0.2
REGISTER_TIMEOUT_S = 30.0


class Transport(Protocol):
    """How calls reach the brain."""

    #: exceptions that mean "the brain actor is gone or restarting: get a fresh handle"
    gone_errors: tuple[type[BaseException], ...]

    def handle(self) -> Any: ...

    def call(self, handle: Any, method: str, *args: Any) -> Any: ...

    def ready(self, ref: Any) -> bool: ...

    def get(self, ref: Any, timeout: float | None = None) -> Any: ...


class RayTransport:
    """The brain as the named detached Ray actor."""

    def __init__(self) -> None:
        import ray

        self._ray = ray
        self.gone_errors = (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            ray.exceptions.GetTimeoutError,
        )

    def handle(self) -> Any:
        # Looking the actor up is cheap; creating it exports the class (a fraction of a second of CPU),
        # so create only when there is none yet.
        return find_brain() or brain_handle()

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method).remote(*args)

    def ready(self, ref: Any) -> bool:
        return bool(self._ray.wait([ref], timeout=0, fetch_local=False)[0])

    def get(self, ref: Any, timeout: float | None = None) -> Any:
        try:
            return self._ray.get(ref, timeout=timeout)
        except self._ray.exceptions.RayTaskError as err:
            cause = err.cause if getattr(err, "cause", None) is not None else err
            raise cause from None


@dataclass
class _Call:
    """A place() call under way: what it carries, so it can be replayed if the brain is lost."""

    ref: Any
    requests: list[Request]
    sent_at: float


@dataclass
class RunCounters:
    """What the brain counted for this submission (from unregister)."""

    decisions: int | None = None
    spills: dict[str, int] = field(default_factory=dict)
    keys_moved: int | None = None
    keys_spread: int | None = None  # hot keys spread over several nodes at the end (hash)
    hot_keys: list[dict[str, Any]] = field(default_factory=list)  # {"key", "nodes", "share"}, hottest first
    executor_events: list[dict[str, Any]] = field(default_factory=list)  # executors created/retired/lost meanwhile


class BrainClient:
    """One submission's connection to the placement brain."""

    def __init__(
        self,
        run_id: str,
        policy: Policy,
        info: Mapping[str, Any],
        transport: Transport | None = None,
        *,
        overcommit: float = DEFAULT_OVERCOMMIT,
        retry_s: float = BRAIN_RETRY_S,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run_id = run_id
        self.policy = policy
        self.info = dict(info)
        self.transport = transport if transport is not None else RayTransport()
        self.overcommit = overcommit
        self.retry_s = retry_s
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.sleep = sleep
        self.held: dict[int, tuple[str, Mapping[str, float], str]] = {}  # placed, not finished
        self.at_brain: dict[int, Request] = {}  # sent, not placed yet
        self.brain_id = ""
        self.reregistrations = 0
        self.cycle_s = 0.0  # time between the last two calls sent
        self._handle: Any = None
        self._call: _Call | None = None
        self._last_sent = 0.0
        self._forgotten = threading.Event()  # a heartbeat found the brain does not know us
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Get or create the brain, register, and start heartbeating."""
        self._register_until_answered(fresh_handle=True)
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="raysched-heartbeat")
        self._beat.start()

    def close(self) -> RunCounters:
        """Stop heartbeating and unregister (the brain releases what we still hold); the run's counters."""
        self._stop.set()
        counters = RunCounters()
        if self._handle is None:
            return counters
        try:
            final = self.transport.get(self.transport.call(self._handle, "unregister", self.run_id), timeout=10)
        except Exception:  # the brain expires idle submissions on its own
            return counters
        counters.decisions = final.get("decisions")
        counters.spills = dict(final.get("spills", {}))
        counters.keys_moved = final.get("keys_moved")
        counters.keys_spread = final.get("keys_spread")
        counters.hot_keys = list(final.get("hot_keys", []))
        counters.executor_events = list(final.get("executor_events", []))
        return counters

    # -- the pipelined call -------------------------------------------------------------------
    @property
    def in_flight(self) -> bool:
        return self._call is not None

    @property
    def pending_ref(self) -> Any:
        """The reply the driver can wait on with its task results (None when no call is under way)."""
        return None if self._call is None else self._call.ref

    @property
    def idle_s(self) -> float:
        """Seconds since the last call was sent."""
        return self.clock() - self._last_sent

    def send(
        self,
        finished: Sequence[int],
        requests: Sequence[Request],
        pacing: Mapping[str, float] | None = None,
        lost_executors: Sequence[str] = (),
    ) -> None:
        """Start one call: these tasks finished, these are new, these executors died. One call at a time."""
        if self._call is not None:
            raise RuntimeError("a brain call is already under way; receive() its answer first")
        if self._forgotten.is_set():
            self._forgotten.clear()
            self._reregister()
        for uid in finished:
            self.held.pop(uid, None)
        for request in requests:
            self.at_brain[request[0]] = request
        payload = pickle.dumps(
            (list(finished), list(requests), dict(pacing or {}), list(lost_executors)), protocol=pickle.HIGHEST_PROTOCOL
        )
        now = self.clock()
        self.cycle_s = now - self._last_sent if self._last_sent else 0.0
        self._call = _Call(self.transport.call(self._handle, "place_packed", self.run_id, payload), list(requests), now)
        self._last_sent = now

    def receive(self, block: bool = False) -> Placement | None:
        """The answer to the call under way, if it has arrived (or ``block``); None while it has not.

        A brain that restarted or died is recovered here: the client
        re-registers with everything the brain should know, and the answer is
        an empty placement (the new brain places those tasks on later calls).
        """
        call = self._call
        if call is None:
            return None
        if not block and not self.transport.ready(call.ref):
            if self.clock() - call.sent_at > self.retry_s:
                raise ClusterError(
                    f"the placement brain has not answered for {self.retry_s:.0f} s "
                    "(a policy stuck in choose()?); check `raysched status`"
                )
            return None
        self._call = None
        try:
            answer: Placement = self.transport.get(call.ref, timeout=self.retry_s)
        except UnknownSubmission:  # the brain restarted (or expired us): it forgot what we sent
            self._reregister()
            return Placement(brain_id=self.brain_id)
        except PolicyError:
            raise
        except self.transport.gone_errors:
            self._recover()
            return Placement(brain_id=self.brain_id)
        for uid, node, _spill, _wait in answer.placed:
            request = self.at_brain.pop(uid, None)
            if request is not None:
                self.held[uid] = (node, request[1], request[2])
        for uid, _message in answer.infeasible:
            self.at_brain.pop(uid, None)
        self.brain_id = answer.brain_id or self.brain_id
        return answer

    def place_replicas(
        self,
        policy: Policy,
        replicas: Sequence[tuple[str, Mapping[str, float], str | None]],
        exclude: Sequence[str] = (),
        domains: Mapping[str, str] | None = None,
    ) -> list[tuple[str, str | None]]:
        """Where this run's service replicas run (`raysched.brain.replicas`): one call, answered at once.

        A brain that restarted first hears of us again (registering), then of the replicas where they run.
        """
        args = (self.run_id, policy, list(replicas), list(exclude), dict(domains) if domains is not None else None)

        def ask() -> Any:
            return self.transport.get(self.transport.call(self._handle, "place_replicas", *args), timeout=self.retry_s)

        try:
            answer = ask()
        except UnknownSubmission:
            self._reregister()
            answer = ask()
        except self.transport.gone_errors:
            self._recover()
            answer = ask()
        return [(str(name), node) for name, node in answer]

    def release_replicas(self, names: Sequence[str]) -> None:
        """Free the reservations of replicas this run removed (autoscaling down); a brain that forgot us holds none."""
        with contextlib.suppress(UnknownSubmission, *self.transport.gone_errors):
            self.transport.get(self.transport.call(self._handle, "release_replicas", self.run_id, list(names)), 10)

    def report_node_failure(self, node: str, reason: str) -> None:
        """Tell the brain a node lost work or stopped making progress (best effort)."""
        with contextlib.suppress(Exception):  # the brain will see a death through membership anyway
            self.transport.call(self._handle, "report_node_failure", node, reason)

    # -- recovery -------------------------------------------------------------------------------
    def _register(self) -> None:
        held = [(uid, node, demand, key) for uid, (node, demand, key) in self.held.items()]
        waiting = list(self.at_brain.values())
        ref = self.transport.call(
            self._handle, "register", self.run_id, self.policy, self.info, held, waiting, self.overcommit
        )
        try:
            reply = self.transport.get(ref, timeout=REGISTER_TIMEOUT_S)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError, ImportError) as err:
            raise ClusterError(f"the placement brain refused this run: {type(err).__name__}: {err}") from None
        self.brain_id = reply.get("brain_id", "")
        self._last_sent = self.clock()

    def _register_until_answered(self, fresh_handle: bool = False) -> None:
        """Register (with a fresh handle first, if asked), retrying while the brain actor is (re)starting.

        Gives up with a ClusterError after retry_s without an answer.
        """
        started = self.clock()
        while True:
            try:
                if fresh_handle:
                    self._handle = self.transport.handle()
                self._register()
                return
            except self.transport.gone_errors:
                if self.clock() - started > self.retry_s:
                    raise ClusterError(
                        f"the placement brain has not answered for {self.retry_s:.0f} s; "
                        "check `raysched status` and the cluster's health"
                    ) from None
                self.sleep(RETRY_PAUSE_S)
                fresh_handle = True

    def _reregister(self) -> None:
        self.reregistrations += 1
        log.info(
            "raysched: the placement brain forgot run %s; registering again with %d placed and %d waiting tasks",
            self.run_id,
            len(self.held),
            len(self.at_brain),
        )
        self._register_until_answered()

    def _recover(self) -> None:
        """The brain actor is gone or restarting: a fresh handle, then register again."""
        self.reregistrations += 1
        self.sleep(RETRY_PAUSE_S)
        self._register_until_answered(fresh_handle=True)

    def _heartbeat(self) -> None:
        """Every heartbeat_s without a call, tell the brain we are alive (it expires silent submissions)."""
        while not self._stop.wait(self.heartbeat_s / 2):
            if self.clock() - self._last_sent < self.heartbeat_s:
                continue
            try:
                known = self.transport.get(
                    self.transport.call(self._handle, "heartbeat", self.run_id), timeout=self.heartbeat_s
                )
            except Exception:  # the main loop notices a lost brain on its next call
                continue
            if known is False:
                self._forgotten.set()
