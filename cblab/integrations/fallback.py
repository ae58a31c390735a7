"""Fallbacks: what a refused or failed tool call answers instead, marked as such.

    from cblab.integrations import Fallback, GuardedClient

    client = GuardedClient(Client(url), fallback={   # or CircuitBreakerMiddleware(fallback=...)
        "forecast": Fallback.cached(max_age=600),      # the last good answer
        "tips": Fallback.static("No tips right now."),  # a fixed value
        "search": Fallback.tool("search_mirror"),       # another tool, same arguments
    })

A fallback answers when the call was refused (`CircuitOpenError`, a refusal
result) or failed in a way a breaker counts (transport errors, timeouts, 5xx);
a business error or a bad argument is returned as it was. The answer carries
``meta["cblab/fallback"] = {"kind", "reason", "age_s"}`` (and, for a static
value, the same under the structured content's ``"fallback"`` key) so no caller
mistakes it for the real thing, and every answer served is counted by kind in
`Fallbacks.counts`: a fallback is its own outcome, neither success nor failure.
When a fallback has nothing to give (an empty cache, a failing other tool) the
original refusal or error stands.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cblab import ConfigError
from cblab._clock import Clock, monotonic

from .retry import judge_exception, judge_tool_result

__all__ = ["META_KEY", "Fallback", "Fallbacks"]

#: Where a fallback answer says what it is.
META_KEY = "cblab/fallback"
KINDS = ("cached", "static", "tool")


@dataclass(frozen=True)
class Fallback:
    """One tool's fallback; build it with `cached`, `static` or `tool`."""

    kind: str
    value: Any = None
    tool_name: str | None = None
    arguments: Mapping[str, Any] | None = None
    max_age: float | None = None

    @classmethod
    def cached(cls, max_age: float | None = None) -> Fallback:
        """The last good result for the same arguments (at most `max_age` seconds old)."""
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(
                max_age, int | float) or not max_age > 0):
            raise ConfigError(f"max_age must be a number of seconds > 0, got {max_age!r}")
        return cls("cached", max_age=None if max_age is None else float(max_age))

    @classmethod
    def static(cls, value: Any) -> Fallback:
        """A fixed value (text, or a JSON-able structure returned as structured content)."""
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"a static fallback must be JSON-able, got {value!r}") from exc
        return cls("static", value=value)

    @classmethod
    def tool(cls, name: str, arguments: Mapping[str, Any] | None = None) -> Fallback:
        """Another tool: called with `arguments`, or with the failed call's own."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a fallback tool needs a non-empty name, got {name!r}")
        return cls("tool", tool_name=name, arguments=arguments)


def _key(name: str, arguments: Mapping[str, Any] | None) -> str:
    return name + "\0" + json.dumps(arguments or {}, sort_keys=True, default=str)


class Fallbacks:
    """The fallbacks of one client: `serve` a call, counting what was served."""

    def __init__(self, fallbacks: Mapping[str, Any] | None, *, clock: Clock = monotonic,
                 max_cached: int = 1000, server_side: bool = False) -> None:
        fallbacks = dict(fallbacks or {})
        for name, fallback in fallbacks.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"fallback: keys must be tool names, got {name!r}")
            if not isinstance(fallback, Fallback):
                raise ConfigError(f"fallback[{name!r}] must be a Fallback "
                                  f"(Fallback.cached/static/tool), got {fallback!r}")
        self.by_tool: dict[str, Fallback] = fallbacks
        self._static = _static_tool_result if server_side else _static_result
        self.clock = clock
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, Any]] = {}
        self.counts: dict[str, int] = {kind: 0 for kind in KINDS}
        self.unavailable = 0  # a fallback was due but had nothing to give

    def __bool__(self) -> bool:
        return bool(self.by_tool)

    async def serve(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        call: Callable[[], Awaitable[Any]],
        call_other: Callable[..., Awaitable[Any]],
    ) -> Any:
        """`call()`; on a refusal or counted failure, the tool's fallback if it has one."""
        fallback = self.by_tool.get(name)
        if fallback is None:
            return await call()
        try:
            result = await call()
        except Exception as exc:
            judgement = judge_exception(exc)
            if judgement.reason not in ("refused", "failure"):
                raise
            answer = await self._answer(fallback, name, arguments, type(exc).__name__,
                                        call_other)
            if answer is None:
                raise
            return answer
        judgement = judge_tool_result(result)
        if judgement.reason == "success":
            if fallback.kind == "cached":
                self._remember(name, arguments, result)
            return result
        if judgement.reason != "refused":
            return result
        reason = (result.structured_content or {}).get("error", "refused")
        answer = await self._answer(fallback, name, arguments, reason, call_other)
        return result if answer is None else answer

    def _remember(self, name: str, arguments: Mapping[str, Any] | None, result: Any) -> None:
        cache = self._cache
        key = _key(name, arguments)
        cache.pop(key, None)
        if len(cache) >= self.max_cached:  # bounded: forget the oldest
            del cache[next(iter(cache))]
        cache[key] = (self.clock(), result)

    async def _answer(self, fallback: Fallback, name: str, arguments: dict[str, Any] | None,
                      reason: str, call_other: Callable[..., Awaitable[Any]]) -> Any:
        mark: dict[str, Any] = {"kind": fallback.kind, "reason": reason, "age_s": None}
        if fallback.kind == "cached":
            hit = self._cache.get(_key(name, arguments))
            if hit is None:
                self.unavailable += 1
                return None
            age = self.clock() - hit[0]
            if fallback.max_age is not None and age > fallback.max_age:
                self.unavailable += 1
                return None
            mark["age_s"] = age
            answer = _marked(hit[1], mark)
        elif fallback.kind == "static":
            answer = self._static(fallback.value, mark)
        else:
            other_args = dict(fallback.arguments) if fallback.arguments is not None else arguments
            try:
                other = await call_other(fallback.tool_name, other_args, raise_on_error=False)
            except Exception:
                self.unavailable += 1
                return None
            if other.is_error:
                self.unavailable += 1
                return None
            mark["tool"] = fallback.tool_name
            answer = _marked(other, mark)
        self.counts[fallback.kind] += 1
        return answer

    def stats(self) -> dict[str, Any]:
        return {"served": dict(self.counts), "unavailable": self.unavailable,
                "cached": len(self._cache)}


def _marked(result: Any, mark: dict[str, Any]) -> Any:
    """A copy of `result` (a client's CallToolResult or a server's ToolResult) with the mark."""
    meta = {**(result.meta or {}), META_KEY: mark}
    if hasattr(result, "model_copy"):  # pydantic: the server's ToolResult
        return result.model_copy(update={"meta": meta})
    return replace(result, meta=meta)


def _static_tool_result(value: Any, mark: dict[str, Any]) -> Any:
    from fastmcp.tools import ToolResult

    text = value if isinstance(value, str) else json.dumps(value)
    return ToolResult(content=text, structured_content={"result": value, "fallback": mark},
                      meta={META_KEY: mark})


def _static_result(value: Any, mark: dict[str, Any]) -> Any:
    from fastmcp.client.client import CallToolResult
    from mcp_types import TextContent

    text = value if isinstance(value, str) else json.dumps(value)
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content={"result": value, "fallback": mark},
                          meta={META_KEY: mark}, data=value, is_error=False)
