"""How long a refusal took: what the caller waited, and what the breaker took.

A rejected call fails fast *in the breaker* (microseconds). What a caller
waits for that refusal can be much longer: the load generator measures every
call from the moment it was due (so a slow server cannot hide, see
`cblab.load`), and under load that includes its own backlog before it sent
the call, the network and the server's HTTP stack. A figure that plots the
callers' waits must say which part is the breaker's; `refusal_waits` gives
both, per variant:

refusals          rejected calls in the caller's view (load rows; else the
                  simulator's; else the server's)
caller_p50_s      median wait for a refusal, from when the call was due (p95 too)
breaker_p50_s     median time the breaker took to refuse (server or simulator
                  rows; NaN when the run has none)
outside_share     1 - breaker_p50_s / caller_p50_s: the share of the median wait
                  spent outside the breaker (queueing before the refusal)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .frames import events_frame

__all__ = ["CALLER_SOURCES", "BREAKER_SOURCES", "refusal_waits"]

#: Whose rows say what the caller saw, and whose what the breaker did, best first.
CALLER_SOURCES: tuple[str, ...] = ("load", "sim", "server")
BREAKER_SOURCES: tuple[str, ...] = ("server", "sim")

_COLUMNS = ["variant", "refusals", "caller_p50_s", "caller_p95_s", "breaker_p50_s",
            "outside_share"]


def _first_source(rows: pd.DataFrame, sources: tuple[str, ...]) -> pd.DataFrame:
    for source in sources:
        picked = rows[rows["source"] == source]
        if len(picked):
            return picked
    return rows.iloc[:0]


def _quantile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(np.quantile(values.to_numpy(dtype=float), q)) if len(values) else math.nan


def refusal_waits(events: Any) -> pd.DataFrame:
    """One row per variant (`_COLUMNS`): see the module docstring."""
    frame = events_frame(events)
    refused = frame[(frame["kind"] == "call") & (frame["outcome"] == "rejected")]
    variant = refused["variant"].astype(object).where(refused["variant"].notna(), "run")
    rows = []
    for name in dict.fromkeys(variant.tolist()):
        own = refused[(variant == name).to_numpy()]
        caller = _first_source(own, CALLER_SOURCES)["latency"]
        breaker = _first_source(own, BREAKER_SOURCES)["latency"]
        c50, b50 = _quantile(caller, 0.5), _quantile(breaker, 0.5)
        rows.append({
            "variant": name, "refusals": int(caller.size), "caller_p50_s": c50,
            "caller_p95_s": _quantile(caller, 0.95), "breaker_p50_s": b50,
            "outside_share": 1.0 - b50 / c50 if c50 > 0 and not math.isnan(b50) else math.nan,
        })
    return pd.DataFrame(rows, columns=_COLUMNS)
