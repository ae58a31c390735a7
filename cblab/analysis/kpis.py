"""Key figures of a run, for the whole run and per scenario phase.

Definitions (calls are `kind == "call"` rows, placed in a phase by `t`, their
admission time; a window is the whole run or one phase):

requested         calls in the window
successful        outcome success or slow, or late with no error (a late call that
                  got its answer; `error_type` "not_found" also counts as answered):
                  `succeeded(outcome, error_type)`, which the plots use too
rejected          outcome rejected: failed fast by the breaker, nothing was sent
failed            requested - successful - rejected (failures, deadlines, resets,
                  excluded, cancelled, the load generator's timeout and dropped)
availability      successful / requested
share_failed_fast rejected / requested
admitted          calls sent on (not rejected, not dropped)
wasted            admitted calls that hit a failing backend: admitted during a
                  fault phase, or admitted at any time and failed
wasted_share      wasted / requested
latency_pXX_s     percentiles of `latency` over all requested calls (what callers
                  see: a rejection counts with its ~0 s)
throughput_per_s  requested per second of the window; goodput_per_s: successful
trips             CLOSED -> OPEN changes; probe_failures: HALF_OPEN -> OPEN
flaps             trips within `flap_window_s` (default 10 s) of the breaker's
                  previous move to CLOSED: it closed, and promptly tripped again
time_<state>_s    seconds spent in each state within the window (from the state
                  rows; the state before the first change is the first row's `state`)
fault episode     a run of consecutive fault phases (`cblab.analysis.scenarios.
                  fault_phase_names` says which phases are faults: the service is
                  down or hangs, or differs from its baseline phase; background
                  errors every healthy phase has are not a fault)
detection_s       episode start -> first move to OPEN during the episode (0 when
                  the breaker is already open at the start; NaN when it never
                  opens before the episode ends). Run value: mean over detected
                  episodes; `detected` counts them
recovery_s        episode end -> the breaker is CLOSED (0 when it already is; NaN
                  when it never left CLOSED during the episode (nothing to recover
                  from: an unprotected run, or a fault it never saw), when it does
                  not close before the run ends, or the fault lasts to the end).
                  Run value: mean over recovered episodes
duration_s        length of the window (the run: the scenario's total duration,
                  else `duration_s=`, else the last row's `t`)

Per phase, `detection_s` belongs to the phase that starts an episode and
`recovery_s` to the phase right after one ends.

`BREAKER_KPIS` describe the breaker's states: for a run that no breaker
protects they mean nothing. `FAULT_KPIS` need to know which phases are faults
(from the scenario, or `fault_phases=`); without that, a run has no fault
phases and these figures say nothing about faults.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cblab import CircuitState, Outcome
from cblab.demo import BREAKER_SERVICE
from cblab.faults.scenario import Scenario
from cblab.schema import CompactRun

from .frames import AnalysisError, _shown, events_frame
from .scenarios import Window, _episodes, as_scenario, phase_windows

__all__ = [
    "BREAKER_KPIS",
    "DEFAULT_FLAP_WINDOW_S",
    "FAULT_KPIS",
    "GROUP_COLUMNS",
    "KPI_COLUMNS",
    "PROBE_FAILURE",
    "TRIP",
    "call_succeeded",
    "episodes",
    "false_trips",
    "kpis",
    "missing_reasons",
    "phase_kpis",
    "run_kpis",
    "state_intervals",
    "succeeded",
]

DEFAULT_FLAP_WINDOW_S = 10.0

#: A run is one (source, variant, breaker): `kpis` gives one row per run.
GROUP_COLUMNS: tuple[str, ...] = ("source", "variant", "breaker")

KPI_COLUMNS: tuple[str, ...] = (
    "requested",
    "successful",
    "failed",
    "rejected",
    "availability",
    "share_failed_fast",
    "admitted",
    "wasted",
    "wasted_share",
    "latency_p50_s",
    "latency_p95_s",
    "latency_p99_s",
    "throughput_per_s",
    "goodput_per_s",
    "trips",
    "probe_failures",
    "flaps",
    "time_closed_s",
    "time_open_s",
    "time_half_open_s",
    "fault_episodes",
    "detected",
    "detection_s",
    "recovered",
    "recovery_s",
    "duration_s",
)

# How the breaker met each fault episode: about the breaker, and about the faults.
_EPISODE_KPIS = ("detected", "detection_s", "recovered", "recovery_s")

#: KPIs about the breaker's states: they say nothing of a run that no breaker protects.
BREAKER_KPIS: tuple[str, ...] = (
    "trips", "probe_failures", "flaps", "time_closed_s", "time_open_s", "time_half_open_s",
    *_EPISODE_KPIS,
)  # fmt: skip

#: KPIs that need to know which phases are faults (the scenario, or `fault_phases=`).
FAULT_KPIS: tuple[str, ...] = ("wasted", "wasted_share", "fault_episodes", *_EPISODE_KPIS)

#: A trip: the breaker's move from CLOSED to OPEN (state left, state entered).
TRIP: tuple[str, str] = ("closed", "open")
#: A failed probe: a trial in HALF_OPEN failed and the breaker went back to OPEN.
#: Counted apart from trips: "moves to OPEN" = trips + failed probes.
PROBE_FAILURE: tuple[str, str] = ("half_open", "open")

_SUCCESS_OUTCOMES = ("success", "slow")
# a compact row's enums as text: a dict lookup (Enum.value is a slow descriptor)
_TEXT: dict[Any, str] = {member: member.value for member in (*Outcome, *CircuitState)}
_BY_T, _LATENCY, _OUTCOME, _ERROR = (operator.itemgetter(i) for i in (1, 2, 3, 6))
_ANSWERED_ERRORS = ("not_found",)  # a late call with this error_type still got its answer



def succeeded(outcome: Any, error_type: Any) -> np.ndarray:
    """Which calls count as `successful`: outcome success or slow, or late and answered.

    A late call was answered when it has no `error_type` (or "not_found", an answer
    too). `outcome` and `error_type` are the calls' columns (Series, arrays or lists,
    missing values as None or NaN); returns a bool array. Availability and every
    figure of success use this one definition.
    """
    outcome = pd.Series(outcome, dtype=object, copy=False)  # isin hashes: fast on text
    ok = outcome.isin(_SUCCESS_OUTCOMES).to_numpy().copy()
    late = outcome.isin(("late",)).to_numpy()
    if late.any():
        error = pd.Series(error_type, dtype=object, copy=False)[late]
        ok[late] = (error.isna() | error.isin(_ANSWERED_ERRORS)).to_numpy()
    return ok


def call_succeeded(outcome: Any, error_type: Any = None) -> bool:
    """`succeeded` for one call, without numpy (the live status line counts with it)."""
    if outcome in _SUCCESS_OUTCOMES:
        return True
    if outcome != "late":
        return False
    return error_type is None or error_type in _ANSWERED_ERRORS or (
        isinstance(error_type, float) and math.isnan(error_type))


# --- one run ----------------------------------------------------------------------------


class _Run:
    """One run's calls (sorted by `t`) and state changes (sorted by `t`) as numpy arrays."""

    def __init__(self, *, t: np.ndarray, latency: np.ndarray, success: np.ndarray,
                 rejected: np.ndarray, admitted: np.ndarray, change_t: np.ndarray,
                 change_from: np.ndarray, change_to: np.ndarray, initial: str,
                 duration: float | None) -> None:
        self.t, self.latency = t, latency
        self.success, self.rejected, self.admitted = success, rejected, admitted
        self.change_t, self.change_from, self.change_to = change_t, change_from, change_to
        # the timeline: segment i runs from seg_start[i] to seg_start[i + 1] in seg_state[i]
        self.seg_start = np.concatenate(([-math.inf], change_t))
        self.seg_state = np.concatenate((np.array([initial], dtype=object), change_to))
        if duration is None:
            ends = [0.0]
            if len(t):
                ends.append(float(t[-1]))
            if len(change_t):
                ends.append(float(change_t.max()))
            duration = max(ends)
        self.duration = float(duration)
        # trips and the breaker's moves to CLOSED, for flaps
        self.trip = (change_from == TRIP[0]) & (change_to == TRIP[1])
        self.probe_failure = (change_from == PROBE_FAILURE[0]) & (change_to == PROBE_FAILURE[1])
        self.closing = (change_to == "closed") & (change_from != "closed")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, duration: float | None) -> _Run:
        is_call = (frame["kind"] == "call").to_numpy()
        calls = frame[is_call]
        calls = calls.iloc[np.lexsort((calls["seq"].to_numpy(), calls["t"].to_numpy()))]
        outcome = calls["outcome"]
        rejected = (outcome == "rejected").to_numpy()
        states = frame[~is_call]
        states = states.iloc[np.lexsort((states["seq"].to_numpy(), states["t"].to_numpy()))]
        if len(states):
            initial = str(states["state"].iloc[0])
        else:
            known = calls["state"].dropna()
            initial = str(known.iloc[0]) if len(known) else "closed"
        return cls(
            t=calls["t"].to_numpy(dtype="float64"),
            latency=calls["latency"].to_numpy(dtype="float64", na_value=math.nan),
            success=succeeded(outcome, calls["error_type"]),
            rejected=rejected,
            admitted=~(rejected | (outcome == "dropped").to_numpy()),
            change_t=states["t"].to_numpy(dtype="float64"),
            change_from=states["state"].to_numpy(dtype=object),
            change_to=states["state_after"].to_numpy(dtype=object),
            initial=initial,
            duration=duration,
        )

    @classmethod
    def from_sim(cls, run: CompactRun) -> _Run:
        """Straight from a simulated run's compact rows (`COMPACT_ROW_FIELDS`), skipping
        the frame."""
        calls = [row for row in run.rows if row[0] == "call"]
        changes = sorted((row for row in run.rows if row[0] == "state"), key=_BY_T)
        calls.sort(key=_BY_T)  # stable: ties keep their log order
        n = len(calls)
        # columns by C-level getters; enums to text by a dict lookup
        text = _TEXT
        outcome = [text[o] for o in map(_OUTCOME, calls)]
        success = succeeded(outcome, list(map(_ERROR, calls)))
        rejected = np.fromiter((o == "rejected" for o in outcome), dtype=bool, count=n)
        return cls(
            t=np.fromiter(map(_BY_T, calls), dtype="float64", count=n),
            latency=np.fromiter(map(_LATENCY, calls), dtype="float64", count=n),
            success=success, rejected=rejected, admitted=~rejected,
            change_t=np.fromiter((r[1] for r in changes), dtype="float64", count=len(changes)),
            change_from=np.array([_TEXT[r[4]] for r in changes], dtype=object),
            change_to=np.array([_TEXT[r[5]] for r in changes], dtype=object),
            initial=_TEXT[changes[0][4]] if changes else (_TEXT[calls[0][4]] if calls
                                                          else "closed"),
            duration=run.duration_s,
        )

    def state_at(self, when: float) -> str:
        """The state after every change at or before `when`."""
        i = int(np.searchsorted(self.seg_start, when, side="right")) - 1
        return str(self.seg_state[i])

    def time_in_states(self, start: float, end: float) -> dict[str, float]:
        seg_end = np.concatenate((self.seg_start[1:], [math.inf]))
        overlap = np.clip(np.minimum(seg_end, end) - np.maximum(self.seg_start, start), 0.0, None)
        return {
            state: float(overlap[self.seg_state == state].sum())
            for state in ("closed", "open", "half_open")
        }

    def flaps(self, window_s: float) -> np.ndarray:
        """Mask over changes: trips within `window_s` of the previous close."""
        flaps = np.zeros(len(self.change_t), dtype=bool)
        last_close = -math.inf
        for i in range(len(self.change_t)):
            if self.trip[i] and self.change_t[i] - last_close <= window_s:
                flaps[i] = True
            if self.closing[i]:
                last_close = self.change_t[i]
        return flaps

    def left_closed(self, start: float, end: float) -> bool:
        """Whether the breaker was anything but CLOSED at some time in [start, end)."""
        if self.state_at(start) != "closed":
            return True
        inside = (self.change_t >= start) & (self.change_t < end)
        return bool(np.any(self.change_to[inside] != "closed"))

    def detection(self, start: float, end: float) -> float:
        if self.state_at(start) != "closed":
            return 0.0
        opened = self.change_t[(self.change_to == "open") & (self.change_t >= start)
                               & (self.change_t < end)]
        return float(opened[0] - start) if len(opened) else math.nan

    def recovery(self, start: float, end: float) -> float:
        if end >= self.duration or not self.left_closed(start, end):
            return math.nan  # the fault lasts to the end, or there was nothing to recover from
        if self.state_at(end) == "closed":
            return 0.0
        closed = self.change_t[(self.change_to == "closed") & (self.change_t > end)]
        return float(closed[0] - end) if len(closed) else math.nan

    def figures(self, start: float, end: float, fault_mask: np.ndarray, flaps: np.ndarray,
                *, fault: bool | None = None) -> dict[str, Any]:
        """KPIs for calls admitted in [start, end) (fault: this window's flag, None: per call)."""
        lo, hi = np.searchsorted(self.t, [start, end], side="left")
        if end >= self.duration:  # the last window keeps whatever came after the end
            hi = len(self.t)
        if start <= 0:
            lo = 0
        success = self.success[lo:hi]
        rejected = self.rejected[lo:hi]
        admitted = self.admitted[lo:hi]
        latency = self.latency[lo:hi]
        latency = latency[~np.isnan(latency)]
        requested = hi - lo
        n_success = int(success.sum())
        n_rejected = int(rejected.sum())
        in_fault = fault_mask[lo:hi] if fault is None else np.full(requested, fault)
        wasted = int((admitted & (in_fault | ~success)).sum())
        span = end - start
        c = (self.change_t >= start) & (self.change_t < end)
        p50, p95, p99 = (np.percentile(latency, [50, 95, 99]) if len(latency)
                         else (math.nan, math.nan, math.nan))
        times = self.time_in_states(start, end)
        return {
            "requested": requested,
            "successful": n_success,
            "failed": requested - n_success - n_rejected,
            "rejected": n_rejected,
            "availability": n_success / requested if requested else math.nan,
            "share_failed_fast": n_rejected / requested if requested else math.nan,
            "admitted": int(admitted.sum()),
            "wasted": wasted,
            "wasted_share": wasted / requested if requested else math.nan,
            "latency_p50_s": float(p50),
            "latency_p95_s": float(p95),
            "latency_p99_s": float(p99),
            "throughput_per_s": requested / span if span > 0 else math.nan,
            "goodput_per_s": n_success / span if span > 0 else math.nan,
            "trips": int((self.trip & c).sum()),
            "probe_failures": int((self.probe_failure & c).sum()),
            "flaps": int((flaps & c).sum()),
            "time_closed_s": times["closed"],
            "time_open_s": times["open"],
            "time_half_open_s": times["half_open"],
            "duration_s": span,
        }


