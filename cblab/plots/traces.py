"""Trace arrays: event rows in, plain x/y lists out (no plotly here).

Every figure builder in `cblab.plots` draws what one of these functions
returns, and every trace it makes carries its key in `trace.meta`. A live
chart therefore builds its figure once and then, a few times a second, calls
the same function on the newest window of rows and hands the result to
`set_trace_data`, which assigns `fig.data[i].x/y` in place.

Which rows a view uses when a run has several sources (a live run logs each
request twice: once by the server, once by the load generator):

- the *client view* (latency, success rate, offered load) prefers the load
  generator, which measures from the intended start time, then the simulator,
  then the server;
- the *backend view* (requests reaching the backend) prefers the server, which
  knows exactly what the breaker admitted, then the simulator, then the load
  generator.

The choice is made per variant, so a frame mixing runs stays consistent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from cblab.analysis import succeeded
from cblab.schema import EVENT_COLUMNS

__all__ = [
    "BACKEND_VIEW",
    "CLIENT_VIEW",
    "NOT_ADMITTED",
    "Bars",
    "StateBands",
    "XY",
    "as_events",
    "backend_rate_series",
    "call_rows",
    "combine_events",
    "latency_ecdf",
    "latency_groups",
    "latency_points",
    "phase_spans",
    "run_end",
    "set_trace_data",
    "state_bands",
    "success_rate_series",
    "variants_of",
]

CLIENT_VIEW: tuple[str, ...] = ("load", "sim", "server")
BACKEND_VIEW: tuple[str, ...] = ("server", "sim", "load")
# Outcomes of calls that never reached the dependency.
NOT_ADMITTED: frozenset[str] = frozenset({"rejected", "dropped"})
NO_VARIANT = "run"
NO_BREAKER = "none"


class XY(NamedTuple):
    """One line or scatter trace."""

    x: list[Any]
    y: list[Any]


class Bars(NamedTuple):
    """Horizontal bars (one per state segment): `y` band, from `base` for `x` seconds."""

    y: list[str]
    base: list[float]
    x: list[float]
    customdata: list[list[Any]]  # [end, reason] per bar, for hover text


class StateBands(NamedTuple):
    rows: list[str]  # band labels, top to bottom
    bars: dict[str, Bars]  # keyed by state (and "none" for variants without a breaker)


def as_events(events: pd.DataFrame | Iterable[Mapping[str, Any]] | None) -> pd.DataFrame:
    """A frame with every schema column (missing ones filled with None); no copy if complete."""
    if events is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    frame = events if isinstance(events, pd.DataFrame) else pd.DataFrame(list(events))
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        frame = frame.assign(**{c: None for c in missing})
    return frame


# --- columns as numpy arrays (pandas boolean indexing copies every column: too slow
# for a live chart; these helpers pick single columns and index them) -----------------


def _text(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as an object array (missing values stay NaN/None)."""
    return frame[column].to_numpy(dtype=object)


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    series = frame[column]
    if series.dtype.kind != "f":
        series = pd.to_numeric(series, errors="coerce")
    return series.to_numpy(dtype=float, na_value=np.nan)


def _filled(values: np.ndarray, default: str) -> np.ndarray:
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = default
    return values


def _variants(frame: pd.DataFrame) -> np.ndarray:
    return _filled(_text(frame, "variant"), NO_VARIANT)


def _unique(values: np.ndarray) -> list[Any]:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values.tolist()))


def variants_of(events: pd.DataFrame) -> list[str]:
    """Variant labels in order of first appearance (missing variant: "run")."""
    frame = as_events(events)
    return [str(v) for v in _unique(_variants(frame))] if len(frame) else []


