"""Test helpers shared by every test package.

`eventually` / `eventually_sync` poll a condition with a deadline: the one way
tests wait for something another task, thread or process does (never a bare
sleep, never a loop of its own). The deadline is generous on purpose: a loaded
CI machine must not fail a test that is merely slow; a wrong answer still fails,
after the timeout, with a message naming what was awaited and the last value.
`run_cblab` runs the `cblab` command in a child process, as a user's shell does.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["eventually", "eventually_sync", "run_cblab"]


def _timed_out(what: str, timeout: float, last: Any) -> AssertionError:
    return AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    what: str = "the condition",
    every: float = 0.01,
) -> Any:
    """Await until `check()` (sync or async) returns something truthy; return it.

    Raises AssertionError naming `what` once `timeout` seconds have passed.
    An exception raised by `check` propagates at once (a check can fail fast).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout, value)
        await asyncio.sleep(every)


def eventually_sync(
    check: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "the condition",
    every: float = 0.02,
) -> Any:
    """`eventually` for code without an event loop: blocks until `check()` is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout, value)
        time.sleep(every)


async def run_cblab(*args: str, timeout: float = 120.0) -> tuple[int, str, str]:
    """`cblab ARGS...` in a child process: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cblab.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()