def _fault_mask(t: np.ndarray, windows: Sequence[Window]) -> np.ndarray:
    mask = np.zeros(len(t), dtype=bool)
    for window in windows:
        if window.fault:
            mask |= (t >= window.start) & (t < window.end)
    return mask


def _prepare(frame: pd.DataFrame, scenario: Scenario | None, *, service: str | None,
             fault_phases: Iterable[str] | None,
             duration_s: float | None) -> tuple[_Run, list[Window]]:
    """One run's arrays and phase windows, from its rows in a frame."""
    duration = scenario.total_duration_s if scenario is not None else duration_s
    run = _Run.from_frame(frame, duration)
    if service is None:
        breakers = frame["breaker"].dropna().unique()
        if len(breakers) == 1:
            service = BREAKER_SERVICE.get(str(breakers[0]))
    if scenario is not None:
        windows = phase_windows(scenario, service=service, fault_phases=fault_phases)
    else:
        windows = _windows_from_rows(frame, run.duration, fault_phases)
    return run, windows


def _analyse(run: _Run, windows: list[Window], *, flap_window_s: float,
             per_phase: bool) -> list[dict[str, Any]]:
    flaps = run.flaps(flap_window_s)
    fault_mask = _fault_mask(run.t, windows)
    found = _episodes(windows)
    detections = [run.detection(start, end) for start, end, _, _ in found]
    recoveries = [run.recovery(start, end) for start, end, _, _ in found]
    if not per_phase:
        row = run.figures(0.0, run.duration, fault_mask, flaps)
        detected = [d for d in detections if not math.isnan(d)]
        recovered = [r for r in recoveries if not math.isnan(r)]
        row.update(
            fault_episodes=len(found),
            detected=len(detected),
            detection_s=float(np.mean(detected)) if detected else math.nan,
            recovered=len(recovered),
            recovery_s=float(np.mean(recovered)) if recovered else math.nan,
        )
        return [{column: row[column] for column in KPI_COLUMNS}]
    rows = []
    for i, window in enumerate(windows):
        start = 0.0 if i == 0 else window.start
        end = run.duration if i == len(windows) - 1 else window.end
        row = run.figures(start, end, fault_mask, flaps, fault=window.fault)
        starts = [k for k, (_, _, first, _) in enumerate(found) if first == i]
        ends = [k for k, (_, _, _, last) in enumerate(found) if last == i - 1]
        row.update(
            fault_episodes=len(starts),
            detected=sum(not math.isnan(detections[k]) for k in starts),
            detection_s=detections[starts[0]] if starts else math.nan,
            recovered=sum(not math.isnan(recoveries[k]) for k in ends),
            recovery_s=recoveries[ends[0]] if ends else math.nan,
        )
        rows.append({"phase": window.name, "start": window.start, "end": window.end,
                     "fault": window.fault, **{c: row[c] for c in KPI_COLUMNS}})
    return rows


