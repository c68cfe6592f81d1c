"""Every name `raysched.analysis.summary` offered, kept so ``from raysched.analysis.summary import summarize``
keeps working; the code lives in `loading`, `labels`, `figures`, `render` and `metric_names`.
"""

from raysched.analysis import *  # noqa: F403
from raysched.analysis import __all__ as _package_names
from raysched.results.schema import REQUIRED_COLUMNS, STATUSES, short_node

__all__ = [*_package_names, "REQUIRED_COLUMNS", "STATUSES", "short_node"]
