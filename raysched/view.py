"""`raysched.view`, kept for code written against it: the resource view lives in `raysched.core.view`."""

from raysched.core.view import *  # noqa: F403
