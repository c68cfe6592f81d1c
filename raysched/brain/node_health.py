"""Is a node's raylet alive? The same gRPC health check Ray's GCS runs, asked at once.

Ray declares a node dead after its GCS health checks fail several times in a
row (with Ray's defaults: every 3 s, 5 failures, so 15-20 s). Until then hard
affinity keeps sending work to a dead node. A driver that sees a node lose
work, or finish nothing for far longer than its tasks take, only *suspects*
it; the brain then asks the node's raylet the standard
``grpc.health.v1.Health/Check`` question itself. A killed raylet refuses the
connection within milliseconds; a partitioned one does not answer within the
timeout. Only such a node is taken out of the view early; a node that answers
(however long its tasks run) stays. When the probe cannot tell (the raylet is
unknown to Ray, or answers with an unexpected error), the node is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PROBE_TIMEOUT_S", "PROBE_TRIES", "unreachable_raylets"]

PROBE_TIMEOUT_S = 1.0
PROBE_TRIES = 2
_SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def unreachable_raylets(nodes: Iterable[str]) -> set[str]:
    """The nodes among ``nodes`` whose raylet refuses or ignores its health check (every try)."""
    import ray

    wanted = set(nodes)
    if not wanted:
        return set()
    addresses = {
        str(n["NodeID"]): f"{n['NodeManagerAddress']}:{n['NodeManagerPort']}"
        for n in ray.nodes()
        if n.get("NodeID") in wanted
    }
    gone = set()
    for node in wanted:
        address = addresses.get(node)
        if address is None:
            continue  # Ray does not know it: membership will drop it, nothing to probe
        if all(_answer(address) is False for _ in range(PROBE_TRIES)):
            gone.add(node)
    return gone


def _answer(address: str) -> bool | None:
    """True: serving. False: refused or timed out (dead or unreachable). None: cannot tell."""
    import grpc

    try:
        from ray._private.grpc_utils import init_grpc_channel

        channel = init_grpc_channel(address)  # TLS and token auth as the cluster configures them
    except Exception:
        channel = grpc.insecure_channel(address)
    try:
        check = channel.unary_unary(_HEALTH_CHECK, request_serializer=None, response_deserializer=None)
        reply = check(b"", timeout=PROBE_TIMEOUT_S)
        return reply == _SERVING or None
    except grpc.RpcError as err:
        code = err.code() if callable(getattr(err, "code", None)) else None
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return False
        return None
    finally:
        channel.close()
