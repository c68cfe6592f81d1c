"""Float slack shared by every comparison of resource amounts and loads.

Resource sums and bounded-load bounds are float arithmetic; a sum that should
equal a capacity may land a hair above it. Ray itself works in 1e-4 units, so a
slack far below that never admits real excess.
"""

from __future__ import annotations

__all__ = ["EPS"]

# Absolute slack on resource sums and on load bounds.
EPS = 1e-9
