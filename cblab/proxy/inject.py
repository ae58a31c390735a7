"""The fault injector and the proxy's event rows.

Every ``tools/call`` through the proxy is decided by the `FaultTable` (see
`cblab.proxy.faults` for what each plan does) and logged as one `cblab.schema`
row with ``source="proxy"``, when the call ends:

=====================================  ===========  ==============================
what happened                          outcome      error_type
=====================================  ===========  ==============================
forwarded, upstream answered           success      -
forwarded, upstream ``isError``        failure      tool_error
forwarded, upstream JSON-RPC error     failure      jsonrpc_error
forwarded, upstream down/restarting    failure      upstream_down (`cblab.proxy.health`)
forwarded, answer over the size bound  failure      result_too_large
forwarded, HTTP error without answer   failure      http_<status>
injected error as ``isError``          failure      injected_is_error
injected error as JSON-RPC error       failure      injected_jsonrpc_error
injected reset                         failure      injected_reset
over max_concurrency (reject)          failure      injected_overload (a 503)
client gave up (hang, latency)         cancelled    hang, or CancelledError
=====================================  ===========  ==============================

A task-augmented call (``params.task``) is forwarded like any other; its row is
written when the upstream answers with the created task (``reason``
``task_created``): the proxy does not follow the task to its end (``tasks/get`` and
``tasks/result`` pass through untouched).

A tool the upstream does not list is forwarded without a fault (the upstream
answers it); its name is cut to 64 characters in its row and it is counted under
the label ``unknown`` (at most 256 labels in all, then ``other``), so a caller
cannot make the proxy keep what it sends.

``t`` is seconds since the proxy started (loop time), ``latency`` the seconds the
proxy held the call, ``phase`` the scenario phase in force when the call arrived.
Tool arguments are never logged (they may hold secrets); the call's tool name and
fault kind are logged at DEBUG only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from cblab import EventLog
from cblab.codes import TOOL_ERROR
from cblab.faults.profile import capacity_verdict
from cblab.schema import EVENT_COLUMNS
from cblab.server.instrumentation import (
    MAX_TOOL_LABELS,
    MAX_TOOL_NAME_CHARS,
    OTHER_TOOLS,
    UNKNOWN_TOOL,
)

from .exchange import Inbound, Reply, json_reply
from .faults import HEALTHY_FAULT, FaultTable, ToolFault
from .messages import error_message, is_error_result

__all__ = ["FaultInjector", "JSONRPC_CODES", "ProxyEvents", "outcome_of"]

log = logging.getLogger("cblab.proxy")

SOURCE = "proxy"
#: JSON-RPC error code of an injected error, by the planned HTTP-like status.
JSONRPC_CODES = {429: -32000, 500: -32603, 502: -32603, 503: -32603, 504: -32603}
RESET_CODE = -32603
#: error_type of a JSON-RPC error answered by the upstream itself
JSONRPC_ERROR = "jsonrpc_error"
#: reason of a task-augmented call's row: the task was created, its outcome comes later
TASK_CREATED = "task_created"

Forward = Callable[[Inbound], Awaitable[Reply]]
Deliver = Callable[[Reply], Awaitable[None]]



def _short(name: str) -> str:
    """A tool name as a row keeps it: cut like `serve` cuts it (a caller chooses it)."""
    if len(name) > MAX_TOOL_NAME_CHARS:
        return name[: MAX_TOOL_NAME_CHARS - 1] + "…"
    return name


class ProxyEvents:
    """The proxy's schema rows in one gap-free sequence, and counters by outcome."""

    def __init__(self, capacity: int = 100_000, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or asyncio.get_running_loop().time
        self.t0 = self.clock()
        self.log = EventLog(capacity)
        self.counts: Counter[tuple[str, str]] = Counter()  # (tool label, outcome)
        self._labels: set[str] = set()

    def now(self) -> float:
        return self.clock() - self.t0

    def record(self, tool: str, started: float, outcome: str, error_type: str | None,
               phase: str | None, known: bool = True, reason: str | None = None) -> None:
        self.counts[(self._label(tool, known), outcome)] += 1
        # EVENT_COLUMNS without "seq" (the log numbers rows itself)
        self.log.append((
            "call", started - self.t0, SOURCE, None, None, _short(tool), outcome,
            self.clock() - started, None, None, error_type, reason, None, phase,
        ))

    def _label(self, tool: str, known: bool) -> str:
        if not known:
            return UNKNOWN_TOOL
        if tool not in self._labels:
            if len(self._labels) >= MAX_TOOL_LABELS:
                return OTHER_TOOLS
            self._labels.add(tool)
        return tool

    def rows(self, after: int = 0, limit: int | None = None) -> dict[str, Any]:
        part = self.log.since(after, limit)
        events = [dict(zip(EVENT_COLUMNS, (seq, *row), strict=True))  # type: ignore[misc]
                  for seq, row in part.events]
        return {"events": events, "last_seq": part.last_seq, "missed": part.missed,
                "now": self.now()}

    def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (tool, outcome), n in sorted(self.counts.items()):
            out.setdefault(tool, {})[outcome] = n
        return out


class _Reset(Exception):
    """The proxy went down while the call was held."""


class FaultInjector:
    """Decides each tool call from `table` and plays the plan; logs one row per call."""

    def __init__(self, table: FaultTable, events: ProxyEvents,
                 phase: Callable[[], str | None] = lambda: None) -> None:
        self.table = table
        self.events = events
        self.phase = phase
        self._hung: dict[asyncio.Future[None], str] = {}  # held call -> its tool
        self._busy: dict[str, int] = {}  # tool -> slots held (max_concurrency)
        self._line: dict[str, deque[asyncio.Future[None]]] = {}  # tool -> calls queued

    # --- hang control -----------------------------------------------------------------

    def release_hung(self) -> None:
        """Held calls whose tool's mode is no longer "hang" go on (forwarded at once)."""
        for waiter, tool in list(self._hung.items()):
            if not waiter.done() and self.table.get(tool).profile.mode != "hang":
                waiter.set_result(None)

    def abort_hung(self) -> None:
        """The proxy goes down or stops: held calls end as a reset."""
        for waiter in list(self._hung):
            if not waiter.done():
                waiter.set_exception(_Reset())

    @property
    def hung(self) -> int:
        return sum(1 for waiter in self._hung if not waiter.done())

    async def _hang(self, tool: str) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hung[waiter] = tool
        try:
            await waiter
        finally:
            del self._hung[waiter]

    # --- capacity (max_concurrency, overflow), as the backend's services ---------------

    async def _take_slot(self, tool: str, fault: ToolFault) -> bool:
        """A slot for the call (after waiting in line with overflow "queue"); False:
        refused (overflow "reject"). A held or hung call keeps its slot."""
        busy, line = self._busy.get(tool, 0), self._line.setdefault(tool, deque())
        verdict = capacity_verdict(fault.profile, busy, len(line))
        if verdict == "reject":
            return False
        if verdict == "queue":
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            line.append(turn)
            try:
                await turn  # _free_slot hands its slot over: busy stays counted
                return True
            except BaseException:
                if turn in line:
                    line.remove(turn)
                elif turn.done() and not turn.cancelled():
                    self._free_slot(tool)  # handed a slot we will not use
                raise
        self._busy[tool] = busy + 1
        return True

    def _free_slot(self, tool: str) -> None:
        line = self._line.get(tool)
        while line:
            turn = line.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes to the next in line
                return
        self._busy[tool] = self._busy.get(tool, 1) - 1

    # --- the call ---------------------------------------------------------------------

    async def call(self, tool: str, inbound: Inbound, forward: Forward, deliver: Deliver) -> None:
        """One ``tools/call``: decide, play the plan, forward, deliver the reply to the
        client, and log the row once it is delivered (or the client gave up: cancelled).
        A tool the upstream does not list gets no fault (and no RNG of its own)."""
        events = self.events
        started = events.clock()
        phase = self.phase()
        known = tool in self.table.known
        plan, fault = self.table.plan(tool) if known else (None, HEALTHY_FAULT)
        kind: str = plan.kind if plan is not None else "ok"
        if plan is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("call %s: %s after %.3f s", _short(tool), kind, plan.latency_s)
        request_id = inbound.request_id
        outcome, error_type, reason = "success", None, None
        held = False
        try:
            reply: Reply | None = None
            if fault.profile.max_concurrency is not None:
                if not await self._take_slot(tool, fault):
                    kind, error_type = "overload", "injected_overload"
                    reply = self._inject_error(inbound, fault, 503, None)
                else:
                    held = True
            if reply is None:
                if kind == "hang":
                    error_type = "hang"
                    await self._hang(tool)
                    error_type = None
                elif plan is not None and plan.latency_s > 0:
                    await asyncio.sleep(plan.latency_s)
                if kind == "error":
                    assert plan is not None
                    reply = self._inject_error(inbound, fault, plan.status or 500,
                                               plan.retry_after_s)
                elif kind in ("reset", "down"):
                    error_type = "injected_reset"
                    reply = json_reply(error_message(
                        request_id, RESET_CODE, "connection reset (injected by the cblab proxy)"))
                else:
                    reply = await forward(inbound)
            try:
                await deliver(reply)
            finally:
                await reply.aclose()
            if kind == "error":
                error_type = ("injected_is_error" if fault.error_as == "is_error"
                              else "injected_jsonrpc_error")
            if error_type is not None or kind == "error":
                outcome = "failure"
            else:
                outcome, error_type = outcome_of(reply)
                reason = TASK_CREATED if _task_created(reply.answer) else None
        except _Reset:
            outcome, error_type = "failure", "injected_reset"
            await deliver(json_reply(error_message(
                request_id, RESET_CODE, "connection reset: the proxy went down")))
        except asyncio.CancelledError:
            outcome, error_type = "cancelled", error_type or "CancelledError"
            raise
        except Exception as exc:
            outcome, error_type = "failure", type(exc).__name__
            raise
        finally:
            if held:
                self._free_slot(tool)
            events.record(tool, started, outcome, error_type, phase, known, reason)

    @staticmethod
    def _inject_error(inbound: Inbound, fault: ToolFault, status: int,
                      retry_after_s: float | None) -> Reply:
        request_id = inbound.request_id
        text = f"injected fault: upstream answered {status}"
        if retry_after_s is not None:
            text += f"; retry after {retry_after_s:g} s"
        if fault.error_as == "jsonrpc":
            data: dict[str, Any] = {"status": status, "injected": True}
            if retry_after_s is not None:
                data["retry_after_s"] = retry_after_s
            return json_reply(error_message(request_id, JSONRPC_CODES.get(status, -32603), text, data))
        structured: dict[str, Any] = {"error": "injected_fault", "status": status}
        if retry_after_s is not None:
            structured["retry_after_s"] = retry_after_s
        return json_reply(is_error_result(request_id, text, structured, inbound.modern))


def _task_created(answer: Any) -> bool:
    result = answer.get("result") if isinstance(answer, dict) else None
    return isinstance(result, dict) and isinstance(result.get("task"), dict)


def outcome_of(reply: Reply) -> tuple[str, str | None]:
    """A forwarded call's (outcome, error_type) from what the upstream answered."""
    if reply.error_type is not None:
        return "failure", reply.error_type
    answer = reply.answer
    if not isinstance(answer, dict):
        return "failure", f"http_{reply.status}" if reply.status >= 400 else "bad_response"
    if "error" in answer:
        return "failure", JSONRPC_ERROR
    result = answer.get("result")
    if isinstance(result, dict) and result.get("isError") is True:
        return "failure", TOOL_ERROR
    return "success", None
