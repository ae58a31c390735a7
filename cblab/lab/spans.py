"""A few live calls' OpenTelemetry spans as a table: what an operator's trace view shows
for calls through a guarded client (notebook 03, "Through an operator's eyes").

Needs the optional extra ``cblab[otel]`` (``make lab`` installs it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pandas as pd

__all__ = ["GUARD_CONFIG", "live_spans"]

#: The traced guard's breaker: trips within five calls, stays open while they run.
GUARD_CONFIG = {"failure_threshold": 3, "timeout": 30}


async def live_spans(lab: Any, *, variant: str = "protected", tool: str = "github_user",
                     arguments: dict[str, Any] | None = None, calls: int = 5,
                     config: dict[str, Any] | None = None,
                     start_timeout_s: float = 120.0) -> pd.DataFrame:
    """Call `tool` on `lab`'s `variant` server `calls` times through a traced
    `GuardedClient` (`cblab.integrations.otel.traced_calls`, error results counted as
    failures) and return its CLIENT spans,
    one row each: the breaker's name, its state at admission, the outcome, ``error.type``,
    the span status and any state change the call caused. A lab still starting is
    waited for (up to `start_timeout_s`)."""
    variants = tuple(lab.variants)
    if variant not in variants:
        raise ValueError(f"variant must be one of {variants}, got {variant!r}")
    from cblab.integrations.otel import traced_calls  # first: a missing extra says so at once

    await _running(lab.session, start_timeout_s)

    url = lab.session.target.mcp_target(variant)
    # the demo's tools answer a failed dependency with an error result: a failure here
    rows = await traced_calls(url, tool, arguments if arguments is not None
                              else {"username": "octocat"}, calls=calls,
                              config=config if config is not None else GUARD_CONFIG,
                              count_error_results=True)
    columns = ["span", "breaker", "state", "outcome", "error.type", "status", "state_change"]
    return pd.DataFrame(rows, columns=columns).fillna("")


async def _running(session: Any, timeout_s: float) -> None:
    """Wait for the session's servers (Run all reaches this cell while they start)."""
    deadline = time.monotonic() + timeout_s
    while session.phase in ("idle", "starting"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the lab did not start within {timeout_s:g} s")
        await asyncio.sleep(0.1)
    if session.phase != "running":
        reason = f": {session.error}" if session.error is not None else ""
        raise RuntimeError(f"the lab is not running ({session.phase}){reason}")
