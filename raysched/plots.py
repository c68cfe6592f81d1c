"""`raysched.plots`, kept for code written against it: the analysis figures lives in `raysched.analysis.plots`."""

from raysched.analysis.plots import *  # noqa: F403
