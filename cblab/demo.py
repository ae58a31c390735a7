"""The demo's wiring, in one place: which tool calls which backend service through
which breaker, the breakers' names and default settings, and the data the demo
backend holds.

=============  ==========  ================  ======================================
MCP tool       breaker     backend service   default breaker settings
=============  ==========  ================  ======================================
github_user    github      users             failure_threshold 3, timeout 60 s
order_lookup   database    orders            failure_threshold 5, timeout 30 s
=============  ==========  ================  ======================================

The demo server (`cblab.server`), the load generator (`cblab.load`), the
simulator (`cblab.sim`), the run recorder (`cblab.lab.record`), the stack and
the analyses read these tables instead of spelling the names themselves.
Standard library only. The error codes and the refusal shape live in
`cblab.codes`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = [
    "BREAKERS",
    "BREAKER_DEFAULTS",
    "BREAKER_SERVICE",
    "DATABASE",
    "DEMO_ORDER_IDS",
    "DEMO_USERNAMES",
    "GITHUB",
    "ROUTES",
    "Route",
    "SERVICE_ROUTES",
    "TOOL_BREAKERS",
    "TOOL_ROUTES",
    "demo_arguments",
]

GITHUB = "github"
DATABASE = "database"


class Route(NamedTuple):
    """One dependency-calling tool: the breaker it goes through and the service it calls."""

    tool: str
    breaker: str
    service: str


ROUTES: tuple[Route, ...] = (
    Route("github_user", GITHUB, "users"),
    Route("order_lookup", DATABASE, "orders"),
)

#: The route the live lab drives unless told otherwise (github_user -> github -> users).
LAB_ROUTE: Route = ROUTES[0]
#: The breaker names, in the order the server creates them.
BREAKERS: tuple[str, ...] = tuple(route.breaker for route in ROUTES)
#: Tool -> its route.
TOOL_ROUTES: Mapping[str, Route] = MappingProxyType({r.tool: r for r in ROUTES})
#: Tool -> breaker name.
TOOL_BREAKERS: Mapping[str, str] = MappingProxyType({r.tool: r.breaker for r in ROUTES})
#: Backend service -> (breaker name, tool).
SERVICE_ROUTES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {r.service: (r.breaker, r.tool) for r in ROUTES}
)
#: Breaker name -> backend service.
BREAKER_SERVICE: Mapping[str, str] = MappingProxyType({r.breaker: r.service for r in ROUTES})

#: Each breaker's default settings (`CircuitBreakerConfig.from_dict` input): the
#: original write-up's numbers for github, a more tolerant database.
BREAKER_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    GITHUB: MappingProxyType({"failure_threshold": 3, "timeout": 60.0}),
    DATABASE: MappingProxyType({"failure_threshold": 5, "timeout": 30.0}),
})

#: Logins present in the backend's users fixture (data/users.json).
DEMO_USERNAMES: tuple[str, ...] = (
    "octocat", "turing91", "adelehamilton", "cberners-lee", "kkare", "katherineknuth",
    "wirth24", "brian-raman", "anitakare", "gnagpal", "pgosling", "hamilton18",
    "marylamport", "dgoldberg", "amatsumoto", "brianhopper",
)
#: Order ids present in the backend's orders fixture (data/orders.csv).
DEMO_ORDER_IDS = range(1001, 1201)


def demo_arguments(tool: str) -> Callable[[random.Random], dict[str, Any]]:
    """Arguments that exist in the backend's data, drawn with the caller's RNG."""
    if tool == "github_user":
        return lambda rng: {"username": rng.choice(DEMO_USERNAMES)}
    if tool == "order_lookup":
        return lambda rng: {"order_id": rng.choice(DEMO_ORDER_IDS)}
    return lambda rng: {}
