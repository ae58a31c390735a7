"""The upstream's real state, as `/health` and the control API report it.

=============  ==============================================================
state          meaning
=============  ==============================================================
connected      the last exchange with the upstream worked
reconnecting   the upstream went away; the proxy is trying again (an HTTP
               upstream is probed, a stdio server respawned with backoff)
down           the last attempt failed; the next one is scheduled
=============  ==============================================================

Calls that arrive while the upstream is not connected are answered at once with a
JSON-RPC error (code -32603, ``data.upstream`` the state) and recorded with
``error_type`` ``upstream_down``: the server is unavailable, which is not the same
as a tool failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["CONNECTED", "DOWN", "RECONNECTING", "UpstreamHealth"]

CONNECTED = "connected"
RECONNECTING = "reconnecting"
DOWN = "down"


class UpstreamHealth:
    """State, since when, how many times the upstream came back, the last error."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.state = CONNECTED
        self.since = clock()
        self.since_wall = time.time()
        self.restarts = 0
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    def set(self, state: str, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state == self.state:
            return
        if state == CONNECTED:
            self.restarts += 1  # it came back
        self.state = state
        self.since = self.clock()
        self.since_wall = time.time()

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "since": self.since_wall,
                "for_s": round(self.clock() - self.since, 3), "restarts": self.restarts,
                "last_error": self.last_error}
