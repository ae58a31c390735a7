"""Retry KPIs: what retrying callers cost the dependency, and what they got for it.

One definition for simulated agents (`cblab.sim.agents`) and live runs (the lab's
retry comparison), both read from server-side event rows where every attempt is
one ``call`` row:

=====================  =================================================================
figure                 definition
=====================  =================================================================
``requests``           what the callers wanted (first attempts), given by the caller
``attempts``           call rows: every attempt, refused ones included
``attempts_per_request``  attempts / requests
``sent``               call rows the breaker let through (outcome not ``rejected``):
                       attempts that reached the dependency
``load_during_fault``  ``sent`` calls that met a fault window, the load on the
                       dependency while it is down or failing: admitted before the
                       window's end and ended at or after its start (`t` to
                       `t + latency`), so a call a lagging server admitted just
                       before an outage but sent into it counts, as does one in
                       flight when the dependency fell
``fault_load_per_s``   load_during_fault / the fault windows' total length
``succeeded``          call rows that succeeded (`kpis.succeeded`)
``success_rate``       succeeded / requests (each request succeeds at most once)
``wasted``             attempts - succeeded: calls that gave the caller nothing
``recovery_s``         from the end of the last fault window to the admission of the
                       first call after it that succeeded (NaN: none did)
=====================  =================================================================

What the load during the fault consisted of (`fault_load_parts`): ``probes``, the
calls admitted half-open; ``late``, calls admitted closed that ended after the
breaker opened (in flight when it tripped); ``retries``, the callers' retries sent
inside the fault windows (given by the caller: the server's rows do not say which
attempt is a retry). The parts may overlap (a retry can be a probe).

Load amplification compares ``load_during_fault`` between two runs of the same
scenario and seed (`amplification`). `load_timeline` counts, per second and variant,
the calls ``sent`` to the dependency, those ``refused`` by the breaker and those
that ``succeeded`` (the charts of notebook 05).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .frames import events_frame
from .kpis import succeeded as _succeeded
from .scenarios import as_scenario, phase_windows

__all__ = ["RETRY_KPIS", "amplification", "fault_load_parts", "load_timeline", "retry_kpis"]

RETRY_KPIS = ("requests", "attempts", "attempts_per_request", "sent", "load_during_fault",
              "fault_load_per_s", "succeeded", "success_rate", "wasted", "recovery_s")


def retry_kpis(events: Any, scenario: Any, *, requests: int,
               service: str | None = "users") -> dict[str, Any]:
    """The retry figures of one run (see the module table)."""
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
        raise ValueError(f"requests must be a whole number >= 0, got {requests!r}")
    frame = events if isinstance(events, pd.DataFrame) else events_frame(events)
    calls = frame[frame["kind"] == "call"]
    t = calls["t"].to_numpy(dtype="float64")
    outcome = calls["outcome"]
    sent = (outcome != "rejected").to_numpy()
    ok = _succeeded(outcome, calls["error_type"])
    windows = [w for w in phase_windows(as_scenario(scenario), service=service) if w.fault]
    latency = np.nan_to_num(calls["latency"].to_numpy(dtype="float64"), nan=0.0)
    in_fault = _fault_mask(t, scenario, service, t + latency)
    fault_s = sum(w.end - w.start for w in windows)
    attempts = len(calls)
    n_ok = int(ok.sum())
    recovery = math.nan
    if windows:
        end = max(w.end for w in windows)
        after = t[ok & (t >= end)]
        if after.size:
            recovery = float(after.min() - end)
    load = int((sent & in_fault).sum())
    return {
        "requests": requests,
        "attempts": attempts,
        "attempts_per_request": attempts / requests if requests else math.nan,
        "sent": int(sent.sum()),
        "load_during_fault": load,
        "fault_load_per_s": load / fault_s if fault_s else math.nan,
        "succeeded": n_ok,
        "success_rate": n_ok / requests if requests else math.nan,
        "wasted": attempts - n_ok,
        "recovery_s": recovery,
    }


def _fault_mask(t: np.ndarray, scenario: Any, service: str | None,
                ended: np.ndarray | None = None) -> np.ndarray:
    """Which of the spans `t`..`ended` (instants if None) meet a fault window."""
    last = t if ended is None else ended
    inside = np.zeros(len(t), dtype=bool)
    for window in phase_windows(as_scenario(scenario), service=service):
        if window.fault:
            inside |= (t < window.end) & (last >= window.start)
    return inside


def fault_load_parts(events: Any, scenario: Any, *, retry_times: Any = (),
                     service: str | None = "users") -> dict[str, int]:
    """Of the calls sent during the fault windows (as `load_during_fault` counts them): half-open ``probes``, ``late`` ones
    (in flight when the breaker opened) and ``retries`` (`retry_times`: when each
    retry was sent, by the caller's clock; those inside the windows count)."""
    frame = events if isinstance(events, pd.DataFrame) else events_frame(events)
    calls = frame[frame["kind"] == "call"]
    t = calls["t"].to_numpy(dtype="float64")
    latency = np.nan_to_num(calls["latency"].to_numpy(dtype="float64"), nan=0.0)
    sent = (calls["outcome"] != "rejected").to_numpy() & _fault_mask(
        t, scenario, service, t + latency)
    retries = np.asarray(list(retry_times), dtype="float64")
    return {"probes": int((sent & (calls["state"] == "half_open").to_numpy()).sum()),
            "late": int((sent & (calls["outcome"] == "late").to_numpy()).sum()),
            "retries": int(_fault_mask(retries, scenario, service).sum())}


def amplification(load: float, baseline: float) -> float:
    """How many times `baseline`'s load on the dependency `load` is (NaN for no baseline)."""
    return load / baseline if baseline else math.nan


def load_timeline(events: Any, *, bin_s: float = 1.0, duration: float | None = None,
                  ) -> pd.DataFrame:
    """Per `bin_s` seconds and variant: calls `sent` (reached the dependency), `refused`
    (rejected by the breaker) and `succeeded`; bins start at ``t = 0``; every bin up
    to `duration` (default: the last call) is present, empty ones as zeros."""
    if not (isinstance(bin_s, int | float) and math.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be a number of seconds > 0, got {bin_s!r}")
    frame = events if isinstance(events, pd.DataFrame) else events_frame(events)
    calls = frame[(frame["kind"] == "call") & (frame["t"] >= 0)]
    t = calls["t"].to_numpy(dtype="float64")
    end = duration if duration is not None else (float(t.max()) + bin_s if t.size else 0.0)
    n = max(math.ceil(end / bin_s), 0)
    parts = []
    for variant in dict.fromkeys(calls["variant"]):
        mine = (calls["variant"] == variant).to_numpy()
        index = np.floor(t[mine] / bin_s).astype(int)
        keep = index < n
        outcome = calls["outcome"][mine]
        columns = {
            "sent": (outcome != "rejected").to_numpy(),
            "refused": (outcome == "rejected").to_numpy(),
            "succeeded": _succeeded(outcome, calls["error_type"][mine]),
        }
        part = pd.DataFrame({"variant": variant, "t": np.arange(n) * bin_s})
        for name, mask in columns.items():
            part[name] = np.bincount(index[keep & mask], minlength=n)[:n]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["variant", "t", "sent", "refused", "succeeded"])
    return pd.concat(parts, ignore_index=True)
