"""How node ids are shown to people: the one shortener, for messages, reports and tables."""

from __future__ import annotations

__all__ = ["NODE_ID_CHARS", "short_node"]

NODE_ID_CHARS = 8


def short_node(node_id: str, width: int = NODE_ID_CHARS) -> str:
    """Ray node ids are 56 hex characters; 8 tell them apart on any cluster of sane size (the one shortener)."""
    return str(node_id)[:width]
