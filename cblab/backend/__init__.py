"""The fault-injecting backend: the system under test.

Two GitHub-shaped services (users from a JSON fixture, orders from SQLite), each
on its own loopback listener, whose faults (errors, latency, hangs, resets,
refused connections, capacity limits) are set per service through a control API
or played from a scenario. Standard library only; of cblab it imports only
`cblab.faults` (the pure fault profiles and scenarios it shares with the
simulator and the proxy).

`Backend` is imported lazily: `import cblab.backend` (or a submodule such as
`cblab.backend.cli`) does not load the HTTP servers, the control API and the
SQLite stores until `Backend` is used. The fault names are re-exported from
`cblab.faults`, their home, for callers that used them from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cblab.faults import *  # noqa: F403  (re-exported for callers that used them from here)
from cblab.faults import __all__ as _fault_names

if TYPE_CHECKING:
    from .app import Backend

__all__ = ["Backend", *_fault_names]


def __getattr__(name: str) -> Any:
    if name == "Backend":
        from .app import Backend

        return Backend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