def _windows_from_rows(frame: pd.DataFrame, duration: float,
                       fault_phases: Iterable[str] | None) -> list[Window]:
    """Without a scenario: phases from the rows' `phase` column, in order of first `t`."""
    faults = set(fault_phases or ())
    phased = frame[frame["phase"].notna()]
    if phased.empty:
        return [Window("(run)", 0.0, duration, False)]
    firsts = phased.groupby("phase", sort=False)["t"].min().sort_values()
    names, starts = list(firsts.index), [0.0, *firsts.to_numpy()[1:].tolist()]
    ends = [*starts[1:], duration]
    return [Window(str(n), s, e, str(n) in faults) for n, s, e in zip(names, starts, ends, strict=True)]


# --- why a figure is missing ----------------------------------------------------------------

NO_FAULT = "no fault phase in this run"
NEVER_OPENED = "the breaker never opened"
NEVER_OPENED_IN_FAULT = "the breaker never opened during a fault"
NOT_CLOSED = "the breaker did not close again before the run ended (or the fault lasts to the end)"


def _nan(value: Any) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def missing_reasons(figures: Mapping[str, Any]) -> dict[str, str]:
    """Why `detection_s` / `recovery_s` are missing (NaN) in one run's KPIs (a
    `run_kpis` dict or a row of `kpis`; averaged rows work too): {kpi: reason}."""
    reasons: dict[str, str] = {}
    no_fault = not figures.get("fault_episodes")
    opened = any(not _nan(figures.get(k)) and float(figures[k]) > 0
                 for k in ("trips", "probe_failures", "time_open_s", "time_half_open_s"))
    if _nan(figures.get("detection_s")):
        reasons["detection_s"] = NO_FAULT if no_fault else NEVER_OPENED_IN_FAULT
    if _nan(figures.get("recovery_s")):
        reasons["recovery_s"] = (NO_FAULT if no_fault else NOT_CLOSED if opened
                                 else NEVER_OPENED)
    return reasons


