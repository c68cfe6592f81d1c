"""`raysched.brain_client`, kept for code written against it: the client lives in `raysched.brain.client`."""

from raysched.brain.client import *  # noqa: F403
