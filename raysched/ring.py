"""`raysched.ring`, kept for code written against it: the consistent-hash ring lives in `raysched.core.ring`."""

from raysched.core.ring import *  # noqa: F403