# --- public API -------------------------------------------------------------------------


def _inputs(events: Any, scenario: Any) -> tuple[pd.DataFrame, Scenario | None]:
    if scenario is None:
        scenario = getattr(events, "scenario", None)
    return events_frame(events), as_scenario(scenario)


def _check_flap_window(flap_window_s: Any) -> float:
    if isinstance(flap_window_s, bool) or not isinstance(flap_window_s, (int, float)) or not (
        flap_window_s >= 0
    ):
        raise AnalysisError(f"flap_window_s must be a number of seconds >= 0, got {_shown(flap_window_s)}")
    return float(flap_window_s)


def _sim_run(events: Any, scenario: Any, options: Mapping[str, Any]) -> tuple[_Run, list[Window]] | None:
    """The fast path for a SimRun analysed against its own scenario: no frame at all."""
    if not isinstance(events, CompactRun) or scenario is not None or options.get("duration_s"):
        return None
    service = options.get("service") or events.service
    windows = phase_windows(events.scenario, service=service,
                            fault_phases=options.get("fault_phases"))
    return _Run.from_sim(events), windows


def _sim_rows(events: Any, *, per_phase: bool = False, service: str | None = None,
              fault_phases: Iterable[str] | None = None,
              flap_window_s: float = DEFAULT_FLAP_WINDOW_S,
              duration_s: float | None = None) -> list[dict[str, Any]] | None:
    """`kpis`' rows for a SimRun analysed against its own scenario (no frame at all),
    or None when the fast path does not apply."""
    flap_window_s = _check_flap_window(flap_window_s)
    fast = _sim_run(events, None, {"service": service, "fault_phases": fault_phases,
                                   "duration_s": duration_s})
    if fast is None:
        return None
    return _analyse(*fast, flap_window_s=flap_window_s, per_phase=per_phase)


