"""The breaker's own metrics in Prometheus -> call rows that `cblab.faults.fit` reads.

    cblab tune --prometheus http://127.0.0.1:9090 --tool github --start now-30m --step 5s
    cblab fit --prometheus http://127.0.0.1:9090 --tool github -o github.json

Reads, through Prometheus's HTTP API (``/api/v1/query_range``), the breaker metrics
`cblab serve` (`cblab.server.metrics`) exposes, for one breaker (``name`` label):

- ``cblab_circuitbreaker_call_duration_seconds_bucket{name,kind,le}``: the permitted
  calls by how they ended (`successful`, `failed`, `slow`; `ignored` ones, excluded,
  cancelled or late, are neither outcome and left out) and their durations;
- ``cblab_circuitbreaker_not_permitted_calls_total{name}``: the calls it refused.

The raw counters are read at every step and differenced here (a drop is a counter
reset: the process restarted), not through `increase()`, which extrapolates to
fractions of calls. Each step's calls become rows: ``t`` spread evenly over the step
(seconds from `start`), ``outcome`` success / failure / slow / rejected, ``latency``
placed inside its histogram bucket by linear interpolation, as `histogram_quantile`
does (a call past the last finite bucket gets that bound, 10 s: at least that), ``tool``
the breaker's name, ``source`` "prometheus". Series of several instances (replicas)
are summed. The rows carry no phase labels: the fit finds the phases
(`cblab.faults.changepoint`). A step holds the calls between two scrapes, so the time
resolution is the scrape interval at best.

Every input is checked before the first query (`PrometheusError`, one line): the URL
(http(s), a host, no credentials), the time range, the step (at most `MAX_POINTS`
points, Prometheus's own limit), the breaker name. An unreachable Prometheus, an
error it answers, no series, or no call in the range is one line too.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = ["BUCKETS", "MAX_POINTS", "MAX_ROWS", "PrometheusError", "RangeQuery",
           "add_prometheus_options", "check_url", "parse_step", "parse_time", "prometheus_rows",
           "range_query", "rows_from_args", "rows_from_series"]

BUCKETS = "cblab_circuitbreaker_call_duration_seconds_bucket"
REFUSED = "cblab_circuitbreaker_not_permitted_calls_total"
MAX_POINTS = 11_000  # points per series Prometheus answers in one range query
MAX_ROWS = 500_000  # calls turned into rows (about 200 MB of dicts)
MAX_SERIES = 5_000
TIMEOUT_S = 30.0
_OUTCOMES = {"successful": "success", "failed": "failure", "slow": "slow"}
_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class PrometheusError(ValueError):
    """A bad flag, an unreachable Prometheus, or nothing to read; one line."""


@dataclass(frozen=True)
class RangeQuery:
    url: str  # Prometheus's base URL, no trailing slash
    start: float  # unix seconds
    end: float
    step: float  # seconds
    name: str | None  # the breaker (`name` label); None: the only one with calls


def check_url(url: str) -> str:
    """Prometheus's base URL (http(s)://host[:port][/prefix]) without a trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PrometheusError(f"--prometheus needs Prometheus's base URL, e.g. "
                              f"http://127.0.0.1:9090, got {url!r}")
    if parts.username or parts.password:
        raise PrometheusError("--prometheus URL must not carry credentials")
    if parts.query or parts.fragment:
        raise PrometheusError(f"--prometheus URL must have no query or fragment, got {url!r}")
    return url.rstrip("/")


def _duration(text: str) -> float | None:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_time(text: str, flag: str, now: float) -> float:
    """``now``, ``now-DURATION`` (e.g. now-30m; also ``-30m``, as ``--start=-30m``),
    unix seconds, or RFC 3339."""
    text = text.strip()
    if text == "now":
        return now
    text = text.removeprefix("now")
    if text.startswith("-"):
        ago = _duration(text[1:])
        if ago is not None:
            return now - ago
    try:
        value = float(text)
    except ValueError:
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            value = math.nan
        else:
            if stamp.tzinfo is None:
                raise PrometheusError(f"{flag} {text!r}: give a time zone (e.g. Z)") from None
            value = stamp.timestamp()
    if not (math.isfinite(value) and value > 0):
        raise PrometheusError(f"{flag} must be now, now-DURATION (e.g. now-30m), unix "
                              f"seconds or an RFC 3339 time, got {text!r}")
    return value


def parse_step(text: str) -> float:
    """Seconds, or a duration such as 15s, 1m."""
    value = _duration(text)
    if value is None or not (math.isfinite(value) and value > 0):
        raise PrometheusError(f"--step must be a duration > 0 (e.g. 15s, 1m), got {text!r}")
    return value


