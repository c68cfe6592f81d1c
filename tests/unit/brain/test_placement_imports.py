"""`raysched.brain.placement` keeps offering what code outside the brain imports from it."""

from __future__ import annotations

from raysched.brain import actor, lifecycle, membership, placement, state


def test_the_placement_module_offers_the_same_objects_as_their_own_modules() -> None:
    assert placement.PlacementBrain is actor.PlacementBrain
    assert placement.find_brain is actor.find_brain and placement.brain_handle is actor.brain_handle
    assert placement.HEARTBEAT_S == lifecycle.HEARTBEAT_S
    assert placement.live_nodes_from_ray is membership.live_nodes_from_ray
    assert placement.schedulable_capacity is membership.schedulable_capacity
    assert placement.Placement is state.Placement and placement.PolicyError is state.PolicyError
    assert placement.Request is state.Request and placement.UnknownSubmission is state.UnknownSubmission
    assert all(hasattr(placement, name) for name in placement.__all__)