def kpis(
    events: Any,
    scenario: Any = None,
    *,
    per_phase: bool = False,
    by: Sequence[str] = GROUP_COLUMNS,
    service: str | None = None,
    fault_phases: Iterable[str] | None = None,
    flap_window_s: float = DEFAULT_FLAP_WINDOW_S,
    duration_s: float | None = None,
) -> pd.DataFrame:
    """KPIs, one row per run (each distinct `by` combination), or per run and phase.

    events     rows, a DataFrame, a CSV path or a `SimRun` (its scenario is used
               when `scenario` is None)
    scenario   phase boundaries and which phases are faults (a `Scenario`, a name,
               a path or a dict); without one, phases come from the rows' `phase`
               column and only `fault_phases` are faults
    service    the backend service whose faults count (default: from the breaker)
    """
    flap_window_s = _check_flap_window(flap_window_s)
    by = list(by)
    columns = [*by, *(["phase", "start", "end", "fault"] if per_phase else []), *KPI_COLUMNS]
    if not by and scenario is None:
        rows = _sim_rows(events, per_phase=per_phase, service=service,
                         fault_phases=fault_phases, flap_window_s=flap_window_s,
                         duration_s=duration_s)
        if rows is not None:
            return pd.DataFrame(rows, columns=columns)
    frame, scenario = _inputs(events, scenario)
    unknown = [c for c in by if c not in frame.columns]
    if unknown:
        raise AnalysisError(f"cannot group by unknown column(s) {', '.join(unknown)}")
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    groups = frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(by, key, strict=True))
        run, windows = _prepare(group, scenario, service=service, fault_phases=fault_phases,
                                duration_s=duration_s)
        for row in _analyse(run, windows, flap_window_s=flap_window_s, per_phase=per_phase):
            rows.append({**labels, **row})
    return pd.DataFrame(rows, columns=columns)


