"""A real Prometheus scraping a live `cblab serve` (through `Stack`), with the shipped
rules (the open alert's `for:` shortened in a test copy): the backend goes down, the
open-breaker alert goes pending then firing and the recording rules say so; the
backend comes back, the breaker closes and the alert resolves. The dashboard's
queries run on the same Prometheus and name only metrics that exist."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client

from cblab.integrations.ops import DASHBOARD, RULES
from cblab.stack import Stack

from .prom import PROMETHEUS, Prometheus, wait_for

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus missing: make system-deps (Debian's prometheus)")

OPEN_FOR = "3s"


def rules_copy(tmp_path: Path) -> Path:
    """The shipped rules with CircuitBreakerOpen's `for:` set to OPEN_FOR."""
    rules = yaml.safe_load(RULES.read_text())
    (alert,) = [r for g in rules["groups"] for r in g["rules"]
                if r.get("alert") == "CircuitBreakerOpen"]
    alert["for"] = OPEN_FOR
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path




@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # A short open timeout: the breaker is open or half-open (not closed) until a trial
    # call succeeds, so the alert holds while the backend is down.
    with Stack(("protected",), github={"failure_threshold": 2, "timeout": 2.0,
                                        "success_threshold": 1, "half_open_max_calls": 1},
               deadline=1.0) as started:
        yield started


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[Prometheus]:
    target = stack.server_url("protected").removeprefix("http://")
    with Prometheus(tmp_path, [target], [rules_copy(tmp_path)]) as prom:
        wait_for(lambda: prom.query('up{job="cblab"} == 1'), "the cblab target up")
        yield prom


def value(result: list[dict[str, Any]], **labels: str) -> float | None:
    for sample in result:
        if all(sample["metric"].get(k) == v for k, v in labels.items()):
            return float(sample["value"][1])
    return None


def alert_states(prom: Prometheus, seen: list[str]) -> list[str]:
    """Poll: append the github alert's state when it changes; return what was seen."""
    states = [a["state"] for a in prom.alerts("CircuitBreakerOpen")
              if a["labels"].get("name") == "github"]
    state = states[0] if states else "inactive"
    if not seen or seen[-1] != state:
        seen.append(state)
    return seen


async def call_github(client: Client) -> Any:
    return await client.call_tool("github_user", {"username": "octocat"}, raise_on_error=False)


async def test_open_alert_pends_fires_and_resolves(stack: Stack, prometheus: Prometheus) -> None:
    prom = prometheus
    async with Client(stack.mcp_url("protected")) as client:
        assert not (await call_github(client)).is_error
        wait_for(lambda: value(prom.query("cblab:circuitbreaker_not_closed"), name="github")
                 == 0, "the recording rule: github closed")
        assert alert_states(prom, []) == ["inactive"]

        stack.backend.set_faults("users", mode="down")
        for _ in range(2):
            assert (await call_github(client)).is_error
        refused = await call_github(client)
        assert refused.structured_content["error"] == "dependency_unavailable"

        seen: list[str] = []
        wait_for(lambda: "firing" in alert_states(prom, seen), "the alert firing")
        assert seen[:2] == ["inactive", "pending"] or seen[:1] == ["pending"], seen
        assert seen[-1] == "firing"
        (alert,) = [a for a in prom.alerts("CircuitBreakerOpen")
                    if a["labels"]["name"] == "github"]
        assert alert["annotations"]["summary"] == \
            "Circuit breaker github has been open for 5 minutes"
        assert alert["labels"]["severity"] == "critical"

        # The recording rules: github not closed, database closed; some github calls refused.
        not_closed = prom.query("cblab:circuitbreaker_not_closed")
        assert value(not_closed, name="github") == 1
        assert value(not_closed, name="database") == 0
        ratio = wait_for(lambda: value(
            prom.query("cblab:circuitbreaker_rejected:ratio_rate1m"), name="github"),
            "a rejected share for github")
        assert 0 < ratio <= 1
        assert value(prom.query("cblab:circuitbreaker_rejected:ratio_rate1m"),
                     name="database") is None  # no calls: no share
        failed = value(prom.query("cblab:circuitbreaker_failed:ratio_rate1m"), name="github")
        assert failed is not None and 0 < failed <= 1

        stack.backend.clear_faults()

        async def closes() -> bool:
            await call_github(client)  # refused until the open timeout, then a trial
            return stack.server("protected").status()["github"]["state"] == "closed"

        for _ in range(600):  # a trial is admitted 2 s after the trip (real time)
            if await closes():
                break
        else:
            raise AssertionError("github never closed")
    wait_for(lambda: value(prom.query("cblab:circuitbreaker_not_closed"), name="github")
             == 0, "the recording rule: github closed again")
    wait_for(lambda: not prom.alerts("CircuitBreakerOpen"), "the alert resolved")
    assert not prom.query('ALERTS{alertname="CircuitBreakerOpen"}')


# --- the dashboard --------------------------------------------------------------------

def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    return exprs


def as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled as Grafana would."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1s")
    expr = re.sub(r"\$(job|name)\b", ".*", expr)
    match = re.fullmatch(r"label_values\((.*), *(\w+)\)", expr)
    return f"count by ({match.group(2)}) ({match.group(1)})" if match else expr


def test_dashboard_datasource_is_a_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    (ds,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert ds["query"] == "prometheus"
    uids = {p["datasource"]["uid"] for p in board["panels"]}
    uids |= {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]}
    assert uids == {"${" + ds["name"] + "}"}
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for wanted in ("state", "outcomes", "rejected share", "p50", "p99", "transitions",
                   "in flight", "waiting", "refused"):
        assert wanted in titles, wanted


def test_dashboard_names_only_metrics_that_exist(stack: Stack) -> None:
    text = stack.server("protected").metrics()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    exposed = set(families)
    for name in families:  # a histogram's or summary's series
        exposed |= {name + s for s in ("_bucket", "_count", "_sum")}
    rules = yaml.safe_load(RULES.read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for expr in dashboard_exprs():
        names = set(re.findall(r"([a-zA-Z_:][\w:]*)\{", expr))
        assert names, expr
        bare = set(re.findall(r"(?<![\w:])cblab[\w:]*(?![\w:{])", expr))
        assert not bare, f"metric without a selector in {expr!r}: {bare}"
        missing = names - exposed - recorded
        assert not missing, f"{expr!r} names {missing}: not on /metrics nor recorded"


def test_every_dashboard_query_runs_on_prometheus(prometheus: Prometheus) -> None:
    for expr in dashboard_exprs():
        prometheus.query(as_promql(expr))  # a parse error fails: status "error"
    # and the state timeline has a value per breaker
    (timeline,) = [e for e in dashboard_exprs() if "2 * cblab_circuitbreaker_state" in e]
    result = wait_for(lambda: prometheus.query(as_promql(timeline)), "the state timeline")
    assert {s["metric"]["name"] for s in result} == {"github", "database"}
