"""`raysched.brain.placement`, kept for code written against it: the brain lives in the modules beside it.

`actor` composes `PlacementBrain` from `state`, `queues`, `admission`,
`rounds`, `lifecycle` and `membership`, and runs it as the named actor.
"""

from raysched.brain.actor import BRAIN_NAME, PlacementBrain, brain_handle, find_brain
from raysched.brain.lifecycle import HEARTBEAT_S, SUBMISSION_EXPIRY_S, dead_drivers_from_ray
from raysched.brain.membership import CONDEMN_GRACE_S, live_nodes_from_ray, schedulable_capacity
from raysched.brain.state import Capacity, Held, Placed, Placement, PolicyError, Request, UnknownSubmission

__all__ = [
    "BRAIN_NAME",
    "CONDEMN_GRACE_S",
    "HEARTBEAT_S",
    "SUBMISSION_EXPIRY_S",
    "Capacity",
    "Held",
    "Placed",
    "Placement",
    "PlacementBrain",
    "PolicyError",
    "Request",
    "UnknownSubmission",
    "brain_handle",
    "dead_drivers_from_ray",
    "find_brain",
    "live_nodes_from_ray",
    "schedulable_capacity",
]
