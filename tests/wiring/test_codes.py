"""The refusal shape and error codes that every layer shares (cblab.codes)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cblab.codes import (
    DEPENDENCY_UNAVAILABLE,
    LOCAL_OVERLOAD,
    Refusal,
    http_error,
    local_overload,
    unavailable,
)


def test_open_breaker_refusal_has_the_documented_shape():
    refusal = unavailable("github", "open", 12.3456)
    assert refusal.structured() == {
        "error": "dependency_unavailable",
        "breaker": "github",
        "state": "open",
        "retry_after_s": 12.346,
    }
    assert refusal.message == (
        "The github dependency is temporarily unavailable (circuit breaker open): retry in 12.3 s."
    )


@pytest.mark.parametrize(
    ("state", "retry_after", "retry_s", "tail"),
    [
        ("half_open", 0.01, 0.01, "(circuit breaker half-open): retry now."),
        ("open", math.inf, None, "(circuit breaker open): it was forced open by an operator; retry later."),
    ],
)
def test_refusal_retry_hints(state, retry_after, retry_s, tail):
    refusal = unavailable("database", state, retry_after)
    assert refusal.structured()["retry_after_s"] == retry_s
    assert refusal.message.endswith(tail)


def test_bulkhead_refusal_says_local_overload_and_does_not_blame_the_dependency():
    refusal = local_overload("database", "closed", 4, 0.25)
    assert refusal.structured() == {
        "error": "local_overload", "breaker": "database", "state": "closed", "retry_after_s": 0.25,
    }
    assert "all 4 of its slots for the database dependency" in refusal.message
    assert "not failing" in refusal.message


def test_parse_reads_back_what_structured_wrote():
    for refusal in (unavailable("github", "open", 2.5), local_overload("github", "closed", 2, 1.0)):
        parsed = Refusal.parse(refusal.structured(), refusal.message)
        assert parsed == refusal
    assert Refusal.parse({"error": DEPENDENCY_UNAVAILABLE}) == Refusal(DEPENDENCY_UNAVAILABLE, "", "", None)
    assert Refusal.parse({"error": LOCAL_OVERLOAD, "retry_after_s": True}).retry_after_s is None


@pytest.mark.parametrize(
    "structured", [None, "dependency_unavailable", {}, {"error": "tool_error"}, [1, 2]]
)
def test_parse_returns_none_for_anything_else(structured):
    assert Refusal.parse(structured) is None


def test_unknown_error_code_is_refused_by_name():
    with pytest.raises(ValueError, match="'http_503'"):
        Refusal("http_503", "github", "open", 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        unavailable("github", "open", 1.0).state = "closed"  # type: ignore[misc]


def test_the_middleware_form_is_the_same_refusal():
    from cblab.integrations import refusal as middleware_form

    refusal = unavailable("github", "open", 3.0)
    assert middleware_form.unavailable("github", "open", 3.0) == (refusal.message, refusal.structured())


def test_http_error_code():
    assert http_error(503) == "http_503"
