"""The notebooks' results as tables a person reads: a few labelled columns with units,
rounded (`cblab.lab.tables.readable_table`). Each takes what a cblab call returned.

    config_table(config)      07: a breaker's settings, one row each, with units
    runs_table(runs)          06: the recorded runs
    replicas_table(result)    07: local vs shared breakers over live replicas
    fit_table(fit)            08: how well the fault profile fits the recorded calls
    sweep_table(table)        08: a sweep, averaged over seeds per setting
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .tables import format_value, readable_table

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

__all__ = ["config_table", "fit_table", "percent", "replicas_table", "runs_table", "sweep_table"]


def percent(value: Any) -> str:
    """A fraction as a percentage with one decimal ("–" when missing)."""
    text = format_value(value)
    return text if text == "–" else f"{float(value) * 100:.1f} %"


def _ms(seconds: Any) -> str:
    text = format_value(seconds)
    return text if text == "–" else f"{float(seconds) * 1000:,.1f}"


def config_table(config: Any) -> Styler:
    """A breaker's settings (a `CircuitBreakerConfig` or its dict): setting, value, unit."""
    import pandas as pd

    from cblab import CircuitBreakerConfig

    data = config.to_dict() if isinstance(config, CircuitBreakerConfig) else dict(config)
    units = {"timeout": "s", "call_timeout": "s", "max_trial_duration": "s",
             "max_timeout": "s", "failure_threshold": "failures in a row",
             "success_threshold": "trial successes", "half_open_max_calls": "trial calls"}
    rows = [{"setting": k, "value": v, "unit": units.get(k, "")} for k, v in data.items()
            if not isinstance(v, dict | list | tuple)]
    return readable_table(pd.DataFrame(rows), {"setting": "setting", "value": "value",
                                               "unit": "unit"})


def runs_table(runs: Iterable[Any]) -> Styler:
    """One row per recorded run (`cblab.runs.load_run`)."""
    import pandas as pd

    frame = pd.DataFrame([
        {"run": r.name, "kind": r.meta.kind, "scenario": r.meta.scenario_name,
         "variants": ", ".join(r.variants), "events": len(r.events),
         "duration_s": r.meta.duration_s}
        for r in runs
    ])
    return readable_table(frame, {"run": "run", "kind": "recorded by", "scenario": "scenario",
                                  "variants": "server", "events": "event rows",
                                  "duration_s": "duration (s)"})


def replicas_table(result: Any) -> Styler:
    """`cblab.stack.replicas.compare_replicas`'s table: one row per kind of breaker."""
    frame = result.table.reset_index()
    return readable_table(frame, {
        "breakers": "breakers", "replicas": "replicas",
        "failing_calls": "calls reaching the failing backend",
        "until_all_stopped_s": "until every replica stopped calling (s)",
        "probes": "trial calls", "probes_after_recovery": "trial calls after recovery",
        "all_closed": "all CLOSED at the end",
    }, formats={"until_all_stopped_s": lambda v: f"{float(v):.2f}"})


def fit_table(fit: Any) -> Styler:
    """`cblab.faults.fit.fit_run`'s quality: per phase, what the fit rests on (calls,
    rate, errors, timeouts) and the latency quantiles observed next to fitted."""
    import pandas as pd

    rows = []
    for q in fit.quality_rows():
        row = {"phase": q["phase"], "calls": q["calls"], "rate_per_s": q["rate_per_s"],
               "error_rate": q["error_rate"],
               "error_ci": " – ".join(percent(x) for x in q["error_rate_95ci"]),
               "timeouts": q["timeouts"]}
        for tag in ("p50", "p99"):
            observed, fitted = q.get(f"{tag}_ms_observed"), q.get(f"{tag}_ms_fitted")
            row[tag] = (f"{format_value(observed)} / {format_value(fitted)}"
                        if observed is not None else "–")
        row["ks"] = q.get("ks")
        rows.append(row)
    frame = pd.DataFrame(rows)
    return readable_table(frame, {
        "phase": "phase", "calls": "calls", "rate_per_s": "calls/s", "error_rate": "errors",
        "error_ci": "errors, 95 % interval", "timeouts": "timeouts",
        "p50": "p50 ms (observed / fitted)", "p99": "p99 ms (observed / fitted)",
        "ks": "KS distance (0: same shape)",
    }, formats={"error_rate": percent}, caption="How well the fitted profile matches your calls")


def sweep_table(table: pd.DataFrame) -> Styler:
    """A sweep (`cblab.sim.sweep.sweep`) averaged over seeds: one row per setting and
    scenario, the figures a tuning decision rests on."""
    keys = [k for k in ("scenario", "failure_threshold", "timeout") if k in table.columns]
    figures = ["availability", "trips", "wasted_share", "recovery_s", "latency_p99_s"]
    mean = table.groupby(keys, as_index=False)[figures].mean(numeric_only=True)
    mean["seeds"] = table.groupby(keys).size().to_numpy()
    return readable_table(mean, {
        **{k: {"failure_threshold": "failure_threshold", "timeout": "timeout (s)",
               "scenario": "scenario"}[k] for k in keys},
        "availability": "availability", "trips": "trips", "wasted_share": "wasted calls",
        "recovery_s": "recovery (s)", "latency_p99_s": "p99 latency (ms)", "seeds": "seeds",
    }, formats={"availability": percent, "wasted_share": percent, "latency_p99_s": _ms},
        missing="never", caption="Mean over seeds")
