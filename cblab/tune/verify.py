"""`cblab tune --apply URL --verify`: does the applied pick behave live as the simulator said?

After the pick is applied, the fitted outage is replayed live (`cblab.tune.replay`: the
fault proxy between the server and its dependency plays it, load at the fitted rate
drives one tool), and the live KPIs are set next to the prediction: the simulator's
range over seeds for the same setting on the *same* scenario (time-compressed by
`scale` for both, at the same rate and deadline). Both sides are `cblab.analysis.
run_kpis` figures (the sweep's KPIs are too): one definition per figure.

A KPI is *inside* when its live value lies in [lowest, highest] over the seeds,
widened by its slack (`SLACK`): a live breaker only learns how a call ended when the
call ends, and live calls take the real time of a network round trip the simulator
does not spend, so the time KPIs may lag by about the live p95 call duration.
A KPI that is not a number (no recovery before the run ended, say) is inside when
some seed also gave none. Anything else is a warning, one line per KPI.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KPIS", "SLACK", "Verification", "predict", "scaled_scenario", "verify_live"]

#: The KPIs compared, in the table's order (`cblab.analysis` definitions).
KPIS: tuple[str, ...] = ("availability", "share_failed_fast", "wasted_share", "trips",
                         "detection_s", "recovery_s")
#: Absolute slack per KPI ("p95" = the live p95 call duration, in seconds).
SLACK: dict[str, float | str] = {"availability": 0.02, "share_failed_fast": 0.02,
                                 "wasted_share": 0.02, "trips": 0.0,
                                 "detection_s": "p95", "recovery_s": "p95"}
DEFAULT_SEEDS = 10


def scaled_scenario(scenario: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """`scenario` (a dict) with every phase duration multiplied by `scale`."""
    from cblab.faults import Scenario

    if scale == 1.0:
        return dict(scenario)
    out = Scenario.from_dict(dict(scenario)).scaled(scale).to_dict()
    out["name"] = f"{scenario.get('name', 'fitted')}-x{scale:g}"
    return out


def mean_rate(scenario: Mapping[str, Any]) -> float:
    """The scenario's calls per second over its whole length (its phases' own rates)."""
    phases = scenario["phases"]
    total = sum(float(p["duration_s"]) for p in phases)
    calls = sum(float(p["duration_s"]) * float(p.get("load", {}).get("rate_per_s", 0.0))
                for p in phases)
    return calls / total if total > 0 else 0.0


def predict(scenario: Mapping[str, Any], config: Mapping[str, Any], *, rate: float,
            deadline_s: float, seeds: int = DEFAULT_SEEDS) -> pd.DataFrame:
    """The simulator's KPIs for `config` on `scenario`, one row per seed
    (`cblab.sim.sweep.sweep`, in this process)."""
    from cblab.sim.sweep import sweep

    first = next(iter(config))
    return sweep({first: [config[first]]}, [dict(scenario)], seeds, base=dict(config),
                 executor="local", workers=1, progress=False, deadline_s=deadline_s,
                 rate=rate)


@dataclass
class Verification:
    """Live KPIs next to the predicted range (see the module docstring).

    `table()` is the comparison; `warnings` one line per KPI outside its range;
    `rows` the live breaker rows (schema rows on the scenario's axis), `predicted`
    the simulator's per-seed table, `scenario` the replayed (scaled) scenario.
    """

    config: dict[str, Any]
    scenario: dict[str, Any]
    scale: float
    rate: float
    live: dict[str, float]
    predicted: pd.DataFrame
    rows: list[dict[str, Any]] = field(repr=False, default_factory=list)
    kpis: Sequence[str] = KPIS

    def slack(self, kpi: str) -> float:
        value = SLACK.get(kpi, 0.0)
        if value == "p95":
            return float(self.live.get("latency_p95_s") or 0.0)
        return float(value)

    def table(self) -> pd.DataFrame:
        import pandas as pd

        records = []
        for kpi in self.kpis:
            values = [float(v) for v in self.predicted[kpi]]
            numbers = [v for v in values if not math.isnan(v)]
            live = float(self.live.get(kpi, math.nan))
            low = min(numbers) if numbers else math.nan
            high = max(numbers) if numbers else math.nan
            slack = self.slack(kpi)
            if math.isnan(live):
                inside = len(numbers) < len(values)
            else:
                inside = bool(numbers) and low - slack <= live <= high + slack
            records.append({"kpi": kpi, "live": live, "predicted_low": low,
                            "predicted_high": high, "inside": bool(inside), "slack": slack,
                            "seeds_without_value": len(values) - len(numbers)})
        return pd.DataFrame(records)

    @property
    def warnings(self) -> list[str]:
        lines = []
        for row in self.table().itertuples(index=False):
            if row.inside:
                continue
            seeds = len(self.predicted)
            if math.isnan(row.live):
                lines.append(f"{row.kpi}: live has no value, but every one of {seeds} "
                             f"simulated seeds had one ({_fmt(row.kpi, row.predicted_low)} "
                             f"to {_fmt(row.kpi, row.predicted_high)})")
            elif math.isnan(row.predicted_low):
                lines.append(f"{row.kpi}: live {_fmt(row.kpi, row.live)}, but no simulated "
                             f"seed of {seeds} had a value")
            else:
                side = "below" if row.live < row.predicted_low else "above"
                lines.append(f"{row.kpi}: live {_fmt(row.kpi, row.live)} is {side} the "
                             f"predicted {_fmt(row.kpi, row.predicted_low)} to "
                             f"{_fmt(row.kpi, row.predicted_high)} ({seeds} seeds"
                             f"{f', slack {_fmt(row.kpi, row.slack)}' if row.slack else ''})")
        return lines

    def report(self) -> str:
        """The comparison as text lines (what `cblab tune --verify` prints)."""
        length = sum(float(p["duration_s"]) for p in self.scenario["phases"])
        lines = [f"verified live: {self.scenario.get('name')} ({length:g} s, time scale "
                 f"{self.scale:g}) at {self.rate:g} calls/s; predicted: the range over "
                 f"{len(self.predicted)} simulated seeds",
                 f"  {'kpi':<18} {'live':>10} {'predicted':>22}  inside"]
        for row in self.table().itertuples(index=False):
            predicted = (f"{_fmt(row.kpi, row.predicted_low)} to "
                         f"{_fmt(row.kpi, row.predicted_high)}")
            lines.append(f"  {row.kpi:<18} {_fmt(row.kpi, row.live):>10} {predicted:>22}  "
                         f"{'yes' if row.inside else 'NO'}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        if not self.warnings:
            lines.append("every KPI inside the predicted range")
        return "\n".join(lines)


def _fmt(kpi: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if kpi in ("availability", "share_failed_fast", "wasted_share"):
        return f"{value:.1%}"
    if kpi.endswith("_s"):
        return f"{value:.2f} s"
    return f"{value:g}"


def verify_live(scenario: Mapping[str, Any], config: Mapping[str, Any], *, server: str,
                breaker: str, token: str, proxy: str, tool: str,
                arguments: Mapping[str, Any] | None = None, mcp_url: str | None = None,
                proxy_token: str | None = None, scale: float = 1.0, rate: float | None = None,
                deadline_s: float = 2.0, seeds: int = DEFAULT_SEEDS,
                predicted: pd.DataFrame | None = None, seed: int = 1) -> Verification:
    """Replay `scenario` (the fitted one, unscaled) live at `scale` and compare.

    server     the base URL of the server whose breaker `breaker` is under test (its
               admin API, with `token`, and ``/events``); its MCP endpoint is `mcp_url`
               (default ``server + "/mcp"``)
    proxy      the fault proxy's control URL (`proxy_token` if it has one); it must sit
               between the server and the dependency its breaker protects
    tool, arguments   the tool the load calls, and its arguments
    rate       calls per second (default: the scenario's mean fitted rate)
    predicted  a per-seed KPI table to compare with instead of simulating one (tests)
    """
    from cblab.analysis import run_kpis
    from cblab.faults import Scenario

    from .replay import replay

    played = scaled_scenario(scenario, scale)
    calls_per_s = float(rate) if rate is not None else mean_rate(played)
    if predicted is None:
        predicted = predict(played, config, rate=calls_per_s, deadline_s=deadline_s,
                            seeds=seeds)
    rows = asyncio.run(replay(
        played, server=server, mcp_url=mcp_url or f"{server}/mcp", breaker=breaker,
        token=token, proxy=proxy, proxy_token=proxy_token, tool=tool,
        arguments=arguments or {}, rate=calls_per_s, deadline_s=deadline_s, seed=seed))
    if not any(r["kind"] == "call" for r in rows):
        from .replay import ReplayError

        raise ReplayError(f"breaker {breaker!r} at {server} recorded no call during the "
                          f"replay: does tool {tool!r} go through it?")
    figures = run_kpis(rows, Scenario.from_dict(played), service="users")
    live = {k: float(v) if v is not None else math.nan for k, v in figures.items()
            if isinstance(v, (int, float)) or v is None}
    return Verification(dict(config), played, scale, calls_per_s, live, predicted, rows)
