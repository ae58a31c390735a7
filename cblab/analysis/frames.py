"""Event rows (live or simulated) -> one validated pandas DataFrame.

Whatever a run came from (the server's `/events`, the load generator, the
simulator, a CSV written by any of them), analysis starts from the same frame:
the columns of `cblab.schema.EVENT_COLUMNS` with fixed dtypes, checked once
here so the KPI code can trust it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cblab.schema import CALL_OUTCOMES, EVENT_COLUMNS, STATES

__all__ = [
    "EVENT_DTYPES",
    "KINDS",
    "REQUIRED_COLUMNS",
    "AnalysisError",
    "events_frame",
    "read_events",
    "write_events",
]

KINDS = ("call", "state")

#: Columns a frame must have; the other `EVENT_COLUMNS` are added (empty) when missing.
REQUIRED_COLUMNS: tuple[str, ...] = ("kind", "t", "outcome", "latency", "state", "state_after")

#: The dtype of each column of an events frame.
EVENT_DTYPES: dict[str, str] = {
    "seq": "int64",
    "kind": "str",
    "t": "float64",
    "source": "str",
    "variant": "str",
    "breaker": "str",
    "tool": "str",
    "outcome": "str",
    "latency": "float64",
    "state": "str",
    "state_after": "str",
    "error_type": "str",
    "reason": "str",
    "generation": "Int64",
    "phase": "str",
}

_NUMERIC = ("seq", "t", "latency", "generation")


class AnalysisError(ValueError):
    """Events that cannot be analysed; the message says what is wrong and where."""


def events_frame(events: Any) -> pd.DataFrame:
    """A validated events frame from any of:

    - a DataFrame (validated and normalised; not modified in place),
    - an iterable of row dicts (`cblab.schema.event_row` rows, `/events` JSON),
    - a path to a CSV file (as written by `write_events` or `cblab simulate -o`),
    - anything with a `to_frame()` method, such as a `cblab.sim.SimRun`.

    Columns come out in `EVENT_COLUMNS` order (extra columns are kept after them),
    with `EVENT_DTYPES`; `seq` is numbered 1.. when absent or empty.
    """
    if isinstance(events, pd.DataFrame):
        frame = events.copy()
    elif isinstance(events, (str, Path)):
        return read_events(events)
    elif hasattr(events, "to_frame") and callable(events.to_frame):
        frame = events.to_frame()
        if not isinstance(frame, pd.DataFrame):
            raise AnalysisError(f"to_frame() returned {type(frame).__name__}, not a DataFrame")
    elif isinstance(events, Mapping):
        raise AnalysisError(
            "events must be rows (a list of dicts), a DataFrame or a CSV path, got one dict"
        )
    elif isinstance(events, Iterable):
        rows = list(events)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise AnalysisError(f"event row {i} must be a dict, got {type(row).__name__}")
        frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(EVENT_COLUMNS))
    else:
        raise AnalysisError(
            f"events must be rows, a DataFrame, a CSV path or a SimRun, got {type(events).__name__}"
        )
    return _normalise(frame)


def read_events(path: str | Path) -> pd.DataFrame:
    """Read and validate an events CSV."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={c: "str" for c, d in EVENT_DTYPES.items() if d == "str"})
    except FileNotFoundError:
        raise AnalysisError(f"no such events file: {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"cannot read events file {str(path)!r}: {exc}") from None
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"events file {str(path)!r} is empty (not even a header)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise AnalysisError(f"events file {str(path)!r} is not valid CSV: {exc}") from None
    try:
        return _normalise(frame)
    except AnalysisError as exc:
        raise AnalysisError(f"{path.name}: {exc}") from None


def write_events(events: Any, path: str | Path) -> None:
    """Write events (anything `events_frame` accepts) as CSV."""
    events_frame(events).to_csv(path, index=False)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"events are missing required column(s) {', '.join(missing)}; "
            f"an events frame has the columns of cblab.schema.EVENT_COLUMNS: "
            f"{', '.join(EVENT_COLUMNS)}"
        )
    frame = frame.reset_index(drop=True)
    n = len(frame)
    for column in EVENT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    if frame["seq"].isna().all():  # rows built without numbers: number them in order
        frame["seq"] = np.arange(1, n + 1)
    for column in _NUMERIC:
        values = frame[column]
        if values.dtype.kind in "if":
            continue
        coerced = pd.to_numeric(values, errors="coerce")
        bad = coerced.isna() & values.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise AnalysisError(f"row {i}: {column} must be a number, got {values.iloc[i]!r}")
        frame[column] = coerced
    try:
        frame = frame.astype(
            {c: d for c, d in EVENT_DTYPES.items() if c not in ("seq", "generation")}
        )
        frame["seq"] = _integers(frame["seq"], "seq", nullable=False)
        frame["generation"] = _integers(frame["generation"], "generation", nullable=True)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, AnalysisError):
            raise
        raise AnalysisError(f"events have a value of the wrong type: {exc}") from None
    _check_values(frame)
    extra = [c for c in frame.columns if c not in EVENT_COLUMNS]
    return frame[[*EVENT_COLUMNS, *extra]]


def _integers(values: pd.Series, column: str, *, nullable: bool) -> pd.Series:
    floats = values.astype("float64")
    bad = floats.notna() & (floats != np.floor(floats))
    if not nullable:
        bad |= floats.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise AnalysisError(f"row {i}: {column} must be an integer, got {values.iloc[i]!r}")
    return floats.astype("Int64" if nullable else "int64")


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _check_values(frame: pd.DataFrame) -> None:
    kind = frame["kind"]
    bad = ~kind.isin(KINDS)
    if bad.any():
        i = _first_bad(bad)
        raise AnalysisError(f"row {i}: kind must be one of {', '.join(KINDS)}, got {kind.iloc[i]!r}")
    t = frame["t"]
    bad = ~np.isfinite(t.to_numpy(dtype="float64", na_value=math.nan))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise AnalysisError(f"row {i}: t must be a finite number of seconds, got {t.iloc[i]!r}")
    latency = frame["latency"]
    bad = latency.notna() & ~(latency >= 0)
    if bad.any():
        i = _first_bad(bad)
        raise AnalysisError(f"row {i}: latency must be >= 0 seconds, got {latency.iloc[i]!r}")
    calls = kind == "call"
    outcome = frame["outcome"]
    bad = calls & ~outcome.isin(CALL_OUTCOMES)
    if bad.any():
        i = _first_bad(bad)
        raise AnalysisError(
            f"row {i}: unknown call outcome {outcome.iloc[i]!r}; "
            f"outcomes: {', '.join(CALL_OUTCOMES)}"
        )
    for column in ("state", "state_after"):
        values = frame[column]
        # calls may lack a state (the load generator's own rows); state changes may not
        bad = ~values.isin(STATES) & (values.notna() | ~calls)
        if bad.any():
            i = _first_bad(bad)
            raise AnalysisError(
                f"row {i}: {column} must be one of {', '.join(STATES)}, got {values.iloc[i]!r}"
            )
