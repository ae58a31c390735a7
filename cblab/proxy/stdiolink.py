"""A stdio upstream: one server process, bridged message for message.

The proxy starts the command, finds the protocol era it speaks as a client does
(``server/discover``; if that fails, the ``initialize`` handshake) and then relays
each client request as it came, only renumbering its id (clients' ids may collide;
the answer gets the client's id back). Nothing is re-modelled: listings, schemas,
results and task messages pass through as the server wrote them.

A client of the handshake era in front of a 2026-07-28 server gets the server's
discover answer as its ``initialize`` result, and its requests get the ``_meta``
envelope that era requires (the proxy's client info, no client capabilities).

What the bridge answers itself, for a server of the handshake era only:

- ``initialize``: the server's own answer to the proxy's handshake (its
  ``serverInfo``, capabilities and instructions), so every client sees the server;
- ``server/discover``: "method not found", as the server itself said, so clients
  fall back to the handshake;
and for every server:

- ``ping`` from the server: an empty result. Other server-to-client requests
  (sampling, elicitation, roots) have no way back to a client over this bridge: the
  server gets "method not found". Server notifications (progress, logs, list
  changes) are not relayed.

A server that exits is respawned with backoff (0.1 s doubling to 5 s); calls in
flight end with an ``upstream_down`` error, and calls arriving until it is back
are answered at once with one (`cblab.proxy.health`). A line longer than
`max_result_bytes` is skipped as it streams by (never held in memory) and its call
answered with a "result too large" error; the other calls go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .exchange import Inbound, Reply, down_reply, json_reply, one_chunk, too_large_reply
from .health import CONNECTED, DOWN, RECONNECTING, UpstreamHealth
from .messages import (
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    dumps,
    error_message,
    find_id,
    parse_message,
)

__all__ = ["StdioLink", "UpstreamUnavailable"]

log = logging.getLogger("cblab.proxy")

PROTOCOL_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
DISCOVER_TIMEOUT = 10.0
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
_CHUNK = 1 << 16
_EDGE = 4096  # bytes of an oversized line kept at each end, to find its id


class UpstreamUnavailable(Exception):
    """The server is not running (or went away mid-call); the message says why."""


class TooLarge(Exception):
    pass


class StdioLink:
    kind = "stdio"

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None,
                 health: UpstreamHealth, *, max_result_bytes: int, stderr: Path | None,
                 init_timeout: float = 15.0) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.health = health
        self.max_result_bytes = max_result_bytes
        self.init_timeout = init_timeout
        self._stderr_path = stderr
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._live: asyncio.subprocess.Process | None = None  # spawned and initialized
        self._reader: asyncio.Task[None] | None = None
        self._respawn: asyncio.Task[None] | None = None
        self._stopping = False
        self._answering: set[asyncio.Task[None]] = set()  # replies to the server's requests
        self.initialize_result: dict[str, Any] = {}
        self.modern = False  # the server speaks 2026-07-28: relay server/discover too
        self.discover_result: dict[str, Any] = {}
        self.tools: list[str] = []

    @property
    def pid(self) -> int | None:
        return self._live.pid if self._live is not None else None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn and initialize; UpstreamUnavailable (with the reason) when it cannot."""
        await self._spawn()

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._respawn, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._kill()
        self._fail_pending("the proxy stopped")

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 2)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def _spawn(self) -> None:
        stderr: Any = None
        if self._stderr_path is not None:
            stderr = open(self._stderr_path, "ab")  # noqa: SIM115 (the child holds it)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, env=self.env, cwd=self.cwd, limit=_CHUNK)
        except OSError as exc:
            raise UpstreamUnavailable(f"cannot start {self.argv[0]}: {exc.strerror or exc}") from None
        finally:
            if stderr is not None:
                stderr.close()
        self._process = process
        self._reader = asyncio.get_running_loop().create_task(self._read(process))
        try:
            async with asyncio.timeout(self.init_timeout):
                await self._handshake()
                self.tools = await self._list_tools()
                self._live = process
        except TimeoutError:
            await self._kill()
            raise UpstreamUnavailable(
                f"the server did not answer initialize within {self.init_timeout:g} s") from None
        except UpstreamUnavailable:
            await self._kill()
            raise

    async def _handshake(self) -> None:
        """The era the server speaks, as a client finds it: ``server/discover`` first
        (2026-07-28: no handshake, every request carries its own ``_meta``), else the
        ``initialize`` handshake. A server silent on discover for `DISCOVER_TIMEOUT`
        is also sent ``initialize``; whichever succeeds first decides (a slow modern
        server's late discover answer still counts)."""
        loop = asyncio.get_running_loop()
        discover = loop.create_task(self._send_request("server/discover", {"_meta": self._meta()}))
        initialize: asyncio.Task[dict[str, Any]] | None = None
        pending: set[asyncio.Task[dict[str, Any]]] = {discover}
        try:
            while pending:
                done, pending = await asyncio.wait(
                    pending, timeout=None if initialize else DISCOVER_TIMEOUT,
                    return_when=asyncio.FIRST_COMPLETED)
                if discover in done and not discover.exception():
                    versions = discover.result().get("supportedVersions", ())
                    if any(isinstance(v, str) and v >= MODERN_VERSION for v in versions):
                        self.modern = True
                        self.discover_result = discover.result()
                        return
                if initialize in done and not initialize.exception():
                    self.modern = False
                    self.initialize_result = initialize.result()
                    await self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})
                    return
                if self._process is None:
                    raise UpstreamUnavailable(self.health.last_error or "the server exited")
                if initialize is None:  # discover failed, or no answer yet
                    initialize = loop.create_task(self._send_request("initialize", {
                        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                        "clientInfo": _CLIENT_INFO}))
                    pending.add(initialize)
            assert initialize is not None
            raise initialize.exception() or UpstreamUnavailable("the handshake failed")
        finally:
            for task in (discover, initialize):
                if task is None:
                    continue
                if not task.done():
                    task.cancel()
                with contextlib.suppress(BaseException):
                    await task  # also retrieves the loser's error: no "never retrieved" log

    def _legacy_initialize(self, message: dict[str, Any]) -> dict[str, Any]:
        """A handshake-era client in front of a 2026-07-28 server: the server's own
        discover answer, in the shape of an initialize result."""
        params = message.get("params")
        asked = params.get("protocolVersion") if isinstance(params, dict) else None
        found = self.discover_result
        info = (found.get("_meta") or {}).get("io.modelcontextprotocol/serverInfo")
        result = {"protocolVersion": asked if asked in HANDSHAKE_VERSIONS else PROTOCOL_VERSION,
                  "capabilities": found.get("capabilities", {}),
                  "serverInfo": info or {"name": self.argv[0], "version": "unknown"}}
        if found.get("instructions"):
            result["instructions"] = found["instructions"]
        return result

    def _meta(self) -> dict[str, Any]:
        return {"io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientInfo": _CLIENT_INFO,
                "io.modelcontextprotocol/clientCapabilities": {}}

    async def _list_tools(self) -> list[str]:
        names: list[str] = []
        cursor = None
        for _ in range(100):
            params: dict[str, Any] = {"cursor": cursor} if cursor else {}
            if self.modern:
                params["_meta"] = self._meta()
            result = await self._send_request("tools/list", params)
            names += [t["name"] for t in result.get("tools", [])
                      if isinstance(t, dict) and isinstance(t.get("name"), str)]
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return names

    async def _send_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = await self.request({"jsonrpc": "2.0", "id": 0, "method": method, "params": params},
                                    starting=True)
        if "error" in answer:
            raise UpstreamUnavailable(f"{method} failed: {answer['error'].get('message')}")
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    def _exited(self, process: asyncio.subprocess.Process, reason: str) -> None:
        if self._process is not process:
            return  # one the proxy killed itself
        self._process = None
        self._fail_pending(reason)
        if self._live is not process or self._stopping:
            return  # not up yet: the spawn that started it reports the failure
        self._live = None
        if self.health.connected:
            log.warning("stdio upstream %s exited: %s; respawning", self.argv[0], reason)
        self.health.set(RECONNECTING, reason)
        self._respawn = asyncio.get_running_loop().create_task(self._respawn_loop())

    async def _respawn_loop(self) -> None:
        delay = 0.1
        while not self._stopping:
            await asyncio.sleep(delay)
            self.health.set(RECONNECTING)
            try:
                await self._spawn()
            except UpstreamUnavailable as exc:
                self.health.set(DOWN, str(exc))
                delay = min(delay * 2, 5.0)
                continue
            self.health.set(CONNECTED)
            log.warning("stdio upstream %s is back", self.argv[0])
            return

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(UpstreamUnavailable(reason))

    # --- one client exchange ---------------------------------------------------------

    async def exchange(self, inbound: Inbound) -> Reply:
        message = inbound.message
        if inbound.method != "POST":
            return Reply(405, [(b"allow", b"POST"), (b"content-length", b"0")], one_chunk(b""))
        if not isinstance(message, dict):
            return json_reply(error_message(None, PARSE_ERROR, "Parse error: not a JSON-RPC "
                                            "message (batches are not relayed)"), 400)
        if "id" not in message or "method" not in message:  # a notification, or an answer
            if "method" in message:
                await self.notify(message)
            return Reply(202, [(b"content-length", b"0")], one_chunk(b""))
        request_id, method = message["id"], message["method"]
        if method == "initialize":
            result = self._legacy_initialize(message) if self.modern else self.initialize_result
            return json_reply({"jsonrpc": "2.0", "id": request_id, "result": result})
        if self.modern:
            message = _with_envelope(message, self._meta())
        if method == "server/discover" and not self.modern:
            return json_reply(error_message(request_id, METHOD_NOT_FOUND, "Method not found"))
        try:
            return json_reply(await self.request(message))
        except UpstreamUnavailable as exc:
            return down_reply(request_id, self.health.state, str(exc))
        except TooLarge:
            return too_large_reply(request_id, self.max_result_bytes)

    # --- messages --------------------------------------------------------------------

    async def _write(self, message: Any) -> None:
        process = self._process
        if process is None or process.stdin is None:
            raise UpstreamUnavailable(self.health.last_error or "the server is not running")
        try:
            process.stdin.write(dumps(message) + b"\n")
            await process.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise UpstreamUnavailable(f"the server's stdin is closed: {exc}") from None

    async def request(self, message: dict[str, Any], *, starting: bool = False) -> dict[str, Any]:
        """Relay one request; its answer with the client's id. UpstreamUnavailable when
        the server is not running or exits before answering; TooLarge over the bound."""
        if not starting and not self.health.connected:
            raise UpstreamUnavailable(self.health.last_error or "the server is not running")
        number = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        try:
            await self._write({**message, "id": number})
            answer = await future
        except asyncio.CancelledError:
            # the client gave up: tell the server (best effort), as a direct client would
            with contextlib.suppress(UpstreamUnavailable):
                await self._write({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                   "params": {"requestId": number, "reason": "client gone"}})
            raise
        finally:
            self._pending.pop(number, None)
        return {**answer, "id": message.get("id")}

    async def notify(self, message: dict[str, Any]) -> None:
        if message.get("method") in ("notifications/initialized", "notifications/cancelled"):
            return  # the proxy initialized the server; cancellation follows the client's connection
        if self.health.connected:
            with contextlib.suppress(UpstreamUnavailable):
                await self._write(message)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        """Every line the server writes, split by hand so an oversized one streams by."""
        assert process.stdout is not None
        buffer = bytearray()
        skipping: tuple[bytes, bytearray] | None = None  # (head, tail) of an oversized line
        reason = "the server closed its output"
        try:
            while True:
                chunk = await process.stdout.read(_CHUNK)
                if not chunk:
                    break
                start = 0
                while True:
                    end = chunk.find(b"\n", start)
                    piece = chunk[start:] if end < 0 else chunk[start:end]
                    if skipping is not None:
                        tail = skipping[1]
                        tail += piece
                        del tail[:-_EDGE]
                    else:
                        buffer += piece
                        if len(buffer) > self.max_result_bytes:
                            skipping = (bytes(buffer[:_EDGE]), bytearray(buffer[-_EDGE:]))
                            buffer.clear()
                    if end < 0:
                        break
                    if skipping is not None:
                        self._oversized(*skipping)
                        skipping = None
                    elif buffer:
                        self._dispatch(bytes(buffer))
                        buffer.clear()
                    start = end + 1
        except (ConnectionError, OSError) as exc:
            reason = f"reading its output failed: {exc}"
        code = await process.wait()
        self._exited(process, f"the server exited with code {code}" if code is not None else reason)

    def _oversized(self, head: bytes, tail: bytearray) -> None:
        number = find_id(head, bytes(tail), set(self._pending))
        if number is None and len(self._pending) == 1:
            number = next(iter(self._pending))
        log.warning("stdio upstream wrote a message over %d bytes: skipped", self.max_result_bytes)
        future = self._pending.get(number) if number is not None else None
        if future is not None and not future.done():
            future.set_exception(TooLarge())

    def _dispatch(self, line: bytes) -> None:
        message = parse_message(line)
        if not isinstance(message, dict):
            return  # not JSON-RPC (a server printing to stdout by mistake)
        if "method" in message:
            if "id" in message:  # a request from the server
                task = asyncio.get_running_loop().create_task(self._answer_server(message))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
            return
        number = message.get("id")
        future = self._pending.get(number) if isinstance(number, int) else None
        if future is not None and not future.done():
            future.set_result(message)

    async def _answer_server(self, message: dict[str, Any]) -> None:
        if message.get("method") == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        else:
            reply = error_message(message["id"], METHOD_NOT_FOUND,
                                  f"{message.get('method')!s:.100} is not relayed by the cblab proxy")
        with contextlib.suppress(UpstreamUnavailable):
            await self._write(reply)


def _with_envelope(message: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    """A handshake-era client's request, with the ``_meta`` keys a 2026-07-28 server
    needs (the client's own keys win)."""
    params = message.get("params")
    params = dict(params) if isinstance(params, dict) else {}
    meta = params.get("_meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    if "io.modelcontextprotocol/protocolVersion" in meta:
        return message  # a 2026-07-28 client: as it came
    params["_meta"] = {**envelope, **meta}
    return {**message, "params": params}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cblab")
    except Exception:
        return "0"


_CLIENT_INFO = {"name": "cblab-proxy", "version": _version()}

