"""Service replicas in the brain: where each runs, its demand held in the view for the whole run.

A replica is placed like a task that never ends: the service's node policy
(`--service-policy`) chooses among the nodes where its demand fits now, without
overcommit (it holds its demand for the run), optionally spread over the values
of a node label with a skew of at most one. Its reservation is in the view, so
every submission's tasks see the room it takes, and it is released when the
submission ends. A replica whose node left the view (dead, or reported and
confirmed dead) is placed again on its next `place_replicas`; the driver then
re-creates it there under the same name. A replica removed while its submission goes on (autoscaling)
is freed by `release_replicas`.

Reads and writes: ``view`` (reservations), each submission's ``replicas``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

from raysched.brain.queues import WaitingQueues
from raysched.brain.state import SubmissionState, UnknownSubmission
from raysched.core.view import ResourceView, check_demand
from raysched.policies import Policy, TaskDemand, check_feasible

#: One replica to place: its name (``Shard#2``), its demand, and the node it runs on now (None: nowhere yet).
ReplicaRequest = tuple[str, Mapping[str, float], str | None]


class Replicas(WaitingQueues):
    """`place_replicas`: keep each live replica where it is, place the others by the service policy."""

    def place_replicas(
        self,
        submission_id: str,
        policy: Policy,
        replicas: Sequence[ReplicaRequest],
        exclude: Collection[str] = (),
        domains: Mapping[str, str] | None = None,
    ) -> list[tuple[str, str | None]]:
        """Where each replica runs: its node, kept while live and not in ``exclude``, else a new one (None: no
        node has room for it now; ask again). A demand no live node could ever hold raises InfeasibleError.

        ``domains`` maps node -> the value of the spread label (``--service-spread``): a new replica goes to
        a value with the fewest replicas of its service, among those with room (a node without the label is
        its own value).
        """
        if not callable(getattr(policy, "choose", None)):
            raise TypeError("service policy must have a choose(task, view) method")
        wanted = [(str(name), check_demand(demand), node) for name, demand, node in replicas]
        with self._lock:
            sub = self._subs.get(submission_id)
            if sub is None:
                raise UnknownSubmission(submission_id)
            out: list[tuple[str, str | None]] = []
            for name, demand, running_on in wanted:
                out.append((name, self._place_replica(sub, policy, name, demand, running_on, exclude, domains)))
            return out

    def release_replicas(self, submission_id: str, names: Collection[str]) -> int:
        """A service shrank (autoscaling) or was undeployed: free these replicas' reservations; how many were held."""
        with self._lock:
            sub = self._subs.get(submission_id)
            if sub is None:
                return 0
            held = [name for name in names if name in sub.replicas]
            for name in held:
                self._release_replica(sub, name)
            return len(held)

    def _place_replica(
        self,
        sub: SubmissionState,
        policy: Policy,
        name: str,
        demand: Mapping[str, float],
        running_on: str | None,
        exclude: Collection[str],
        domains: Mapping[str, str] | None,
    ) -> str | None:
        view = self.view
        held = sub.replicas.get(name)
        if held is not None:
            node, _ = held
            if node in view and node not in exclude:
                return node
            self._release_replica(sub, name)
        check_feasible(view, demand)
        saved = view.overcommit
        view.overcommit = 1.0  # a replica holds its demand for the whole run: no queue behind it
        try:
            if running_on is not None and running_on in view and running_on not in exclude:
                chosen: str | None = running_on if view.fits_now(running_on, demand) else None  # after a brain restart
            else:
                chosen = None
            if chosen is None:
                chosen = self._choose_node(sub, policy, name, demand, exclude, domains)
        finally:
            view.overcommit = saved
        if chosen is not None:
            view.reserve(chosen, demand)
            sub.replicas[name] = (chosen, demand)
        return chosen

    def _choose_node(
        self,
        sub: SubmissionState,
        policy: Policy,
        name: str,
        demand: Mapping[str, float],
        exclude: Collection[str],
        domains: Mapping[str, str] | None,
    ) -> str | None:
        view = self.view
        room = [n for n in view.nodes if n not in exclude and view.fits_now(n, demand)]
        if not room:
            return None
        if domains is not None:
            service = name.rpartition("#")[0]
            value = {n: domains.get(n, f"\x00{n}") for n in room}
            used = Counter(
                domains.get(node, f"\x00{node}")
                for other, (node, _) in sub.replicas.items()
                if other.rpartition("#")[0] == service
            )
            fewest = min(used.get(v, 0) for v in value.values())
            room = [n for n in room if used.get(value[n], 0) == fewest]
        task = TaskDemand(demand, key=name)
        if len(room) == len(view):
            chosen = policy.choose(task, view)
        else:
            chosen = policy.choose(task, _only(view, room))
        return chosen if chosen in room else None

    def _release_replica(self, sub: SubmissionState, name: str) -> None:
        node, demand = sub.replicas.pop(name)
        if node in self.view:
            self.view.release(node, demand)
            self._dirty.add(node)


def _only(view: ResourceView, nodes: Sequence[str]) -> ResourceView:
    """A view of some nodes with their reservations, for a policy to choose among them alone."""
    part = ResourceView(view.overcommit)
    for node in nodes:
        part.set_node(node, view.capacity(node))
        reserved = view.reserved(node)
        if reserved:
            part.reserve(node, reserved)
    return part
