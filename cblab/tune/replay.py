"""Replay a fitted outage live: the fault proxy plays it, load drives the breaker's server.

What runs (everything but this process is the user's)::

    this process (load)  ->  your server (the breaker    ->  cblab proxy  ->  the dependency
                              --apply reached; /events)       (the outage)     (an MCP server)

`replay` resets the breaker (admin API), clears the proxy's faults, starts open-loop
load on one tool of the server's MCP endpoint, then asks the proxy to play the
scenario and, when it has ended, reads the breaker's own calls and state changes
from the server's ``/events`` (`cblab.integrations.mount_routes`). Their times are
the breaker's clock: the system's monotonic clock (the breaker's default), which
this process shares when the server runs on the same machine; rows are put on the
scenario's axis (0 = the moment the proxy started playing it).

Every HTTP failure is a `ReplayError` with one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["ReplayError", "live_rows", "proxy_scenario", "replay"]

TIMEOUT_S = 30.0  # a loaded machine's server may take seconds after a replay
#: /events answers at most this many rows per request (`mount_routes`' bound).
PAGE = 10_000
#: Calls answered before the outage starts (warm-up; not recorded).
WARM_CALLS = 10
#: A breaker row this far outside the replay (seconds) is on another clock.
CLOCK_SLACK_S = 60.0


class ReplayError(ValueError):
    """The proxy or the server refused, or could not be reached; one line."""


def proxy_scenario(scenario: Mapping[str, Any], service: str = "users") -> dict[str, Any]:
    """The scenario as the proxy plays it: each phase's `service` profile on every tool,
    errors as JSON-RPC errors (what a breaker counts: the proxy's default, an
    ``isError`` result, is a business error no cblab breaker counts), and no added
    latency (the server's own latency is the real one; the fit measured it)."""
    phases = []
    for phase in scenario["phases"]:
        profile = {k: v for k, v in dict(phase.get("faults", {}).get(service, {})).items()
                   if k != "latency"}
        phases.append({"name": phase["name"], "duration_s": phase["duration_s"],
                       "faults": {"*": {**profile, "error_as": "jsonrpc"}}})
    return {"name": scenario.get("name", "fitted"), "phases": phases}


async def _call(client: Any, method: str, url: str, token: str | None,
                body: Any = None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = await client.request(method, url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ReplayError(f"cannot reach {url}: {str(exc) or type(exc).__name__}") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200:
        detail = (data.get("detail") or data.get("error")) if isinstance(data, dict) else None
        raise ReplayError(f"{method} {url} answered {response.status_code}"
                          f"{f': {detail}' if detail else ''}")
    if not isinstance(data, dict):
        raise ReplayError(f"{method} {url} did not answer a JSON object")
    return data


async def _events(client: Any, server: str, after: int) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    while True:
        page = await _call(client, "GET", f"{server}/events?after={after}&limit={PAGE}", None)
        events = page.get("events")
        if not isinstance(events, list):
            raise ReplayError(f"{server}/events did not answer an event list")
        rows.extend(events)
        last = int(page.get("last_seq", after))
        if not events or last <= after:
            return rows, last
        after = int(events[-1].get("seq", last))
        if after >= last:
            return rows, last


def live_rows(events: list[dict[str, Any]], breaker: str, start: float,
              duration: float) -> list[dict[str, Any]]:
    """The breaker's core events (`mount_routes`' ``/events``) as schema rows on the
    scenario's axis (``t`` = breaker clock - `start`), kept within [0, `duration`]."""
    from cblab.schema import event_row

    rows = []
    for event in events:
        if event.get("breaker") != breaker:
            continue
        if event.get("kind") == "call":
            at = float(event["admitted_at"])
            row = event_row(kind="call", t=at - start, source="live", variant="live",
                            breaker=breaker, tool=breaker, outcome=event["outcome"],
                            latency=float(event.get("duration") or 0.0),
                            state=event.get("state"), error_type=event.get("error_type"),
                            generation=event.get("generation"))
        elif event.get("kind") == "state":
            at = float(event["at"])
            row = event_row(kind="state", t=at - start, source="live", variant="live",
                            breaker=breaker, state=event["from_state"],
                            state_after=event["to_state"], reason=event.get("reason"),
                            generation=event.get("generation"))
        else:
            continue
        if not -CLOCK_SLACK_S <= at - start <= duration + CLOCK_SLACK_S:
            raise ReplayError(
                f"the breaker's clock is {at - start:+.0f} s away from this machine's "
                "monotonic clock: --verify needs the server on this machine with the "
                "breaker's default clock")
        if 0.0 <= at - start <= duration:
            rows.append(row)
    return rows


async def _first_call(mcp_url: str, tool: str, arguments: Mapping[str, Any]) -> None:
    """One call before the load: pays this process's first-call costs (fastmcp's lazy
    imports, the tool's output schema) and says at once when the tool is not there."""
    from fastmcp import Client

    from cblab.proxy.server import warm_up

    await warm_up()
    try:
        async with Client(mcp_url) as client:
            names = [t.name for t in await client.list_tools()]
            if tool not in names:
                raise ReplayError(f"the server at {mcp_url} has no tool {tool!r}; its tools: "
                                  f"{', '.join(names) or 'none'}")
            await client.call_tool_mcp(tool, dict(arguments))
    except ReplayError:
        raise
    except Exception as exc:  # any client failure: one line
        raise ReplayError(f"cannot call {tool!r} on {mcp_url}: {str(exc) or type(exc).__name__}") from None


async def replay(scenario: Mapping[str, Any], *, server: str, mcp_url: str, breaker: str,
                 token: str, proxy: str, proxy_token: str | None, tool: str,
                 arguments: Mapping[str, Any], rate: float, deadline_s: float,
                 seed: int = 1) -> list[dict[str, Any]]:
    """Play `scenario` (a scenario dict, already time-scaled) live; the breaker's rows."""
    import httpx

    from cblab.load import LoadGenerator

    spec = proxy_scenario(scenario)
    duration = sum(float(p["duration_s"]) for p in spec["phases"])
    name = quote(breaker, safe="")
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        await _call(client, "DELETE", f"{proxy}/scenario", proxy_token)
        await _call(client, "DELETE", f"{proxy}/faults", proxy_token)
        await _call(client, "POST", f"{server}/admin/breakers/{name}/reset", token)
        _, cursor = await _events(client, server, 0)  # the newest row before the replay
        await _first_call(mcp_url, tool, arguments)
        gen = LoadGenerator(mcp_url, tool, dict(arguments), rate=rate, seed=seed,
                            deadline=2 * deadline_s + 1.0, max_in_flight=256, breaker=breaker)
        load = asyncio.create_task(gen.run(duration=duration + 3600.0))
        try:
            # warm: answers flow at the rate before the outage starts (the first calls
            # pay one-off costs in every process on the way: imports, schemas)
            while gen.completed < WARM_CALLS:
                if load.done():
                    why = load.exception()
                    raise ReplayError(f"the load on {mcp_url} stopped before it was warm"
                                      f"{f': {why}' if why else ''}")
                await asyncio.sleep(0.02)
            before = time.monotonic()
            await _call(client, "POST", f"{proxy}/scenario", proxy_token,
                        {"scenario": spec, "services": {"users": "*"}})
            start = (before + time.monotonic()) / 2
            await asyncio.sleep(max(0.0, start + duration - time.monotonic()))  # the replay
        finally:
            gen.stop()
            await asyncio.gather(load, return_exceptions=True)
            await _call(client, "DELETE", f"{proxy}/scenario", proxy_token)
        events, _ = await _events(client, server, cursor)
    return live_rows(events, breaker, start, duration)
