"""The raylet health probe: dead raylets are told apart from live nodes that only run long tasks.

The probe of a killed node on a real cluster is covered by the churn test with
Ray's default health checks (the node leaves the brain within seconds only if
the probe confirms it).
"""

from __future__ import annotations

import socket

from raysched.brain.node_health import _answer


def test_a_closed_port_is_unreachable() -> None:
    with socket.socket() as s:  # a port nothing listens on: bind, read it, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _answer(f"127.0.0.1:{port}") is False