def _call_positions(frame: pd.DataFrame, prefer: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the call rows of one source per variant, and their variant labels."""
    calls = np.flatnonzero(_text(frame, "kind") == "call")
    variant = _variants(frame)[calls]
    if len(calls) == 0:
        return calls, variant
    source = _text(frame, "source")[calls]
    rank = np.full(len(calls), len(prefer))
    for i, name in enumerate(prefer):
        rank[source == name] = i
    if rank.min() != rank.max():
        keep = np.zeros(len(calls), dtype=bool)
        for v in _unique(variant):
            mine = variant == v
            keep |= mine & (rank == rank[mine].min())
        calls, variant = calls[keep], variant[keep]
    return calls, variant


def call_rows(events: pd.DataFrame, prefer: Sequence[str] = CLIENT_VIEW) -> pd.DataFrame:
    """Call rows of one source per variant (the first of `prefer` that the variant has).

    Adds `variant_label` (variant, never missing) and `t_s`/`latency_s` as floats.
    """
    frame = as_events(events)
    pos, variant = _call_positions(frame, prefer)
    return frame.iloc[pos].assign(
        variant_label=variant,
        t_s=_num(frame, "t")[pos],
        latency_s=_num(frame, "latency")[pos],
    )


def run_end(events: pd.DataFrame) -> float:
    """The last moment the rows cover: the latest state change or call end (0 if empty)."""
    frame = as_events(events)
    if frame.empty:
        return 0.0
    t = _num(frame, "t")
    latency = np.nan_to_num(_num(frame, "latency"), nan=0.0)
    ends = t + np.where(_text(frame, "kind") == "call", latency, 0.0)
    return float(np.nanmax(ends)) if np.isfinite(ends).any() else 0.0


def phase_spans(events: pd.DataFrame, *, min_rows: int = 3) -> list[tuple[str, float, float]]:
    """Scenario phases as (name, start, end), from the `phase` column, in time order.

    A phase starts at its first row (the first phase at 0) and ends where the next
    begins (the last at the end of the run). Runs of fewer than `min_rows` rows,
    such as one straggler logged just across a boundary, merge into their neighbour.
    """
    frame = as_events(events)
    phase = _text(frame, "phase")
    t = _num(frame, "t")
    keep = ~pd.isna(phase) & np.isfinite(t)
    if not keep.any():
        return []
    phase, t = phase[keep].astype(str), t[keep]
    order = np.argsort(t, kind="stable")
    names, times = phase[order], t[order]
    runs: list[list[Any]] = []  # [name, start, rows]
    for name, group_start, count in _runs(names, times):
        if runs and (runs[-1][0] == name or count < min_rows):
            runs[-1][2] += count
            continue
        runs.append([name, group_start, count])
    end = run_end(frame)
    spans = []
    for i, (name, start, _) in enumerate(runs):
        start = 0.0 if i == 0 else float(start)
        stop = float(runs[i + 1][1]) if i + 1 < len(runs) else max(end, start)
        spans.append((str(name), start, stop))
    return spans


def _runs(names: np.ndarray, times: np.ndarray) -> list[tuple[str, float, int]]:
    if len(names) == 0:
        return []
    change = np.flatnonzero(names[1:] != names[:-1]) + 1
    starts = np.concatenate(([0], change))
    stops = np.concatenate((change, [len(names)]))
    return [(names[a], times[a], int(b - a)) for a, b in zip(starts, stops, strict=True)]


def state_bands(
    events: pd.DataFrame,
    *,
    t_end: float | None = None,
    unprotected: Iterable[str] = (),
) -> StateBands:
    """Breaker state over time: one band per (variant, breaker), a bar per state segment.

    The initial state is the `state` left by the first state row (or the state of the
    first call, or closed); each state row starts a segment in its `state_after`; the
    last segment runs to `t_end` (default: the end of the rows). Call rows count only
    when they carry a state (the breaker's view). A variant with calls but no breaker
    state at all gets a grey "no breaker" band; so does every variant named in
    `unprotected` (its breakers only watch: an "unprotected" server keeps disabled
    breakers for metrics, which stay closed whatever happens).
    """
    frame = as_events(events)
    bars: dict[str, Bars] = {
        s: Bars([], [], [], []) for s in ("closed", "half_open", "open", NO_BREAKER)
    }
    if frame.empty:
        return StateBands([], bars)
    end = run_end(frame) if t_end is None else float(t_end)
    variant = _variants(frame)
    variants = _unique(variant)
    several = len(variants) > 1
    kind = _text(frame, "kind")
    breaker = _text(frame, "breaker")
    has_breaker = ~pd.isna(breaker)
    is_state = kind == "state"
    is_call = kind == "call"
    t = _num(frame, "t")
    seq = np.nan_to_num(_num(frame, "seq"), nan=0.0)
    state, state_after, reason = (
        _text(frame, "state"),
        _text(frame, "state_after"),
        _text(frame, "reason"),
    )
    has_state = ~pd.isna(state)
    unprotected_set = {str(v) for v in unprotected}
    rows: list[str] = []
    for v in variants:
        mine = variant == v
        # A call row speaks for a breaker only when it carries the breaker's state (the
        # load generator names the tool's breaker even when the server has none).
        relevant = mine & has_breaker & (is_state | (is_call & has_state))
        if v in unprotected_set or not relevant.any():
            if (mine & is_call).any():
                row = f"{v} · no breaker" if several else "no breaker"
                rows.append(row)
                _add_bar(bars[NO_BREAKER], row, 0.0, end, "no breaker in this variant")
            continue
        for name in sorted({str(b) for b in breaker[relevant]}):
            pos = np.flatnonzero(relevant & (breaker == name))
            pos = pos[np.lexsort((seq[pos], t[pos]))]
            row = f"{v} · {name}" if several else name
            rows.append(row)
            changes = pos[is_state[pos]]
            calls = pos[is_call[pos]]
            if len(changes) and not pd.isna(state[changes[0]]):
                current = str(state[changes[0]])
            elif len(calls) and not pd.isna(state[calls[0]]):
                current = str(state[calls[0]])
            else:
                current = "closed"
            start, why = 0.0, "initial state"
            for i in changes:
                if pd.isna(state_after[i]):
                    continue
                _add_bar(bars.get(current, bars[NO_BREAKER]), row, start, float(t[i]), why)
                current, start = str(state_after[i]), float(t[i])
                why = "" if pd.isna(reason[i]) else str(reason[i])
            _add_bar(bars.get(current, bars[NO_BREAKER]), row, start, max(end, start), why)
    return StateBands(rows, bars)


def _add_bar(bars: Bars, band: str, start: float, end: float, reason: str) -> None:
    bars.y.append(band)
    bars.base.append(start)
    bars.x.append(end - start)
    bars.customdata.append([end, reason])


def latency_points(
    events: pd.DataFrame,
    *,
    outcomes: Iterable[str] | None = None,
    min_ms: float | None = None,
) -> dict[tuple[str, str], XY]:
    """Per (variant, outcome): call start time (s) and latency (ms), client view.

    `min_ms` raises smaller latencies (a rejection takes 0 s) to that floor, for a log axis.
    """
    frame = as_events(events)
    pos, variant = _call_positions(frame, CLIENT_VIEW)
    t = _num(frame, "t")[pos]
    ms = _num(frame, "latency")[pos] * 1000.0
    outcome = _text(frame, "outcome")[pos]
    keep = np.isfinite(ms) & np.isfinite(t) & ~pd.isna(outcome)
    if outcomes is not None:
        keep &= np.isin(outcome, list(outcomes))
    t, ms, outcome, variant = t[keep], ms[keep], outcome[keep], variant[keep]
    if min_ms is not None:
        ms = np.maximum(ms, min_ms)
    out: dict[tuple[str, str], XY] = {}
    for v in _unique(variant):
        mine = variant == v
        for o in _unique(outcome[mine]):
            sel = mine & (outcome == o)
            out[(str(v), str(o))] = XY(t[sel].tolist(), ms[sel].tolist())
    return out


def _latency_arrays(
    events: pd.DataFrame, by: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Client-view calls with a latency (not dropped): variant, group label, ms, and the
    groups in time order (by first call)."""
    frame = as_events(events)
    if by not in frame.columns:
        raise ValueError(f"cannot group by {by!r}: not an event column")
    pos, variant = _call_positions(frame, CLIENT_VIEW)
    ms = _num(frame, "latency")[pos] * 1000.0
    t = _num(frame, "t")[pos]
    keep = np.isfinite(ms) & (_text(frame, "outcome")[pos] != "dropped")
    groups = _text(frame, by)[pos]
    if pd.isna(groups).all():
        groups = np.full(len(pos), "all", dtype=object)
    groups = _filled(groups, "(none)")
    variant, groups, ms, t = variant[keep], groups[keep], ms[keep], t[keep]
    groups = np.array([str(g) for g in groups], dtype=object)
    order = _unique(groups[np.argsort(t, kind="stable")])
    return variant, groups, ms, order


def latency_groups(
    events: pd.DataFrame, by: str = "phase", *, min_ms: float | None = None
) -> tuple[list[str], dict[str, XY]]:
    """Latencies (ms) labelled by group (`by` column), per variant; client view.

    Returns the groups in time order (by first call) and, per variant, x = group
    label of each call and y = its latency. Dropped calls (never sent) are left out;
    rejected calls count with their (near zero) latency: that is what the caller saw.
    `min_ms` raises smaller latencies to that floor, for a log axis.
    """
    variant, groups, ms, order = _latency_arrays(events, by)
    if min_ms is not None:
        ms = np.maximum(ms, min_ms)
    out: dict[str, XY] = {}
    for v in _unique(variant):
        mine = variant == v
        out[str(v)] = XY(groups[mine].tolist(), ms[mine].tolist())
    return order, out


def latency_ecdf(events: pd.DataFrame, by: str = "phase") -> dict[tuple[str, str], XY]:
    """Empirical CDF of latency (ms) per (variant, group): x sorted latency, y fraction <= x."""
    variant, groups, ms, order = _latency_arrays(events, by)
    out: dict[tuple[str, str], XY] = {}
    for v in _unique(variant):
        for g in order:
            sel = (variant == v) & (groups == g)
            if not sel.any():
                continue
            x = np.sort(ms[sel])
            out[(str(v), str(g))] = XY(x.tolist(), (np.arange(1, len(x) + 1) / len(x)).tolist())
    return out


def _grid(t_max: float, step: float) -> np.ndarray:
    n = max(int(np.ceil(t_max / step - 1e-9)), 1)
    return np.arange(1, n + 1) * step


def success_rate_series(
    events: pd.DataFrame, window_s: float = 5.0, *, step_s: float | None = None
) -> dict[str, XY]:
    """Per variant: the fraction of calls started in the trailing `window_s` that succeeded.

    Client view; a call succeeded as availability counts it (`cblab.analysis.succeeded`:
    success, slow, or late but answered). Sampled every `step_s` (default window/4);
    None where no call started.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    step = window_s / 4 if step_s is None else float(step_s)
    if not step > 0:
        raise ValueError(f"step_s must be > 0, got {step_s!r}")
    frame = as_events(events)
    pos, variant = _call_positions(frame, CLIENT_VIEW)
    t = _num(frame, "t")[pos]
    ok = succeeded(_text(frame, "outcome")[pos], _text(frame, "error_type")[pos])
    keep = np.isfinite(t)
    t, ok, variant = t[keep], ok[keep], variant[keep]
    if len(t) == 0:
        return {}
    grid = _grid(float(t.max()), step)
    out: dict[str, XY] = {}
    for v in _unique(variant):
        mine = variant == v
        order = np.argsort(t[mine], kind="stable")
        tv, okv = t[mine][order], ok[mine][order]
        cum = np.concatenate(([0], np.cumsum(okv)))
        hi = np.searchsorted(tv, grid, side="right")
        lo = np.searchsorted(tv, grid - window_s, side="right")
        n = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = (cum[hi] - cum[lo]) / n
        y = [None if k == 0 else float(r) for k, r in zip(n.tolist(), rate.tolist(), strict=True)]
        out[str(v)] = XY(grid.tolist(), y)
    return out


def _rate(t: np.ndarray, edges: np.ndarray, widths: np.ndarray) -> list[float]:
    counts, _ = np.histogram(t, bins=edges)
    rates = (counts / widths).tolist()
    return [*rates, rates[-1]]  # the last value again at the end edge, for a step line


def _bin_edges(t_max: float, bin_s: float) -> np.ndarray:
    """Edges of `bin_s` bins from 0 covering `t_max`. A last partial bin ends at t_max;
    it is dropped when shorter than half a bin (too short for a meaningful rate)."""
    full = max(int(np.floor(t_max / bin_s + 1e-9)), 0)  # all rows before 0: one bin
    edges = np.arange(full + 1) * bin_s
    if full == 0:
        return np.array([0.0, max(t_max, bin_s)])
    if t_max - edges[-1] >= bin_s / 2:
        edges = np.append(edges, t_max)
    return edges


def backend_rate_series(
    events: pd.DataFrame, bin_s: float = 1.0, *, offered: bool = True
) -> dict[tuple[str, str], XY]:
    """Requests per second per `bin_s` bin, keyed (variant, "backend") and (variant, "offered").

    "backend": admitted calls (outcome not rejected/dropped), backend view: the load
    the dependency actually saw. "offered": every call the clients made (client view).
    x is each bin's start time, plus the end of the last bin (repeating its value), so
    a step line (`line_shape="hv"`) covers every bin. A last partial bin is divided by
    its own width.
    """
    if not bin_s > 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s!r}")
    frame = as_events(events)
    t_all = _num(frame, "t")
    outcome = _text(frame, "outcome")
    b_pos, b_variant = _call_positions(frame, BACKEND_VIEW)
    admitted = ~np.isin(outcome[b_pos], list(NOT_ADMITTED)) & np.isfinite(t_all[b_pos])
    b_t, b_variant = t_all[b_pos][admitted], b_variant[admitted]
    if len(b_pos) == 0:
        return {}
    if offered:
        c_pos, c_variant = _call_positions(frame, CLIENT_VIEW)
        c_t = t_all[c_pos]
    else:
        c_t, c_variant = np.empty(0), np.empty(0, dtype=object)
    finite = np.concatenate((t_all[b_pos], c_t))
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return {}
    edges = _bin_edges(float(finite.max()), bin_s)
    widths = np.diff(edges)
    starts = edges.tolist()
    out: dict[tuple[str, str], XY] = {}
    for v in _unique(_variants(frame)[b_pos]):
        out[(str(v), "backend")] = XY(starts, _rate(b_t[b_variant == v], edges, widths))
        if offered:
            out[(str(v), "offered")] = XY(starts, _rate(c_t[c_variant == v], edges, widths))
    return out


def set_trace_data(fig: Any, arrays: Mapping[Any, Any]) -> None:
    """Assign fresh arrays to the traces of `fig` built by a cblab builder, in place.

    Each trace is matched by the key in its `meta` (as the trace-array functions key
    their results); a trace whose key is missing from `arrays` is emptied. Works on a
    `go.Figure` and a `go.FigureWidget` (wrap the call in `fig.batch_update()`).
    """
    for trace in fig.data:
        meta = trace.meta
        if not isinstance(meta, (list, tuple)):
            continue
        key = meta[0] if len(meta) == 1 else tuple(meta)
        data = arrays.get(key)
        if data is None:
            trace.x, trace.y = [], []
            if getattr(trace, "type", None) == "bar":
                trace.base, trace.customdata = [], []
            continue
        for field, value in data._asdict().items():
            setattr(trace, field, value)


def combine_events(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Several runs' events as one frame whose variant says which run each row came from.

    The variant becomes "<label> · <variant>" (or just "<label>" for a run with one
    variant), so every builder draws the runs side by side on one figure.
    """
    parts = []
    for name, events in frames.items():
        frame = as_events(events)
        variant = _variants(frame)
        if len(_unique(variant)) > 1:
            new = np.array([f"{name} · {v}" for v in variant.tolist()], dtype=object)
        else:
            new = np.full(len(frame), name, dtype=object)
        parts.append(frame.assign(variant=new))
    if not parts:
        return as_events(None)
    return pd.concat(parts, ignore_index=True)
