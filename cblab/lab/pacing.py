"""Pace a FigureWidget's updates by what the browser has drawn.

Every update of a `plotly.graph_objects.FigureWidget` is a redraw in the browser.
A slow browser (a busy laptop, software rendering) would otherwise build a
backlog that delays everything queued behind it, slider messages included. The
browser's plotly renderer acknowledges each applied trace edit with its id; this
adapter keeps at most `max_undrawn` updates in flight and counts what the browser
drew (the rate a person sees, which the status line shows).

This is the only place that reads plotly's private widget protocol, checked
against plotly 6/7's `basewidget.py`:

- ``fig._last_trace_edit_id``: the id of the newest trace edit sent to the browser;
- the ``_js2py_traceDeltas`` trait: set by the browser after it applied an edit,
  ``{"trace_edit_id": N, "trace_deltas": [...]}``.

A renamed private degrades to no pacing (every draw goes out), never to an error.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

__all__ = ["DrawPacer"]


class DrawPacer:
    """`ready()` before a draw, `sent()` after it; `drawn_rate()` is what the browser
    drew per second. Headless runs never acknowledge: pacing starts with the first
    acknowledgement, and a draw is never held back for more than `max_hold_s`."""

    # 3: every update waiting for the browser is drawn before anything queued behind
    # it, a widget's answer to a click included (with 6 waiting, clicks took 3-8 s to
    # show under load); with 2, late acknowledgements held back draws Chromium could
    # make (3.85 updates/s against 5.7 with 6, bench_lab).
    def __init__(self, figure: Any, *, max_undrawn: int = 3, max_hold_s: float = 2.0) -> None:
        self.figure = figure
        self.max_undrawn = max_undrawn
        self.max_hold_s = max_hold_s
        self.acked_id = 0
        self.frontend_seen = False
        self.skipped = 0  # draws held back while the browser caught up
        # (perf_counter(), acknowledged id): the browser acknowledges some edits, each
        # acknowledgement covering every edit up to its id.
        self.drawn: deque[tuple[float, int]] = deque(maxlen=600)
        self._last_sent = 0.0
        try:
            figure.observe(self._on_ack, names="_js2py_traceDeltas")
        except Exception:  # a plotly without the trait: no pacing
            pass

    def _on_ack(self, change: dict[str, Any]) -> None:
        message = change.get("new")
        if not message:
            return
        edit_id = int(message.get("trace_edit_id") or 0)
        if edit_id > self.acked_id:
            self.acked_id = edit_id
            self.drawn.append((time.perf_counter(), edit_id))
        self.frontend_seen = True

    def in_flight(self) -> int:
        return int(getattr(self.figure, "_last_trace_edit_id", 0) or 0) - self.acked_id

    def ready(self) -> bool:
        """False while the browser has more than `max_undrawn` updates still to draw."""
        if not self.frontend_seen or self.in_flight() <= self.max_undrawn:
            return True
        if time.perf_counter() - self._last_sent >= self.max_hold_s:
            return True
        self.skipped += 1
        return False

    def sent(self) -> None:
        self._last_sent = time.perf_counter()

    def drawn_rate(self, over_s: float = 5.0) -> float | None:
        """Updates the browser drew per second over the last `over_s` s (None: no
        browser has acknowledged anything, e.g. a headless run)."""
        if not self.frontend_seen:
            return None
        now = time.perf_counter()
        recent = [edit_id for t, edit_id in self.drawn if now - t <= over_s]
        older = [edit_id for t, edit_id in self.drawn if now - t > over_s]
        if not recent:
            return 0.0
        since = older[-1] if older else recent[0] - 1
        return (recent[-1] - since) / over_s