def _single(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in GROUP_COLUMNS if frame[c].nunique(dropna=True) > 1]
    if keys:
        raise AnalysisError(
            f"these events hold several runs (distinct {', '.join(keys)}); "
            "select one, or use kpis() for one row per run"
        )
    return frame


def run_kpis(events: Any, scenario: Any = None, **options: Any) -> dict[str, Any]:
    """The KPIs of one run as a dict (`KPI_COLUMNS` keys). See `kpis` for the options.

    A `SimRun` analysed against its own scenario skips the DataFrame (fast path
    for sweeps); the figures are the same.
    """
    if isinstance(events, CompactRun) and scenario is None:
        rows = _sim_rows(events, **options)  # no frame at all: sweeps call this per run
        if rows:
            return {column: _plain(rows[0][column]) for column in KPI_COLUMNS}
        table = kpis(events, None, by=(), **options)
    else:
        frame, scenario = _inputs(events, scenario)
        _single(frame)
        table = kpis(frame, scenario, by=(), **options)
    if table.empty:
        raise AnalysisError("no events to analyse")
    return {column: _plain(table[column].iloc[0]) for column in KPI_COLUMNS}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python int or float it holds."""
    return value.item() if isinstance(value, np.generic) else value


def phase_kpis(events: Any, scenario: Any = None, **options: Any) -> pd.DataFrame:
    """The KPIs of one run, one row per scenario phase (`phase`, `start`, `end`, `fault`, ...)."""
    if isinstance(events, CompactRun) and scenario is None:
        return kpis(events, None, by=(), per_phase=True, **options)
    frame, scenario = _inputs(events, scenario)
    _single(frame)
    return kpis(frame, scenario, by=(), per_phase=True, **options)


DEFAULT_FALSE_TRIP_GRACE_S = 10.0


def _against_scenario(events: Any, scenario: Any, what: str, *, service: str | None,
                      fault_phases: Iterable[str] | None) -> tuple[_Run, list[Window]]:
    """One run's arrays and phase windows; `what` needs the scenario (AnalysisError)."""
    frame, plan = _inputs(events, scenario)
    _single(frame)
    if plan is None:
        raise AnalysisError(f"{what} need the scenario (which phases are faults)")
    return _prepare(frame, plan, service=service, fault_phases=fault_phases, duration_s=None)