def range_query(url: str, *, start: str | None, end: str | None, step: str | None,
                name: str | None, now: float | None = None) -> RangeQuery:
    """Check every flag (PrometheusError naming the flag): the default range is the
    last hour, the default step the range / 1,000 (at least 1 s)."""
    base = check_url(url)
    now = time.time() if now is None else now
    stop = parse_time(end, "--end", now) if end is not None else now
    begin = parse_time(start, "--start", now) if start is not None else stop - 3600.0
    if begin >= stop:
        raise PrometheusError(f"--start must be before --end, got {begin:.0f} >= {stop:.0f} "
                              "(unix seconds)")
    if stop > now + 60:
        raise PrometheusError("--end is in the future")
    width = parse_step(step) if step is not None else max(1.0, (stop - begin) / 1000)
    if (stop - begin) / width > MAX_POINTS:
        raise PrometheusError(f"--step {width:g}s gives {math.ceil((stop - begin) / width):,} "
                              f"points, more than Prometheus's {MAX_POINTS:,}: take a longer "
                              "step or a shorter range")
    if name is not None and not _NAME.fullmatch(name):
        raise PrometheusError(f"--tool {name!r}: a breaker name is 1-64 letters, digits, "
                              "'_', '.', ':' or '-'")
    return RangeQuery(base, begin, stop, width, name)


def _query(q: RangeQuery, expr: str) -> list[Mapping[str, Any]]:
    import httpx

    endpoint = f"{q.url}/api/v1/query_range"
    try:
        response = httpx.get(endpoint, timeout=TIMEOUT_S, params={
            "query": expr, "start": f"{q.start:.3f}", "end": f"{q.end:.3f}",
            "step": f"{q.step:g}"})
    except httpx.HTTPError as exc:
        raise PrometheusError(f"cannot reach Prometheus at {q.url}: "
                              f"{exc or type(exc).__name__}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        raise PrometheusError(f"{q.url} did not answer as Prometheus's HTTP API "
                              f"(HTTP {response.status_code} from {endpoint})")
    if body["status"] != "success":
        raise PrometheusError(f"Prometheus at {q.url} refused {expr}: "
                              f"{body.get('errorType', '?')}: {body.get('error', '?')}")
    result = (body.get("data") or {}).get("result")
    if not isinstance(result, list):
        raise PrometheusError(f"Prometheus at {q.url} answered no series list for {expr}")
    if len(result) > MAX_SERIES:
        raise PrometheusError(f"{expr} matched {len(result):,} series, more than "
                              f"{MAX_SERIES:,}: pick one breaker with --tool")
    return [s for s in result if isinstance(s, Mapping)]


def _increments(values: Sequence[Any], start: float, step: float) -> dict[int, float]:
    """Step index -> the counter's increase since the previous point (resets handled)."""
    out: dict[int, float] = {}
    previous = None
    for stamp, text in values:
        value = float(text)
        if not math.isfinite(value):
            continue
        if previous is not None:
            gained = value - previous if value >= previous else value  # a reset: from 0
            if gained > 0:
                index = round((float(stamp) - start) / step)
                out[index] = out.get(index, 0.0) + gained
        previous = value
    return out


def _spread(index: int, step: float, calls: list[tuple[str, float]],
            ) -> list[tuple[float, str, float]]:
    """A step's calls at even times inside it, each outcome spread over the whole step."""
    by_outcome: dict[str, list[float]] = {}
    for outcome, latency in calls:
        by_outcome.setdefault(outcome, []).append(latency)
    placed = []
    for outcome, latencies in by_outcome.items():
        n = len(latencies)
        placed += [((j + 0.5) / n, outcome, latency) for j, latency in enumerate(latencies)]
    placed.sort()
    return [((index - 1 + frac) * step, outcome, latency) for frac, outcome, latency in placed]


def _bucket_latencies(counts: Mapping[float, float]) -> list[float]:
    """Cumulative bucket counts (le -> count) of one step -> a latency per call."""
    latencies: list[float] = []
    below, lower = 0.0, 0.0
    finite = [le for le in sorted(counts) if math.isfinite(le)]
    top = finite[-1] if finite else 0.0
    for le in sorted(counts):
        k = max(round(counts[le] - below), 0)
        below = max(below, counts[le])
        upper = le if math.isfinite(le) else top
        low = lower if math.isfinite(le) else top
        latencies += [low + (upper - low) * (j + 0.5) / k for j in range(k)]
        lower = upper
    return latencies


