"""The placement data structures, with no Ray: the consistent-hash ring and the resource view.

Everything here runs in any Python process (the brain actor, the simulator, a test) and imports
nothing from Ray; `tests/unit/core` checks that.
"""
