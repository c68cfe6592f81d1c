"""SIGINT/SIGTERM during a run: a flag the loop checks, so the run stops in order."""

from __future__ import annotations

import signal
import threading
from typing import Any


class Interrupt:
    """Turn SIGINT/SIGTERM into a flag the loop checks, so shutdown is orderly; a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():  # signal handlers belong to the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop waiting for the orderly path
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