def rows_from_series(buckets: Sequence[Mapping[str, Any]], refused: Sequence[Mapping[str, Any]],
                     *, start: float, step: float, name: str) -> list[dict[str, Any]]:
    """Range-query series (Prometheus's ``result`` lists) -> call rows, by time."""
    steps: dict[int, dict[str, dict[float, float]]] = {}  # index -> kind -> le -> count
    bounds: dict[str, set[float]] = {}  # every bucket of the kind (a step may miss some)
    for series in buckets:
        labels = series.get("metric") or {}
        outcome, le = _OUTCOMES.get(str(labels.get("kind"))), labels.get("le")
        if outcome is None or le is None:
            continue
        bound = math.inf if le == "+Inf" else float(le)
        bounds.setdefault(outcome, set()).add(bound)
        for index, gained in _increments(series.get("values") or [], start, step).items():
            per_le = steps.setdefault(index, {}).setdefault(outcome, {})
            per_le[bound] = per_le.get(bound, 0.0) + gained
    rejected: dict[int, float] = {}
    for series in refused:
        for index, gained in _increments(series.get("values") or [], start, step).items():
            rejected[index] = rejected.get(index, 0.0) + gained
    total = sum(max(c.get(math.inf, 0.0), 0.0) for kinds in steps.values()
                for c in kinds.values()) + sum(rejected.values())
    if total > MAX_ROWS:
        raise PrometheusError(f"the range holds {total:,.0f} calls of breaker {name!r}, more "
                              f"than {MAX_ROWS:,}: narrow --start/--end")
    rows: list[dict[str, Any]] = []
    for index in sorted(set(steps) | set(rejected)):
        calls = [(outcome, latency) for outcome, counts in steps.get(index, {}).items()
                 for latency in _bucket_latencies(
                     {le: counts.get(le, 0.0) for le in bounds[outcome]})]
        calls += [("rejected", 0.0)] * round(rejected.get(index, 0.0))
        for t, outcome, latency in _spread(index, step, calls):
            rows.append({"kind": "call", "source": "prometheus", "t": t, "tool": name,
                         "breaker": name, "outcome": outcome, "latency": latency,
                         "error_type": "circuit_open" if outcome == "rejected" else None})
    return rows


def _selector(name: str | None) -> str:
    return "" if name is None else '{name="' + name + '"}'


def prometheus_rows(q: RangeQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The breaker's calls in the range, as rows; metadata says what was read."""
    buckets = _query(q, BUCKETS + _selector(q.name))
    if not buckets:
        known = [] if q.name is None else sorted(
            str((s.get("metric") or {}).get("name")) for s in
            _query(q, f"count by (name) ({BUCKETS})"))
        hint = (f"breakers in the range: {', '.join(known)}" if known else
                "is it scraping a cblab server's /metrics?")
        raise PrometheusError(
            f"Prometheus at {q.url} has no {BUCKETS}{_selector(q.name)} between "
            f"{_iso(q.start)} and {_iso(q.end)}; {hint}")
    names = sorted({str((s.get("metric") or {}).get("name")) for s in buckets})
    name = q.name
    if name is None:
        busy = [n for n in names if any(
            _increments(s.get("values") or [], q.start, q.step)
            for s in buckets if (s.get("metric") or {}).get("name") == n)]
        if len(busy) != 1:
            raise PrometheusError(
                f"{'breakers' if busy else 'no breaker had calls; breakers'} "
                f"{', '.join(busy or names)} in the range: pick one with --tool NAME")
        name = busy[0]
        buckets = [s for s in buckets if (s.get("metric") or {}).get("name") == name]
    refused = _query(q, REFUSED + _selector(name))
    rows = rows_from_series(buckets, refused, start=q.start, step=q.step, name=name)
    if not rows:
        raise PrometheusError(f"breaker {name!r} had no calls between {_iso(q.start)} and "
                              f"{_iso(q.end)} (Prometheus at {q.url})")
    meta = {"prometheus": {"name": f"prometheus-{name}", "url": q.url, "start": q.start,
                           "end": q.end, "step": q.step, "breaker": name}}
    return rows, meta


def add_prometheus_options(group: Any) -> None:
    """`--prometheus URL --start --end --step` (`cblab tune`, `cblab fit`)."""
    group.add_argument("--prometheus", default=None, metavar="URL",
                       help="read the breaker's calls through this Prometheus's query_range "
                            "API instead of a run, e.g. http://127.0.0.1:9090")
    group.add_argument("--start", default=None, metavar="TIME",
                       help="now, now-DURATION (e.g. now-30m), unix seconds or RFC 3339 "
                            "(default: an hour before --end)")
    group.add_argument("--end", default=None, metavar="TIME", help="as --start (default: now)")
    group.add_argument("--step", default=None, metavar="DURATION",
                       help="e.g. 15s (default: the range / 1000, at least 1s; the scrape "
                            "interval is the finest that tells)")


def rows_from_args(args: Any) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The rows when ``args.prometheus`` is given, None when ``args.run`` is; a
    PrometheusError for both, neither, or range flags without --prometheus."""
    if (args.run is None) == (args.prometheus is None):
        raise PrometheusError("give a run (a directory or file) or --prometheus URL, not "
                              f"{'both' if args.run else 'neither'}")
    if args.prometheus is None:
        if any(v is not None for v in (args.start, args.end, args.step)):
            raise PrometheusError("--start, --end and --step go with --prometheus")
        return None
    return prometheus_rows(range_query(args.prometheus, start=args.start, end=args.end,
                                       step=args.step, name=args.tool))


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")