def false_trips(events: Any, scenario: Any = None, *, service: str | None = None,
                fault_phases: Iterable[str] | None = None,
                grace_s: float = DEFAULT_FALSE_TRIP_GRACE_S) -> int:
    """Trips while the service was healthy: CLOSED -> OPEN moves outside every fault
    episode, not counting the `grace_s` seconds after an episode ends (a re-trip right
    after the faults still belongs to them). Failed probes are not trips. `events` as
    for `run_kpis` (a `SimRun` analysed against its own scenario skips the frame)."""
    fast = _sim_run(events, scenario, {"service": service, "fault_phases": fault_phases})
    run, windows = fast or _against_scenario(events, scenario, "false trips", service=service,
                                             fault_phases=fault_phases)
    trips = run.change_t[run.trip]
    covered = np.zeros(len(trips), dtype=bool)
    for start, end, _, _ in _episodes(windows):
        covered |= (trips >= start) & (trips < end + grace_s)
    return int((~covered).sum())


def episodes(events: Any, scenario: Any = None, *, service: str | None = None,
             fault_phases: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per fault episode of one run: its phases, start, end, detection_s, recovery_s."""
    run, windows = _against_scenario(events, scenario, "fault episodes", service=service,
                                     fault_phases=fault_phases)
    rows = [
        {
            "phases": ", ".join(w.name for w in windows[first:last + 1]),
            "start": start,
            "end": end,
            "detection_s": run.detection(start, end),
            "recovery_s": run.recovery(start, end),
        }
        for start, end, first, last in _episodes(windows)
    ]
    return pd.DataFrame(rows, columns=["phases", "start", "end", "detection_s", "recovery_s"])


def state_intervals(events: Any, scenario: Any = None, *,
                    duration_s: float | None = None) -> pd.DataFrame:
    """One run's breaker states as intervals: `start`, `end`, `state` (for state bands)."""
    frame, scenario = _inputs(events, scenario)
    _single(frame)
    duration = scenario.total_duration_s if scenario is not None else duration_s
    run = _Run.from_frame(frame, duration)
    starts = np.maximum(run.seg_start, 0.0)
    ends = np.minimum(np.concatenate((run.seg_start[1:], [run.duration])), run.duration)
    keep = ends > starts
    return pd.DataFrame({"start": starts[keep], "end": ends[keep],
                         "state": run.seg_state[keep].astype(str)})
