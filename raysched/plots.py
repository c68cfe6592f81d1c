"""`raysched.plots`, kept for code written against it: the figures live in `raysched.analysis.plots`."""

from raysched.analysis.plots import *  # noqa: F403
