"""Small hand-built event frames whose figures can be checked number by number.

Times are seconds, latencies seconds. The protected variant trips at 2.5 s,
probes at 4.0 s and closes at 4.25 s; the unprotected variant has no breaker.
"""

from __future__ import annotations

import pandas as pd

from cblab.schema import EVENT_COLUMNS, event_row

END = 5.04  # the last call (t=5.0) ends 40 ms later

#: A scenario the sample rows fit: the users service is down from 1.0 s to 4.0 s.
SCENARIO = {
    "name": "blip",
    "phases": [
        {"name": "healthy", "duration_s": 1.0},
        {"name": "outage", "duration_s": 3.0, "faults": {"users": {"mode": "down"}}},
        {"name": "recovery", "duration_s": 1.04},
    ],
}


def _call(seq, t, variant, outcome, latency, state, phase, *, source="sim", breaker="users"):
    return event_row(
        seq=seq, kind="call", t=t, source=source, variant=variant, breaker=breaker,
        tool="get_user", outcome=outcome, latency=latency, state=state, state_after=state,
        phase=phase, generation=1,
    )  # fmt: skip


def _state(seq, t, before, after, reason, phase):
    return event_row(
        seq=seq, kind="state", t=t, source="sim", variant="protected", breaker="users",
        state=before, state_after=after, reason=reason, phase=phase, generation=seq,
    )  # fmt: skip


def sample_rows() -> list[dict]:
    p, u = "protected", "unprotected"
    return [
        _call(1, 0.5, p, "success", 0.020, "closed", "healthy"),
        _call(2, 1.0, p, "failure", 1.0, "closed", "outage"),
        _call(3, 1.5, p, "failure", 1.0, "closed", "outage"),
        _state(4, 2.5, "closed", "open", "tripped", "outage"),
        _call(5, 3.0, p, "rejected", 0.0, "open", "outage"),
        _call(6, 3.5, p, "rejected", 0.0, "open", "outage"),
        _state(7, 4.0, "open", "half_open", "open timeout elapsed", "recovery"),
        _call(8, 4.2, p, "success", 0.030, "half_open", "recovery"),
        _state(9, 4.25, "half_open", "closed", "trial calls succeeded", "recovery"),
        _call(10, 5.0, p, "success", 0.040, "closed", "recovery"),
        _call(11, 0.5, u, "success", 0.025, None, "healthy", breaker=None),
        _call(12, 1.0, u, "failure", 1.0, None, "outage", breaker=None),
        _call(13, 1.5, u, "failure", 1.0, None, "outage", breaker=None),
        _call(14, 3.0, u, "failure", 1.0, None, "outage", breaker=None),
        _call(15, 3.5, u, "failure", 1.0, None, "outage", breaker=None),
        _call(16, 4.2, u, "success", 0.030, None, "recovery", breaker=None),
        _call(17, 5.0, u, "success", 0.035, None, "recovery", breaker=None),
    ]


def sample_events() -> pd.DataFrame:
    return pd.DataFrame(sample_rows(), columns=list(EVENT_COLUMNS))


def empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})


def two_source_events() -> pd.DataFrame:
    """One variant seen twice: the load generator (latency from the intended start,
    slower) and the server (the breaker's view)."""
    rows = [
        _call(1, 0.10, "protected", "success", 0.050, None, "healthy", source="load"),
        _call(2, 0.20, "protected", "rejected", 0.010, None, "healthy", source="load"),
        _call(1, 0.11, "protected", "success", 0.040, "closed", "healthy", source="server"),
        _call(2, 0.21, "protected", "rejected", 0.0, "open", "healthy", source="server"),
        _call(3, 0.30, "protected", "success", 0.040, "closed", "healthy", source="server"),
    ]
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
