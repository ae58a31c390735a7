"""The live lab's model: a bounded window of event rows and the chart arrays drawn from it.

Plain Python and pandas, no widgets and no I/O. The live loop hands it rows
(server rows from ``/events``, load rows from the generator) already shifted onto
one clock, "seconds since the lab started"; the feed keeps the last `window_s`
seconds, tracks the breaker's state, and turns the window into the arrays of the
four live charts with `cblab.plots.traces` (the same functions the static figures
use). Memory is bounded: a time window plus a hard cap on rows. The recording
(for "Export report") keeps the whole session: `record_rows` rows in memory, the
rest spilled to a temporary file (`cblab.lab.recording.Recording`).
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..analysis import PROBE_FAILURE, TRIP, call_succeeded
from ..plots import traces as tr
from ..schema import EVENT_COLUMNS
from .recording import DEFAULT_MAX_ROWS, Recording

__all__ = ["CHARTS", "ChartArrays", "LiveFeed", "Transition"]

#: The live charts, top to bottom; each trace's `meta` is [chart, *key].
CHARTS = ("state", "latency", "success", "backend")

_INTERNED: dict[str, str] = {}


def _intern(value: Any) -> Any:
    # JSON decoding makes a new str for every "success"/"protected"... share them.
    if type(value) is str and len(value) <= 40:
        return _INTERNED.setdefault(value, value) if len(_INTERNED) < 4096 else value
    return value


@dataclass(frozen=True, slots=True)
class Transition:
    t: float
    variant: str
    from_state: str
    to_state: str
    reason: str


ChartArrays = dict[str, dict[Any, Any]]


class LiveFeed:
    """A sliding window of rows on the lab's clock, and what the charts need from it.

    `breaker` limits state tracking and the state chart to one breaker (the
    dependency the lab drives). Rows of other breakers and tools are dropped.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        *,
        breaker: str | None = "github",
        max_rows: int = 20_000,
        record_rows: int = 20_000,
        record_max_rows: int = DEFAULT_MAX_ROWS,
        success_window_s: float = 5.0,
        bin_s: float = 1.0,
        max_points: int = 600,
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_s = float(window_s)
        self.breaker = breaker
        self.success_window_s = success_window_s
        self.bin_s = bin_s
        self.max_points = max_points  # latency points per variant sent to the chart
        self._rows: deque[dict[str, Any]] = deque(maxlen=max_rows)
        self.recording = Recording(record_rows, max_rows=record_max_rows,
                                   t_index=EVENT_COLUMNS.index("t"))
        self.now = 0.0
        self.state: dict[str, str] = {}  # variant -> breaker state, as the server last said
        self.states_seen: dict[str, set[str]] = {}
        self.transitions: deque[Transition] = deque(maxlen=200)
        # variant -> trips (CLOSED -> OPEN) and failed probes (HALF_OPEN -> OPEN), the
        # report's definitions (`cblab.analysis.TRIP`, `PROBE_FAILURE`)
        self.trips: Counter[str] = Counter()
        self.probe_failures: Counter[str] = Counter()
        self.counts: Counter[tuple[str, str]] = Counter()  # (variant, outcome), client view
        self.rows_in = 0
        self.missed = 0
        self.update_count = 0  # chart updates since the start
        self.updates: deque[float] = deque(maxlen=600)  # perf_counter() of each chart update
        self.update_cost: deque[float] = deque(maxlen=600)  # seconds each update took

    # --- input --------------------------------------------------------------------------

    def add(self, rows: Iterable[Mapping[str, Any]], *, offset: float = 0.0) -> int:
        """Take rows whose `t` is on another clock: lab time = t + offset. Returns how many."""
        added = 0
        keep, append, record = self.breaker, self._rows.append, self.recording.append
        for raw in rows:
            if keep is not None and raw.get("breaker") not in (keep, None):
                continue
            if raw.get("kind") == "call" and raw.get("breaker") is None:
                continue  # circuit_status and friends: not the dependency's traffic
            row = {k: _intern(raw.get(k)) for k in EVENT_COLUMNS}
            if row["t"] is None:
                continue
            row["t"] = float(row["t"]) + offset
            append(row)
            record(tuple(row.values()))
            self._track(row)
            added += 1
        self.rows_in += added
        return added

    def _track(self, row: dict[str, Any]) -> None:
        variant = row["variant"] or "run"
        if row["source"] == "load" and row["kind"] == "call":
            self.counts[(variant, row["outcome"])] += 1
        if row["source"] != "server":
            return
        if row["kind"] == "state":
            after, before = row["state_after"], row["state"]
            if after:
                self.transitions.append(
                    Transition(row["t"], variant, before or "?", after, row["reason"] or ""))
                if (before, after) == TRIP:
                    self.trips[variant] += 1
                elif (before, after) == PROBE_FAILURE:
                    self.probe_failures[variant] += 1
        else:
            after = row["state_after"] or row["state"]
        if after:
            self.state[variant] = after
            self.states_seen.setdefault(variant, set()).add(after)

    def advance(self, now: float) -> None:
        """Move the window's right edge to `now` (lab seconds) and drop what fell out."""
        self.now = max(self.now, float(now))
        horizon = self.now - self.window_s - self.success_window_s - 2 * self.bin_s
        rows = self._rows
        while rows and rows[0]["t"] < horizon:
            rows.popleft()

    def __len__(self) -> int:
        return len(self._rows)

    # --- output -------------------------------------------------------------------------

    @property
    def x_range(self) -> tuple[float, float]:
        """The time axis of the live charts: at least the last `window_s` seconds, on
        an axis a quarter window longer that moves on in quarter-window steps. A
        moving axis costs the browser a full relayout per update (4 to 6 times a
        data-only update, measured in Chromium); in steps it relayouts every few
        seconds."""
        step = self.window_s / 4
        left = max(math.floor((self.now - self.window_s) / step) * step, 0.0)
        return (left, left + self.window_s + step)

    def _base(self) -> float:
        # Charts compute their grids from t = 0: rebase the window so the work (and the
        # arrays) stay the size of the window however long the lab runs. A multiple
        # of 5 s keeps the grid points where they were between updates.
        return max(math.floor((self.now - self.window_s - self.success_window_s) / 5.0) * 5.0, 0.0)

    def frame(self) -> pd.DataFrame:
        """The window as an event frame (lab time)."""
        return pd.DataFrame(list(self._rows), columns=list(EVENT_COLUMNS))

    def arrays(self) -> ChartArrays:
        """Arrays for every live chart, keyed like the traces' meta (without the chart)."""
        base = self._base()
        frame = pd.DataFrame(list(self._rows), columns=list(EVENT_COLUMNS))
        if base:
            frame["t"] = frame["t"] - base
        server = frame[frame["source"] == "server"]
        bands = tr.state_bands(server, t_end=self.now - base)
        latency = _thin(tr.latency_points(frame, min_ms=0.1), self.max_points)
        out: ChartArrays = {
            "state": {state: _shift_bars(bars, base) for state, bars in bands.bars.items()},
            "latency": {k: _shift_xy(v, base, 1) for k, v in latency.items()},
            "success": {k: _shift_xy(v, base, 3) for k, v in
                        tr.success_rate_series(frame, self.success_window_s,
                                               step_s=self.success_window_s / 5).items()},
            "backend": {k: _shift_xy(v, base, 1) for k, v in
                        tr.backend_rate_series(frame, self.bin_s).items()},
        }
        # The last backend bin is still filling: drop it rather than show a false dip.
        for key, xy in list(out["backend"].items()):
            if xy.x and xy.x[-1] + self.bin_s > self.now:
                out["backend"][key] = tr.XY(xy.x[:-1], xy.y[:-1])
        return out

    def mark_update(self, cost_s: float) -> None:
        self.update_count += 1
        self.updates.append(time.perf_counter())
        self.update_cost.append(cost_s)

    def update_rate(self, over_s: float = 5.0) -> float:
        """Chart updates per second over the last `over_s` seconds."""
        if not self.updates:
            return 0.0
        now = time.perf_counter()
        recent = [u for u in self.updates if now - u <= over_s]
        return len(recent) / over_s

    def recorded_frame(self) -> pd.DataFrame:
        """The whole recording as an event frame, in time order (see `recording` for
        what a capped one did not keep)."""
        frame = pd.DataFrame(list(self.recording.rows()), columns=list(EVENT_COLUMNS))
        return frame.sort_values(["t"], kind="stable").reset_index(drop=True)

    def recent_success(self, over_s: float) -> dict[str, float | None]:
        """Per variant, the callers' success rate over the last `over_s` seconds of the
        window (the status line's figure, the same window as the success chart)."""
        since = self.now - over_s
        ok: Counter[str] = Counter()
        total: Counter[str] = Counter()
        for row in self._rows:
            if row["source"] != "load" or row["kind"] != "call" or row["t"] < since:
                continue
            variant = row["variant"] or "run"
            total[variant] += 1
            ok[variant] += call_succeeded(row["outcome"], row["error_type"])
        return {v: ok[v] / n for v, n in total.items() if n}

    def summary(self) -> dict[str, Any]:
        """What the run did so far, per variant (client view counts)."""
        per: dict[str, dict[str, Any]] = {}
        for (variant, outcome), n in self.counts.items():
            per.setdefault(variant, {})[outcome] = n
        for variant in self.states_seen:
            per.setdefault(variant, {})
        out = {}
        for variant, counts in per.items():
            total = sum(counts.values())
            ok = sum(n for outcome, n in counts.items() if call_succeeded(outcome, None))
            out[variant] = {
                "calls": total,
                "success_rate": ok / total if total else None,
                "outcomes": dict(sorted(counts.items())),
                "state": self.state.get(variant),
                "states_seen": sorted(self.states_seen.get(variant, ())),
                "trips": self.trips[variant],
                "probe_failures": self.probe_failures[variant],
            }
        return out


