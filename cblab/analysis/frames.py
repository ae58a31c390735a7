"""Event rows (live or simulated) -> one validated pandas DataFrame.

Whatever a run came from (the server's `/events`, the load generator, the
simulator, a CSV written by any of them), analysis starts from the same frame:
the columns of `cblab.schema.EVENT_COLUMNS` with fixed dtypes, checked once
here so the KPI code can trust it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cblab.schema import CALL_OUTCOMES, EVENT_COLUMNS, EVENT_DTYPES, EVENT_KINDS, STATES

__all__ = [
    "EVENT_DTYPES",
    "REQUIRED_COLUMNS",
    "AnalysisError",
    "events_frame",
    "read_events",
    "write_events",
]

#: Columns a frame must have; the other `EVENT_COLUMNS` are added (empty) when missing.
REQUIRED_COLUMNS: tuple[str, ...] = ("kind", "t", "outcome", "latency", "state", "state_after")

_NUMERIC = tuple(c for c, dtype in EVENT_DTYPES.items() if dtype != "str")
# "int64" columns must be whole numbers; "Int64" (pandas' nullable int) ones may also be empty.
_INTEGERS = tuple(c for c, dtype in EVENT_DTYPES.items() if dtype.lower() == "int64")


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
    """The one check of event rows against `cblab.schema` (`cblab.runs` uses it too).

    Refuses (AnalysisError, naming the row and the column): duplicate column names,
    a missing `REQUIRED_COLUMNS` column, a value that is not a number (or integer)
    in a numeric column, a `kind` other than call/state, a `t` that is not a finite
    number, a negative or infinite latency, an unknown outcome (calls) or state, and
    a state row without the state it left and the one it entered. Rows are counted
    from 1; line N+1 is row N in a CSV file with a header.
    """
    columns = list(frame.columns)
    duplicated = sorted({str(c) for c in columns if columns.count(c) > 1})
    if duplicated:
        raise AnalysisError(f"duplicate column name(s) {', '.join(duplicated)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise AnalysisError(
            f"events are missing required column(s) {', '.join(missing)}; "
            f"an events frame has the columns of cblab.schema.EVENT_COLUMNS: "
            f"{', '.join(EVENT_COLUMNS)}"
        )
    frame = frame.reset_index(drop=True)
    for column in EVENT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    if frame["seq"].isna().all():  # rows built without numbers: number them in order
        frame["seq"] = np.arange(1, len(frame) + 1)
    for column in _NUMERIC:
        values = frame[column]
        if values.dtype.kind in "if":
            continue
        coerced = pd.to_numeric(values, errors="coerce")
        kind = "an integer" if column in _INTEGERS else "a number"
        _refuse(coerced.isna() & values.notna(), f"{column} must be {kind}", values)
        frame[column] = coerced
    try:
        frame = frame.astype({c: d for c, d in EVENT_DTYPES.items() if c not in _INTEGERS})
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"events have a value of the wrong type: {exc}") from None
    for column in _INTEGERS:
        frame[column] = _integers(frame[column], column)
    _check_values(frame)
    extra = [c for c in frame.columns if c not in EVENT_COLUMNS]
    return frame[[*EVENT_COLUMNS, *extra]]


def _integers(values: pd.Series, column: str) -> pd.Series:
    dtype = EVENT_DTYPES[column]
    floats = values.astype("float64")
    bad = floats.notna() & (floats != np.floor(floats))
    if dtype != "Int64":  # not nullable
        bad |= floats.isna()
    _refuse(bad, f"{column} must be an integer", values)
    return floats.astype(dtype)


def _check_values(frame: pd.DataFrame) -> None:
    kind = frame["kind"]
    _refuse(~kind.isin(EVENT_KINDS), f"kind must be one of {', '.join(EVENT_KINDS)}", kind)
    t = frame["t"]
    _refuse(~np.isfinite(t), "t must be a finite number of seconds", t)
    latency = frame["latency"]
    _refuse(
        latency.notna() & ~(np.isfinite(latency) & (latency >= 0)),
        "latency must be >= 0 seconds and finite",
        latency,
    )
    calls = kind == "call"
    outcome = frame["outcome"]
    _refuse(
        calls & ~outcome.isin(CALL_OUTCOMES),
        f"outcome must be one of {', '.join(CALL_OUTCOMES)}",
        outcome,
    )
    for column in ("state", "state_after"):
        # calls may lack a state (the load generator's own rows); state rows may not
        values = frame[column]
        _refuse(
            values.notna() & ~values.isin(STATES),
            f"{column} must be one of {', '.join(STATES)}",
            values,
        )
    changes = kind == "state"
    _refuse(changes & frame["state"].isna(), "a state row needs the state it left (state)")
    _refuse(
        changes & frame["state_after"].isna(),
        "a state row needs the state it entered (state_after)",
    )


def _refuse(bad: pd.Series, problem: str, values: pd.Series | None = None) -> None:
    """Raise naming the first row of `bad` (and the value it holds), if there is one."""
    if not bad.any():
        return
    rows = np.flatnonzero(bad.to_numpy(dtype=bool, na_value=False))
    i = int(rows[0])
    got = "" if values is None else f", got {_cell(values.iloc[i])}"
    more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
    raise AnalysisError(f"row {i + 1} (line {i + 2}): {problem}{got}{more}")


def _cell(value: Any) -> str:
    """A frame cell for an error message; an empty one is "nothing"."""
    missing = value is None or (pd.api.types.is_scalar(value) and pd.isna(value))
    return "nothing" if missing else _shown(value)


def _shown(value: Any) -> str:
    """A value as people read it in an error message: text quoted, numbers as plain
    Python numbers (`-1.0`, never `np.float64(-1.0)`), lists and tuples item by item."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list):
        return f"[{', '.join(map(_shown, value))}]"
    if isinstance(value, tuple):
        return f"({', '.join(map(_shown, value))}{',' if len(value) == 1 else ''})"
    return repr(value)
