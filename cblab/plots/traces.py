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

from cblab.schema import EVENT_COLUMNS

__all__ = [
    "BACKEND_VIEW",
    "CLIENT_VIEW",
    "NOT_ADMITTED",
    "SUCCESS_OUTCOMES",
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
# Outcomes where the caller got a result ("slow" succeeded, just slowly).
SUCCESS_OUTCOMES: frozenset[str] = frozenset({"success", "slow"})
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


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _labels(series: pd.Series, default: str) -> pd.Series:
    """Text labels with missing values replaced, as a plain object series."""
    return series.astype(object).where(series.notna(), default).astype(str)


def variants_of(events: pd.DataFrame) -> list[str]:
    """Variant labels in order of first appearance (missing variant: "run")."""
    frame = as_events(events)
    if frame.empty:
        return []
    return list(dict.fromkeys(_labels(frame["variant"], NO_VARIANT)))


def call_rows(events: pd.DataFrame, prefer: Sequence[str] = CLIENT_VIEW) -> pd.DataFrame:
    """Call rows of one source per variant (the first of `prefer` that the variant has).

    Adds `variant_label` (variant, never missing) and `t_s`/`latency_s` as floats.
    """
    frame = as_events(events)
    calls = frame[frame["kind"] == "call"]
    variant = _labels(calls["variant"], NO_VARIANT)
    source = calls["source"].astype(object)
    rank_of = {name: i for i, name in enumerate(prefer)}
    rank = source.map(lambda s: rank_of.get(s, len(prefer))).astype(int)
    if rank.nunique() > 1:
        best = rank.groupby(variant).transform("min")
        keep = (rank == best).to_numpy()
        calls, variant = calls[keep], variant[keep]
    return calls.assign(
        variant_label=variant.to_numpy(),
        t_s=_numeric(calls["t"]),
        latency_s=_numeric(calls["latency"]),
    )


def run_end(events: pd.DataFrame) -> float:
    """The last moment the rows cover: the latest state change or call end (0 if empty)."""
    frame = as_events(events)
    if frame.empty:
        return 0.0
    t = _numeric(frame["t"])
    latency = np.nan_to_num(_numeric(frame["latency"]), nan=0.0)
    ends = t + np.where(frame["kind"].to_numpy() == "call", latency, 0.0)
    return float(np.nanmax(ends)) if np.isfinite(ends).any() else 0.0


def phase_spans(events: pd.DataFrame, *, min_rows: int = 3) -> list[tuple[str, float, float]]:
    """Scenario phases as (name, start, end), from the `phase` column, in time order.

    A phase starts at its first row (the first phase at 0) and ends where the next
    begins (the last at the end of the run). Runs of fewer than `min_rows` rows,
    such as one straggler logged just across a boundary, merge into their neighbour.
    """
    frame = as_events(events)
    frame = frame[frame["phase"].notna()]
    if frame.empty:
        return []
    t = _numeric(frame["t"])
    order = np.argsort(t, kind="stable")
    names = frame["phase"].astype(str).to_numpy()[order]
    times = t[order]
    runs: list[list[Any]] = []  # [name, start, rows]
    for name, group_start, count in _runs(names, times):
        if runs and (runs[-1][0] == name or count < min_rows):
            runs[-1][2] += count
            continue
        runs.append([name, group_start, count])
    end = run_end(events)
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


def state_bands(events: pd.DataFrame, *, t_end: float | None = None) -> StateBands:
    """Breaker state over time: one band per (variant, breaker), a bar per state segment.

    The initial state is the `state` left by the first state row (or the state of the
    first call, or closed); each state row starts a segment in its `state_after`; the
    last segment runs to `t_end` (default: the end of the rows). A variant whose calls
    name no breaker gets a grey "no breaker" band.
    """
    frame = as_events(events)
    bars: dict[str, Bars] = {
        s: Bars([], [], [], []) for s in ("closed", "half_open", "open", NO_BREAKER)
    }
    if frame.empty:
        return StateBands([], bars)
    end = run_end(frame) if t_end is None else float(t_end)
    variant = _labels(frame["variant"], NO_VARIANT)
    variants = list(dict.fromkeys(variant))
    several = len(variants) > 1
    kind = frame["kind"].to_numpy()
    has_breaker = frame["breaker"].notna().to_numpy()
    relevant = has_breaker & ((kind == "state") | (kind == "call"))
    sub = frame[relevant].assign(
        variant_label=variant[relevant].to_numpy(), t_s=_numeric(frame["t"][relevant])
    )
    rows: list[str] = []
    for v in variants:
        mine = sub[sub["variant_label"] == v]
        if mine.empty:
            if ((variant == v) & (frame["kind"] == "call")).any():
                row = f"{v} · no breaker" if several else "no breaker"
                rows.append(row)
                _add_bar(bars[NO_BREAKER], row, 0.0, end, "no breaker in this variant")
            continue
        for breaker in sorted(mine["breaker"].astype(str).unique()):
            one = mine[mine["breaker"].astype(str) == breaker]
            row = f"{v} · {breaker}" if several else breaker
            rows.append(row)
            _state_segments(one, end, bars, row)
    return StateBands(rows, bars)


def _state_segments(rows: pd.DataFrame, end: float, bars: dict[str, Bars], band: str) -> None:
    seq = _numeric(rows["seq"])
    order = np.lexsort((np.nan_to_num(seq, nan=0.0), rows["t_s"].to_numpy()))
    rows = rows.iloc[order]
    changes = rows[rows["kind"] == "state"]
    calls = rows[rows["kind"] == "call"]
    if not changes.empty and pd.notna(changes["state"].iloc[0]):
        current = str(changes["state"].iloc[0])
    elif not calls.empty and pd.notna(calls["state"].iloc[0]):
        current = str(calls["state"].iloc[0])
    else:
        current = "closed"
    start, reason = 0.0, "initial state"
    for t, after, why in zip(
        changes["t_s"].to_numpy(), changes["state_after"], changes["reason"], strict=True
    ):
        if pd.isna(after):
            continue
        _add_bar(bars.get(current, bars[NO_BREAKER]), band, start, float(t), reason)
        current, start = str(after), float(t)
        reason = "" if pd.isna(why) else str(why)
    _add_bar(bars.get(current, bars[NO_BREAKER]), band, start, max(end, start), reason)


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
    calls = call_rows(events, CLIENT_VIEW)
    calls = calls[np.isfinite(calls["latency_s"].to_numpy()) & calls["outcome"].notna()]
    if outcomes is not None:
        calls = calls[calls["outcome"].isin(list(outcomes))]
    out: dict[tuple[str, str], XY] = {}
    for (v, outcome), group in calls.groupby(["variant_label", "outcome"], sort=False):
        ms = group["latency_s"].to_numpy() * 1000.0
        if min_ms is not None:
            ms = np.maximum(ms, min_ms)
        out[(str(v), str(outcome))] = XY(group["t_s"].tolist(), ms.tolist())
    return out


def _group_labels(calls: pd.DataFrame, by: str) -> pd.Series:
    if by not in calls.columns:
        raise ValueError(f"cannot group by {by!r}: not an event column")
    return (
        _labels(calls[by], "(none)")
        if calls[by].notna().any()
        else pd.Series("all", index=calls.index, dtype=object)
    )


def _latency_calls(events: pd.DataFrame) -> pd.DataFrame:
    calls = call_rows(events, CLIENT_VIEW)
    finite = np.isfinite(calls["latency_s"].to_numpy())
    return calls[finite & (calls["outcome"] != "dropped").to_numpy()]


def latency_groups(events: pd.DataFrame, by: str = "phase") -> tuple[list[str], dict[str, XY]]:
    """Latencies (ms) labelled by group (`by` column), per variant; client view.

    Returns the groups in time order (by first call) and, per variant, x = group
    label of each call and y = its latency. Dropped calls (never sent) are left out;
    rejected calls count with their (near zero) latency: that is what the caller saw.
    """
    calls = _latency_calls(events)
    if calls.empty:
        return [], {}
    groups = _group_labels(calls, by)
    order = list(dict.fromkeys(groups.iloc[np.argsort(calls["t_s"].to_numpy(), kind="stable")]))
    ms = calls["latency_s"].to_numpy() * 1000.0
    out: dict[str, XY] = {}
    for v in dict.fromkeys(calls["variant_label"]):
        mask = (calls["variant_label"] == v).to_numpy()
        out[str(v)] = XY(groups[mask].tolist(), ms[mask].tolist())
    return order, out


def latency_ecdf(events: pd.DataFrame, by: str = "phase") -> dict[tuple[str, str], XY]:
    """Empirical CDF of latency (ms) per (variant, group): x sorted latency, y fraction <= x."""
    calls = _latency_calls(events)
    if calls.empty:
        return {}
    groups = _group_labels(calls, by)
    ordered = list(dict.fromkeys(groups.iloc[np.argsort(calls["t_s"].to_numpy(), kind="stable")]))
    out: dict[tuple[str, str], XY] = {}
    for v in dict.fromkeys(calls["variant_label"]):
        for g in ordered:
            mask = ((calls["variant_label"] == v) & (groups == g)).to_numpy()
            if not mask.any():
                continue
            ms = np.sort(calls["latency_s"].to_numpy()[mask] * 1000.0)
            frac = np.arange(1, len(ms) + 1) / len(ms)
            out[(str(v), str(g))] = XY(ms.tolist(), frac.tolist())
    return out


def _grid(t_max: float, step: float) -> np.ndarray:
    n = max(int(np.ceil(t_max / step - 1e-9)), 1)
    return np.arange(1, n + 1) * step


def success_rate_series(
    events: pd.DataFrame, window_s: float = 5.0, *, step_s: float | None = None
) -> dict[str, XY]:
    """Per variant: the fraction of calls started in the trailing `window_s` that succeeded.

    Client view; a call succeeded when its outcome is success or slow (the caller got
    a result). Sampled every `step_s` (default window/4); None where no call started.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    step = window_s / 4 if step_s is None else float(step_s)
    if not step > 0:
        raise ValueError(f"step_s must be > 0, got {step_s!r}")
    calls = call_rows(events, CLIENT_VIEW)
    calls = calls[np.isfinite(calls["t_s"].to_numpy())]
    if calls.empty:
        return {}
    grid = _grid(float(calls["t_s"].max()), step)
    out: dict[str, XY] = {}
    for v, group in calls.groupby("variant_label", sort=False):
        order = np.argsort(group["t_s"].to_numpy(), kind="stable")
        t = group["t_s"].to_numpy()[order]
        ok = group["outcome"].isin(list(SUCCESS_OUTCOMES)).to_numpy()[order]
        cum = np.concatenate(([0], np.cumsum(ok)))
        hi = np.searchsorted(t, grid, side="right")
        lo = np.searchsorted(t, grid - window_s, side="right")
        n = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = (cum[hi] - cum[lo]) / n
        y = [None if k == 0 else float(r) for k, r in zip(n, rate, strict=True)]
        out[str(v)] = XY(grid.tolist(), y)
    return out


def _rate(t: np.ndarray, edges: np.ndarray, widths: np.ndarray) -> list[float]:
    counts, _ = np.histogram(t, bins=edges)
    rates = (counts / widths).tolist()
    return [*rates, rates[-1]]  # the last value again at the end edge, for a step line


def _bin_edges(t_max: float, bin_s: float) -> np.ndarray:
    """Edges of `bin_s` bins from 0 covering `t_max`. A last partial bin ends at t_max;
    it is dropped when shorter than half a bin (too short for a meaningful rate)."""
    full = int(np.floor(t_max / bin_s + 1e-9))
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
    backend = call_rows(events, BACKEND_VIEW)
    backend = backend[np.isfinite(backend["t_s"].to_numpy())]
    if backend.empty:
        return {}
    client = call_rows(events, CLIENT_VIEW) if offered else backend.iloc[:0]
    t_max = max(float(backend["t_s"].max()), float(client["t_s"].max()) if len(client) else 0.0)
    edges = _bin_edges(t_max, bin_s)
    widths = np.diff(edges)
    starts = edges.tolist()
    out: dict[tuple[str, str], XY] = {}
    for v in dict.fromkeys(backend["variant_label"]):
        mine = backend[backend["variant_label"] == v]
        admitted = mine[~mine["outcome"].isin(list(NOT_ADMITTED))]
        out[(str(v), "backend")] = XY(starts, _rate(admitted["t_s"].to_numpy(), edges, widths))
        if offered:
            theirs = client[client["variant_label"] == v]
            out[(str(v), "offered")] = XY(starts, _rate(theirs["t_s"].to_numpy(), edges, widths))
    return out


def set_trace_data(fig: Any, arrays: Mapping[Any, tuple[Any, ...]]) -> None:
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
        variant = _labels(frame["variant"], NO_VARIANT)
        several = variant.nunique() > 1
        new = (f"{name} · " + variant) if several else pd.Series(name, index=frame.index)
        parts.append(frame.assign(variant=new.astype(object).to_numpy()))
    if not parts:
        return as_events(None)
    return pd.concat(parts, ignore_index=True)