def _thin(points: dict[Any, tr.XY], max_points: int) -> dict[Any, tr.XY]:
    """At most about `max_points` latency points per variant: every k-th point of the
    big traces (a browser redraws them all, several times a second). Traces of 50
    points or fewer, such as the few failures among many successes, are kept whole."""
    totals: Counter[Any] = Counter()
    for (variant, _), xy in points.items():
        totals[variant] += len(xy.x)
    out = {}
    for key, xy in points.items():
        stride = math.ceil(totals[key[0]] / max_points)
        if stride > 1 and len(xy.x) > 50:
            xy = tr.XY(xy.x[::-1][::stride][::-1], xy.y[::-1][::stride][::-1])  # keep the newest
        out[key] = xy
    return out


def _shift_xy(xy: tr.XY, base: float, digits: int) -> tr.XY:
    # Rounded: the arrays travel to the browser as JSON several times a second.
    return tr.XY([round(x + base, 2) for x in xy.x],
                 [None if y is None else round(y, digits) for y in xy.y])


def _shift_bars(bars: tr.Bars, base: float) -> tr.Bars:
    return tr.Bars(bars.y, [round(b + base, 3) for b in bars.base], [round(x, 3) for x in bars.x],
                   [[round(end + base, 3), reason] for end, reason in bars.customdata])
