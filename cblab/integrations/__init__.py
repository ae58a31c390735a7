"""cblab's breaker outside the lab: in your FastMCP server, your httpx client, your MCP client.

    from cblab.integrations import CircuitBreakerMiddleware   # server side
    from cblab.integrations import BreakerTransport           # any httpx.AsyncClient
    from cblab.integrations import GuardedClient              # agents calling MCP servers
    from cblab.integrations import ReconnectingClient         # a client that survives restarts

One module per integration; `classify` holds the table of what counts against a
breaker (exceptions) and `outcomes` how a tool's result counts, `refusal` the shape
of a refused call, `bulkhead` the local-slot limit, `reconnect` a long-lived MCP
client that survives its server's restarts, `retry` the retry policy every
integration takes as ``retry=`` (its budget and jitter arithmetic in `budget`),
`fallback` the stand-in answers they take as ``fallback=``.
Names load on first use, so importing the package does not import fastmcp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bulkhead import Bulkhead
    from .classify import Classifier, DependencyError, Verdict, classify_exception, classify_status
    from .client import GuardedClient
    from .fallback import Fallback
    from .middleware import CircuitBreakerMiddleware
    from .reconnect import ReconnectingClient
    from .retry import RetryBudget, RetryPolicy, should_retry
    from .routes import mount_routes
    from .transport import BreakerTransport

_LAZY = {
    "Bulkhead": ".bulkhead",
    "Classifier": ".classify",
    "DependencyError": ".classify",
    "Verdict": ".classify",
    "classify_exception": ".classify",
    "classify_status": ".classify",
    "CircuitBreakerMiddleware": ".middleware",
    "BreakerTransport": ".transport",
    "GuardedClient": ".client",
    "Fallback": ".fallback",
    "RetryBudget": ".retry",
    "RetryPolicy": ".retry",
    "should_retry": ".retry",
    "ReconnectingClient": ".reconnect",
    "mount_routes": ".routes",
}

__all__ = [
    "BreakerTransport",
    "Bulkhead",
    "CircuitBreakerMiddleware",
    "Classifier",
    "DependencyError",
    "Fallback",
    "GuardedClient",
    "ReconnectingClient",
    "RetryBudget",
    "RetryPolicy",
    "Verdict",
    "classify_exception",
    "classify_status",
    "mount_routes",
    "should_retry",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cblab.integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
