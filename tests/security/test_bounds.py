"""Issue 15 item 5: every number a client can send is bounded, and every answer of
the control API is valid JSON (no Infinity), whatever was sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cblab.backend import Backend
from cblab.faults.profile import MAX_LATENCY_MS, FaultProfile, plan_request


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in an answer: not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
async def control() -> AsyncIterator[httpx.AsyncClient]:
    async with Backend(seed=1) as backend, httpx.AsyncClient(
        base_url=backend.urls["control"]
    ) as http:
        yield http


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"latency": {"kind": "constant", "ms": 1e308}}, "latency.ms"),
        ({"latency": {"kind": "normal", "mean_ms": 1, "sd_ms": 1e12}}, "latency.sd_ms"),
        ({"latency": {"kind": "lognormal", "median_ms": 5e6, "sigma": 1}}, "latency.median_ms"),
        ({"latency": {"kind": "lognormal", "median_ms": 5, "sigma": 700}}, "latency.sigma"),
        ({"slow_ms": 1e300}, "slow_ms"),
        ({"retry_after_s": 1e18}, "retry_after_s"),
        ({"max_concurrency": 10**17}, "max_concurrency"),
    ],
)
async def test_unbounded_profile_numbers_are_422(
    control: httpx.AsyncClient, patch: dict[str, Any], field: str
) -> None:
    answer = await control.patch("/faults/users", json=patch)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]


def _scenario(*durations: float) -> dict[str, Any]:
    return {
        "name": "long",
        "phases": [{"name": f"p{i}", "duration_s": d} for i, d in enumerate(durations)],
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"scenario": _scenario(1e308, 1e308)}, "duration_s must be > 0 and at most"),
        ({"scenario": _scenario(*[29 * 86_400] * 13)}, "more than"),
        ({"scenario": _scenario(60), "time_scale": 1e300}, "time_scale"),
        ({"scenario": {**_scenario(1), "phases": [
            {"name": "p", "duration_s": 1, "load": {"rate_per_s": 1e12}}]}}, "rate_per_s"),
    ],
    ids=["phase-1e308", "sum-over-a-year", "time-scale", "rate"],
)
async def test_scenario_durations_cannot_overflow(
    control: httpx.AsyncClient, body: dict[str, Any], words: str
) -> None:
    answer = await control.post("/scenario", json=body)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["error"]
    status = await control.get("/scenario")
    _strict(status.text)  # today: "total_duration_s": Infinity


async def test_every_answer_is_strict_json(control: httpx.AsyncClient) -> None:
    await control.put("/faults/users", json={"mode": "hang"})
    await control.post("/scenario", json={"scenario": _scenario(3600, 3600)})
    for path in ("/faults", "/faults/users", "/scenario", "/scenarios", "/stats", "/health"):
        _strict((await control.get(path)).text)


def test_a_sampled_latency_is_capped() -> None:
    import random

    profile = FaultProfile.from_dict({"latency": {
        "kind": "normal", "mean_ms": MAX_LATENCY_MS, "sd_ms": MAX_LATENCY_MS}})
    rng = random.Random(3)
    assert max(plan_request(profile, rng).latency_s for _ in range(200)) <= MAX_LATENCY_MS / 1000


def test_an_inf_that_slipped_through_is_answered_as_null() -> None:
    from cblab.backend.http import json_response

    body = json_response(200, {"a": float("inf"), "b": [float("nan"), 1.5]}).body
    assert _strict(body.decode()) == {"a": None, "b": [None, 1.5]}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"header_timeout_s": 0}, "header_timeout_s"),
        ({"idle_timeout_s": float("inf")}, "idle_timeout_s"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_connection_limits_are_validated(kwargs: dict[str, Any], field: str) -> None:
    from cblab.backend.http import Limits

    with pytest.raises(ValueError, match=field):
        Limits(**kwargs)


def test_backend_cli_refuses_a_bad_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    from cblab.backend.cli import main

    assert main(["--header-timeout", "-1"]) == 2
    assert "header_timeout_s" in capsys.readouterr().err
