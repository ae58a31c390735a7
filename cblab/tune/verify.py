"""`cblab tune --apply URL --verify`: does the applied pick behave live as the simulator said?

After the pick is applied, the fitted outage is replayed live (`cblab.tune.replay`: the
fault proxy between the server and its dependency plays it, load at the fitted rate
drives one tool), and the live KPIs are set next to the prediction: the simulator's
range over seeds for the same setting on the *same* scenario (time-compressed by
`scale` for both, at the same rate and deadline). Both sides are `cblab.analysis.
run_kpis` figures (the sweep's KPIs are too): one definition per figure.

A KPI is *inside* when its live value lies in [lowest, highest] over the seeds,
widened by its slack (`Verification.slack`). A live breaker learns how a call ended
only when it ends, and a loaded machine stalls live calls in bursts the simulator does
not model, so each of the breaker's moves may come late by about the p95 duration of
the live calls it admitted (`lag_s`): that is the slack of the time KPIs. An open
spell that starts late refuses fewer calls and one that ends late refuses more; either
moves at most about rate x `lag_s` calls, so the shares get 2 points plus that many
calls as a share of the requests. Trips get none. A lag that is a large part of the
outage says the live run was too disturbed to resolve the breaker's timing: the report
says so (`note`), and a larger time scale helps.
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

__all__ = ["KPIS", "SHARE_SLACK", "Verification", "predict", "scaled_scenario", "verify_live"]

#: The KPIs compared, in the table's order (`cblab.analysis` definitions).
KPIS: tuple[str, ...] = ("availability", "share_failed_fast", "wasted_share", "trips",
                         "detection_s", "recovery_s")
#: The slack of a share KPI before the live lag is added (2 points).
SHARE_SLACK = 0.02
#: `Verification.note` speaks up when the live lag exceeds this share of the outage.
LAG_SHARE = 0.25
_SHARES = ("availability", "share_failed_fast", "wasted_share")
_TIMES = ("detection_s", "recovery_s")
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


def outage_names(scenario: Mapping[str, Any]) -> list[str]:
    """The phases KPIs treat as faults: the outage `cblab.tune.variants` stresses (at
    least `OUTAGE_SHARE` of calls failed), not every phase that differs from the
    others by a fitted percent of background errors."""
    from .variants import outage_phases

    return [scenario["phases"][i]["name"] for i in outage_phases(scenario)]


def kpis_of(events: Any, scenario: Mapping[str, Any]) -> dict[str, float]:
    """`cblab.analysis.run_kpis` of a live or simulated run of `scenario` (its outage
    phases as the faults), numbers only (None as NaN)."""
    from cblab.analysis import run_kpis
    from cblab.faults import Scenario

    figures = run_kpis(events, Scenario.from_dict(dict(scenario)), service="users",
                       fault_phases=outage_names(scenario))
    return {k: float(v) if v is not None else math.nan for k, v in figures.items()
            if v is None or isinstance(v, (int, float))}


def with_live_latency(scenario: Mapping[str, Any],
                      rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], Any]:
    """`scenario` with every phase's latency fitted to the live calls answered outside
    the outage (`cblab.faults.fit.fit_latency`), and that fit; `scenario` unchanged and
    None when too few were answered. The replay adds no latency of its own (the
    server's is the real one), so the simulator's calls should take what the live
    ones took: a half-open trial that takes longer keeps more calls refused."""
    import copy

    from cblab.faults.fit import FitError, fit_latency

    outage = set(outage_names(scenario))
    ends, t = [], 0.0
    for phase in scenario["phases"]:
        t += float(phase["duration_s"])
        ends.append((t, phase["name"]))
    samples = []
    for row in rows:
        if row["kind"] != "call" or row["outcome"] not in ("success", "slow"):
            continue
        phase = next((name for end, name in ends if row["t"] < end), ends[-1][1])
        if phase not in outage:
            samples.append(float(row["latency"]) * 1000.0)
    try:
        fit = fit_latency(samples)
    except FitError:
        return dict(scenario), None
    out = copy.deepcopy(dict(scenario))
    for phase in out["phases"]:
        profile = phase.setdefault("faults", {}).setdefault("users", {})
        if profile.get("mode") != "hang":
            profile["latency"] = fit.latency.to_dict()
    return out, fit


def predict(scenario: Mapping[str, Any], config: Mapping[str, Any], *, rate: float,
            deadline_s: float, seeds: int = DEFAULT_SEEDS) -> pd.DataFrame:
    """The simulator's KPIs for `config` on `scenario` at `rate`, one row per seed
    (seeds 0..n-1; `kpis_of`, as the live run)."""
    import pandas as pd

    from cblab.sim import simulate

    rows = []
    for seed in range(seeds):
        run = simulate(dict(scenario), dict(config), seed=seed, deadline_s=deadline_s,
                       rate=rate)
        rows.append({"seed": seed, **kpis_of(run, scenario)})
    return pd.DataFrame(rows)


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
    #: the latency the prediction simulated: fitted to the live answered calls
    #: (`with_live_latency`); None: the fitted scenario's own
    live_latency: dict[str, Any] | None = None

    @property
    def lag_s(self) -> float:
        """The p95 duration of the live calls the breaker admitted (0 without any)."""
        durations = sorted(float(r["latency"]) for r in self.rows if r["kind"] == "call"
                           and r["outcome"] not in ("rejected", "dropped")
                           and r["latency"] is not None)
        if not durations:
            return 0.0
        return durations[min(len(durations) - 1, math.ceil(0.95 * len(durations)) - 1)]

    def slack(self, kpi: str) -> float:
        """How far outside the seeds' range a live value may lie and count as inside."""
        if kpi in _TIMES:
            return self.lag_s
        if kpi in _SHARES:
            requested = self.live.get("requested") or 0.0
            late_calls = self.rate * self.lag_s
            return SHARE_SLACK + (late_calls / requested if requested else 0.0)
        return 0.0

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

    @property
    def note(self) -> str | None:
        """A line when the live calls' lag is over a quarter of the outage's length."""
        outage = set(outage_names(self.scenario))
        length = sum(float(p["duration_s"]) for p in self.scenario["phases"]
                     if p["name"] in outage)
        if length <= 0 or self.lag_s <= LAG_SHARE * length:
            return None
        return (f"the live calls lagged (p95 {self.lag_s:.2f} s) for a {length:.1f} s outage: "
                f"the replay resolves the breaker's timing poorly; a lower rate (calls queue "
                f"when the server cannot keep up), a larger time scale or a quieter machine "
                f"helps")

    def report(self) -> str:
        """The comparison as text lines (what `cblab tune --verify` prints)."""
        length = sum(float(p["duration_s"]) for p in self.scenario["phases"])
        lines = [f"verified live: {self.scenario.get('name')} ({length:.1f} s, time scale "
                 f"{self.scale:g}) at {self.rate:.1f} calls/s; predicted: the range over "
                 f"{len(self.predicted)} simulated seeds with "
                 f"{_latency(self.live_latency) or 'the fitted latency'}; live calls' "
                 f"p95 {self.lag_s:.2f} s (the slack of the time KPIs)",
                 f"  {'kpi':<18} {'live':>10} {'predicted':>22}  inside"]
        for row in self.table().itertuples(index=False):
            predicted = (f"{_fmt(row.kpi, row.predicted_low)} to "
                         f"{_fmt(row.kpi, row.predicted_high)}")
            lines.append(f"  {row.kpi:<18} {_fmt(row.kpi, row.live):>10} {predicted:>22}  "
                         f"{'yes' if row.inside else 'NO'}")
        if self.note:
            lines.append(f"note: {self.note}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        if not self.warnings:
            lines.append("every KPI inside the predicted range")
        return "\n".join(lines)


def _latency(spec: Mapping[str, Any] | None) -> str | None:
    if not spec:
        return None
    median = spec.get("median_ms", spec.get("mean_ms", spec.get("ms")))
    return f"the live calls' latency ({spec.get('kind')}, median {float(median):.0f} ms)" \
        if isinstance(median, (int, float)) else "the live calls' latency"


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
    from .replay import replay

    played = scaled_scenario(scenario, scale)
    calls_per_s = float(rate) if rate is not None else mean_rate(played)
    rows = asyncio.run(replay(
        played, server=server, mcp_url=mcp_url or f"{server}/mcp", breaker=breaker,
        token=token, proxy=proxy, proxy_token=proxy_token, tool=tool,
        arguments=arguments or {}, rate=calls_per_s, deadline_s=deadline_s, seed=seed))
    if not any(r["kind"] == "call" for r in rows):
        from .replay import ReplayError

        raise ReplayError(f"breaker {breaker!r} at {server} recorded no call during the "
                          f"replay: does tool {tool!r} go through it?")
    live = kpis_of(rows, played)
    simulated, latency = with_live_latency(played, rows)
    if predicted is None:
        predicted = predict(simulated, config, rate=calls_per_s, deadline_s=deadline_s,
                            seeds=seeds)
    return Verification(dict(config), played, scale, calls_per_s, live, predicted, rows,
                        live_latency=latency.latency.to_dict() if latency else None)


# --- the command line: `cblab tune --apply URL --verify ...` ------------------------------

PROXY_TOKEN_ENV = "CBLAB_PROXY_TOKEN"
#: A live replay longer than this (seconds, after --verify-scale) is refused.
MAX_REPLAY_S = 3600.0
#: Calls per second the live load may be asked for.
MAX_RATE = 500.0


@dataclass(frozen=True)
class LivePlan:
    """What `--verify` checked before any work, for `run_verification` after the apply."""

    server: str
    mcp_url: str
    breaker: str
    token: str
    proxy: str
    proxy_token: str | None
    tool: str
    arguments: dict[str, Any]
    scale: float
    rate: float | None
    seeds: int


def add_verify_options(parser: Any) -> None:
    """The `--verify` flags, in their own group of `cblab tune`'s parser."""
    group = parser.add_argument_group(
        "verify live (with --apply)", "replay the fitted outage through the fault proxy "
        "that sits between the server and its dependency, drive one tool with load at the "
        "fitted rate, and compare the breaker's live KPIs with the simulator's range over "
        "seeds (exit 1 when a KPI is outside it)")
    group.add_argument("--verify", action="store_true",
                       help="after --apply, verify the pick live")
    group.add_argument("--verify-proxy", default=None, metavar="URL",
                       help="the fault proxy's control API (`cblab proxy` prints it)")
    group.add_argument("--proxy-token", default=None,
                       help=f"the proxy's control token (default: ${PROXY_TOKEN_ENV}, if set)")
    group.add_argument("--verify-tool", default=None, metavar="NAME",
                       help="the tool the load calls (default: the --breaker name, as the "
                            "middleware names a tool's breaker)")
    group.add_argument("--verify-args", default="{}", metavar="JSON",
                       help="the tool's arguments as a JSON object (default {})")
    group.add_argument("--verify-mcp", default=None, metavar="URL",
                       help="the server's MCP endpoint (default: the --apply URL + /mcp)")
    group.add_argument("--verify-scale", type=float, default=1.0, metavar="X",
                       help="replay the outage with every phase X times as long (e.g. 0.1: "
                            "a 10-minute recording in 1 minute); the prediction is simulated "
                            "on the same scaled scenario (default 1)")
    group.add_argument("--verify-rate", type=float, default=None, metavar="R",
                       help="calls per second (default: the fitted mean rate)")
    group.add_argument("--verify-seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                       help=f"simulated seeds of the predicted range (default {DEFAULT_SEEDS})")


def _get(url: str, token: str | None) -> Any:
    import httpx

    from .replay import ReplayError

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise ReplayError(f"cannot reach {url}: {str(exc) or type(exc).__name__}") from None
    if response.status_code != 200:
        raise ReplayError(f"GET {url} answered {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise ReplayError(f"GET {url} did not answer JSON") from None


def check_verify(args: Any, server: str | None, token: str | None) -> LivePlan | None:
    """Check the `--verify` flags and reach the proxy and the server, before any work.
    None without `--verify`; a ValueError with one line when something is wrong."""
    import json
    import os

    from .admin import check_url
    from .replay import ReplayError

    if not args.verify:
        extra = [flag for flag, value in (("--verify-proxy", args.verify_proxy),
                                          ("--verify-tool", args.verify_tool))
                 if value is not None]
        if extra:
            raise ValueError(f"{extra[0]} is only used with --verify")
        return None
    if server is None or not token:
        raise ValueError("--verify needs --apply URL and its --token: it verifies the pick "
                         "on the server it was applied to")
    if args.verify_proxy is None:
        raise ValueError("--verify needs --verify-proxy URL: the control API of the fault "
                         "proxy between the server and its dependency")
    proxy = check_url(args.verify_proxy, "--verify-proxy")
    mcp_url = check_url(args.verify_mcp, "--verify-mcp") if args.verify_mcp else f"{server}/mcp"
    if not (math.isfinite(args.verify_scale) and args.verify_scale > 0):
        raise ValueError(f"--verify-scale must be a number > 0, got {args.verify_scale!r}")
    if args.verify_rate is not None and not (math.isfinite(args.verify_rate)
                                             and 0 < args.verify_rate <= MAX_RATE):
        raise ValueError(f"--verify-rate must be > 0 and at most {MAX_RATE:g} calls/s, got "
                         f"{args.verify_rate!r}")
    if not 2 <= args.verify_seeds <= 1000:
        raise ValueError(f"--verify-seeds must be 2 to 1000, got {args.verify_seeds!r}")
    try:
        arguments = json.loads(args.verify_args)
    except ValueError as exc:
        raise ValueError(f"--verify-args is not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"--verify-args must be a JSON object, got {args.verify_args!r}")
    tool = args.verify_tool or args.breaker
    proxy_token = args.proxy_token or os.environ.get(PROXY_TOKEN_ENV) or None
    tools = _get(f"{proxy}/tools", proxy_token)
    if not isinstance(tools, dict) or not isinstance(tools.get("tools"), list):
        raise ReplayError(f"{proxy} is not a cblab fault proxy's control API (no /tools)")
    events = _get(f"{server}/events?after=0&limit=1", None)
    if not isinstance(events, dict) or not isinstance(events.get("events"), list):
        raise ReplayError(f"{server}/events did not answer an event list: --verify reads the "
                          "breaker's calls there (cblab.integrations.mount_routes)")
    return LivePlan(server, mcp_url, args.breaker, token, proxy, proxy_token, tool, arguments,
                    float(args.verify_scale), args.verify_rate, int(args.verify_seeds))


def check_replay(plan: LivePlan, scenario: Mapping[str, Any]) -> tuple[float, float]:
    """The replay `plan` would play of the fitted `scenario`: (seconds, calls/s), or a
    ValueError with one line when it is too long or too fast. `cblab tune`
    calls it as soon as the fit is known, before the sweep, so a replay it would refuse
    costs no sweep and applies nothing."""
    played = scaled_scenario(scenario, plan.scale)
    length = sum(float(p["duration_s"]) for p in played["phases"])
    rate = plan.rate if plan.rate is not None else mean_rate(played)
    if length > MAX_REPLAY_S:
        raise ValueError(f"the live replay would last {length:.0f} s (more than "
                         f"{MAX_REPLAY_S:.0f}): give a smaller --verify-scale")
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"the fitted rate is {rate:g} calls/s; give --verify-rate (at most "
                         f"{MAX_RATE:g})")
    return length, rate


def run_verification(plan: LivePlan, scenario: Mapping[str, Any], config: Mapping[str, Any],
                     deadline_s: float) -> tuple[int, Verification | None]:
    """`cblab tune`'s last step: verify and print the comparison. The exit code (0 all
    inside, 1 a warning, 2 the replay failed: one line) and the `Verification`."""
    import sys

    try:
        length, rate = check_replay(plan, scenario)
    except ValueError as exc:
        print(f"cblab tune: {exc}", file=sys.stderr)
        return 2, None
    print(f"\nverifying live: replaying {length:.1f} s of the fitted outage through "
          f"{plan.proxy} at {rate:.1f} calls/s on {plan.tool!r}...", flush=True)
    try:
        result = verify_live(scenario, config, server=plan.server, breaker=plan.breaker,
                             token=plan.token, proxy=plan.proxy, tool=plan.tool,
                             arguments=plan.arguments, mcp_url=plan.mcp_url,
                             proxy_token=plan.proxy_token, scale=plan.scale, rate=rate,
                             deadline_s=deadline_s, seeds=plan.seeds)
    except ValueError as exc:  # ReplayError, a refused simulation
        print(f"cblab tune: {exc}", file=sys.stderr)
        return 2, None
    print(result.report())
    return (1 if result.warnings else 0), result
