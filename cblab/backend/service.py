"""One API service on its own listener, with faults injected per request.

The order of work for a request (health checks skip all of it):
count it, plan it (`plan_request`, before capacity: the RNG stream depends only
on arrival order), take a capacity slot (or get a 503 / wait in the queue),
then hang, or sleep the planned latency and answer, fail, or reset. A client
that closes its connection while queued or waiting out the latency gives its
slot back at once (counted `aborted`).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from urllib.parse import unquote

from cblab.faults.profile import HEALTHY, FaultProfile, RequestPlan, plan_request

from .capacity import Slots
from .http import MAX_BODY_BYTES, Connection, HttpServer, Limits, Request, Response, json_response
from .stats import ServiceStats, outcome_for_status

__all__ = ["FaultyService", "ResourceApi"]

_NOT_FOUND = b'{"message":"Not Found"}'
_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ResourceApi:
    """`GET {prefix}{key}` -> the record for `key`, or a GitHub-style 404."""

    def __init__(self, prefix: str, lookup: Callable[[str], bytes | None]) -> None:
        self.prefix = prefix
        self._lookup = lookup

    def route(self, request: Request) -> Response:
        path = request.path
        key = path[len(self.prefix) :] if path.startswith(self.prefix) else ""
        if not key or "/" in key:
            return Response(404, _NOT_FOUND)
        if request.method != "GET":
            return json_response(405, {"message": "Method Not Allowed"}, [("Allow", "GET")])
        body = self._lookup(unquote(key))
        return Response(404, _NOT_FOUND) if body is None else Response(200, body)


class FaultyService:
    """An API behind its own HTTP listener, misbehaving as its `profile` says."""

    def __init__(
        self,
        name: str,
        api: ResourceApi,
        rng: random.Random,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.api = api
        self.rng = rng
        self.stats = ServiceStats()
        self._profile = HEALTHY
        self._slots = Slots()
        self._hang_release = asyncio.Event()
        self._lock = asyncio.Lock()
        self._http = HttpServer(
            self._handle,
            max_body_bytes=max_body_bytes,
            on_bad_request=self._count_bad_request,
            limits=limits,
        )
        self._host = "127.0.0.1"
        self._port = 0  # 0 until started, and again once stopped: nothing to re-bind
        self._health = json_response(200, {"status": "ok", "service": name})

    @property
    def profile(self) -> FaultProfile:
        return self._profile

    @property
    def listening(self) -> bool:
        return self._http.listening

    async def start(self, host: str, port: int) -> int:
        self._host = host
        self._port = await self._http.listen(host, port)
        if self._profile.mode == "down":
            self._http.close_listener()
        return self._port

    async def stop(self) -> None:
        self._port = 0
        await self._http.stop()

    async def set_profile(self, profile: FaultProfile) -> None:
        """Switch profile; going down closes the listener and resets open connections,
        coming back re-binds the same port (OSError if it was taken meanwhile)."""
        async with self._lock:
            old = self._profile
            if profile.mode != "down" and self._port and not self._http.listening:
                await self._http.listen(self._host, self._port)
            self._profile = profile
            self._slots.resize(profile.max_concurrency)
            if profile.mode == "down" and old.mode != "down":
                self._http.close_listener()
                await self._http.abort_connections()
            if old.mode == "hang" and profile.mode != "hang":
                self._hang_release.set()  # hung requests get answered (see profile.py)
                self._hang_release = asyncio.Event()

    def _count_bad_request(self, status: int) -> None:
        # malformed HTTP (400, 413, 431, 501, 505): the client's fault, whatever the code
        self.stats.received += 1
        self.stats.answered("client_error")

    async def _handle(self, request: Request, conn: Connection) -> Response | None:
        if request.path == "/health":
            if request.method == "GET":
                return self._health
            return json_response(405, {"message": "Method Not Allowed"}, [("Allow", "GET")])
        stats = self.stats
        stats.received += 1
        stats.in_flight += 1
        try:
            return await self._serve_with_faults(request, conn)
        except asyncio.CancelledError:
            stats.aborted += 1  # reset by going down, or the backend stopped
            raise
        finally:
            stats.in_flight -= 1

    async def _serve_with_faults(self, request: Request, conn: Connection) -> Response | None:
        profile = self._profile
        plan = plan_request(profile, self.rng)
        if plan.kind == "down":  # raced with going down: behave as if never accepted
            conn.reset()
            self.stats.aborted += 1
            return None
        if not self._slots.try_acquire():
            if profile.overflow == "reject":
                self.stats.answered("rejected_capacity")
                return json_response(
                    503, {"message": "Service at capacity", "injected_fault": True}
                )
            self.stats.queued += 1
            try:
                acquired = await conn.unless_peer_gone(self._slots.acquire())
            finally:
                self.stats.queued -= 1
            if not acquired:  # the client left while queued: no slot taken
                self.stats.aborted += 1
                return None
        try:
            return await self._execute(plan, request, conn)
        finally:
            self._slots.release()

    async def _execute(
        self, plan: RequestPlan, request: Request, conn: Connection
    ) -> Response | None:
        stats = self.stats
        if plan.kind == "hang":
            if not await self._hang(conn):
                stats.aborted += 1  # the client gave up
                return None
            response = self.api.route(request)
            stats.answered(outcome_for_status(response.status), response.status)
            return response
        if plan.latency_s > 0 and not await conn.unless_peer_gone(asyncio.sleep(plan.latency_s)):
            stats.aborted += 1  # the client left: free the slot now, answer nobody
            return None
        if plan.kind == "error":
            return self._injected_error(plan)
        response = self.api.route(request)
        if plan.kind == "reset":
            data = response.encode(request.keep_alive)
            cut = len(data) - len(response.body) + len(response.body) // 2
            conn.writer.write(data[:cut])
            conn.reset()
            stats.answered("reset")
            return None
        stats.answered(outcome_for_status(response.status), response.status)
        return response

    def _injected_error(self, plan: RequestPlan) -> Response:
        status = plan.status or 500
        payload: dict[str, object] = {
            "message": _REASONS.get(status, "Error"),
            "injected_fault": True,
        }
        headers: list[tuple[str, str]] = []
        if status == 429 and plan.retry_after_s is not None:
            # the header takes whole seconds; the body keeps the exact value
            headers.append(("Retry-After", str(math.ceil(plan.retry_after_s))))
            payload["retry_after_s"] = plan.retry_after_s
        self.stats.answered(outcome_for_status(status), status)
        return json_response(status, payload, headers)

    async def _hang(self, conn: Connection) -> bool:
        """Hold the request; True when released by the mode change, False when the
        client closed its connection."""
        if self._profile.mode != "hang":  # waited in the queue past the end of the hang
            return True
        released = asyncio.ensure_future(self._hang_release.wait())
        peer_closed = asyncio.ensure_future(conn.wait_peer_closed())
        self.stats.hung += 1
        try:
            done, _ = await asyncio.wait(
                (released, peer_closed), return_when=asyncio.FIRST_COMPLETED
            )
            return peer_closed not in done
        finally:
            self.stats.hung -= 1
            released.cancel()
            peer_closed.cancel()
            # let the cancelled read finish: the connection reads the next request
            await asyncio.wait((released, peer_closed))
