"""The live lab's load generator in a process of its own.

A thread is not enough to keep a notebook's work out of the callers' latency:
the kernel's widget and figure work holds the interpreter's lock in long
stretches, and every step of an MCP call waits for it (measured on 2 cores: a
kernel busy a third of the time added ~100 ms to the callers' p99). So the live
lab runs the unchanged `cblab.load.LoadGenerator` in a child interpreter,
``python -m cblab.lab.loadproc``, and talks to it with JSON lines:

=====================================  ===============================================
parent -> child (stdin)                child -> parent (stdout)
=====================================  ===============================================
``{"start": {LoadGenerator kwargs},``  ``{"started": loop time}`` once connected
``"target": URL, "duration": s}``      ``{"rows": [...], "in_flight": n, "missed": m}``
``{"rate": r}``                        (every 50 ms while there are new rows)
``{"stop": true}`` (or stdin closed)   ``{"done": true, "error": null | "message"}``
=====================================  ===============================================

`ProcessLoad` is the parent's side, with the few members of `LoadGenerator` the
session uses (`rate`, `stop()`, `since()`, `start_monotonic`, `in_flight`, `run()`).
Both clocks are the system's monotonic clock, so `start_monotonic` compares
across the two processes. Row `t` and `latency` are the child's measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
from typing import Any

from .. import EventLog

__all__ = ["ProcessLoad"]

_PUMP_S = 0.05


class ProcessLoad:
    """A `LoadGenerator` in a child process (see the module docstring); `target` must
    be an MCP URL. `rate` and `stop()` may be called from any thread."""

    def __init__(self, target: str, tool: str, *, rate: float, variant: str, seed: int | None,
                 deadline: float, window: int = 10_000,
                 arguments: dict[str, Any] | None = None, breaker: str | None = None) -> None:
        if not isinstance(target, str):
            raise TypeError(f"a load process needs an MCP URL, got {target!r}")
        self.options = {"tool": tool, "rate": float(rate), "variant": variant, "seed": seed,
                        "deadline": float(deadline), "window": window}
        if arguments is not None:  # a JSON object: the tool's arguments for every call
            self.options["arguments"] = dict(arguments)
        if breaker is not None:
            self.options["breaker"] = breaker
        self.target = target
        self._rate = float(rate)
        self.start_monotonic: float | None = None
        self.in_flight = 0
        self._log = EventLog(window)
        self._missed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = float(value)
        self._send({"rate": self._rate})

    def stop(self) -> None:
        self._stopping = True
        self._send({"stop": True})

    def _send(self, message: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None:
            return
        if _on_loop(loop):
            self._write(message)
        else:
            loop.call_soon_threadsafe(self._write, message)

    def _write(self, message: dict[str, Any]) -> None:
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write((json.dumps(message) + "\n").encode())

    def since(self, cursor: int = 0) -> tuple[list[dict[str, Any]], int, int]:
        """Rows completed after `cursor`: `(rows, new_cursor, missed)`."""
        part = self._log.since(cursor)
        missed, self._missed = part.missed + self._missed, 0
        return [row for _, row in part.events], part.last_seq, missed  # type: ignore[misc]

    async def run(self, duration: float) -> ProcessLoad:
        """Start the child, relay its rows until it is done; cancelling kills it."""
        self._loop = asyncio.get_running_loop()
        env = {**os.environ, "FASTMCP_ENABLE_RICH_TRACEBACKS": "false", "PYTHONUNBUFFERED": "1"}
        with tempfile.TemporaryFile() as log:
            self._process = process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cblab.lab.loadproc",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                env=env, limit=2**24,
            )
            self._write({"start": self.options, "target": self.target,
                         "duration": duration if math.isfinite(duration) else None})
            if self._stopping:
                self._write({"stop": True})
            error: str | None = "the load process ended without a word"
            try:
                assert process.stdout is not None
                async for line in process.stdout:
                    message = json.loads(line)
                    if "rows" in message:
                        for row in message["rows"]:
                            self._log.append(row)  # stores any object
                        self.in_flight = int(message.get("in_flight", 0))
                        self._missed += int(message.get("missed", 0))
                    elif "started" in message:
                        self.start_monotonic = float(message["started"])
                    elif "done" in message:
                        error = message.get("error")
                        break
                await process.wait()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise
            finally:
                self.in_flight = 0
                if process.stdin is not None:
                    process.stdin.close()
            if error:
                log.seek(0)
                tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
                raise RuntimeError(f"load process: {error}" + ("\n" + "\n".join(tail) if tail
                                                               else ""))
        return self


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# --- the child -------------------------------------------------------------------------


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _child() -> None:
    from ..load import LoadGenerator

    loop = asyncio.get_running_loop()
    first = json.loads(sys.stdin.readline() or "{}")
    if "start" not in first:
        _emit({"done": True, "error": "no start message"})
        return
    from ..proxy.server import warm_up

    await warm_up()  # fastmcp's one-off first-call cost (seconds), before the clock starts
    gen = LoadGenerator(first["target"], **first["start"])

    def commands() -> None:  # a thread: stdin blocks
        for line in sys.stdin:
            message = json.loads(line)
            if "rate" in message:
                loop.call_soon_threadsafe(setattr, gen, "rate", float(message["rate"]))
            if message.get("stop"):
                break
        loop.call_soon_threadsafe(gen.stop)  # a stop, or the parent went away

    threading.Thread(target=commands, daemon=True).start()
    duration = first.get("duration") or 10.0**9
    run = loop.create_task(gen.run(duration=duration))
    cursor, told_start = 0, False
    while True:
        done = run.done()
        if not told_start and gen.start_monotonic is not None:
            _emit({"started": gen.start_monotonic})
            told_start = True
        rows, cursor, missed = gen.since(cursor)
        if rows or missed:
            _emit({"rows": rows, "in_flight": gen.in_flight, "missed": missed})
        if done:
            break
        await asyncio.sleep(_PUMP_S)
    error = run.exception()
    _emit({"done": True, "error": None if error is None else f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
    asyncio.run(_child())
