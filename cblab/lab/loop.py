"""The lab's own event loop, in its own thread.

The load generator measures latency from each call's intended start, so anything
that delays its event loop is charted as the service's latency. A notebook
kernel's loop also builds and serialises widgets and figures (creating the first
plotly FigureWidget takes seconds): a caller sharing it stalls. Live sessions
therefore run load, event polling and control changes here, on one loop shared
by every session of the process (so sessions sharing a `Stack` share its
clients), and the kernel only draws.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["lab_loop", "submit"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def lab_loop() -> asyncio.AbstractEventLoop:
    """The lab's event loop, started on first use (a daemon thread: it never keeps
    the interpreter alive)."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="cblab-lab-loop", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run `coro` on the lab's loop; returns a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(coro, lab_loop())
