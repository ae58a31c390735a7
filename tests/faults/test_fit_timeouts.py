"""A hang seen through a client guard: the guard's deadline reaches the caller as an
error (the load generator's row says failure/MCPError at about the deadline, the
guard's own row request_timeout). The fit counts those calls as timeouts, not errors
(08's fit said `timeouts: 0` after a hang)."""

from __future__ import annotations

import random

from cblab.faults.fit import fit_run


def _rows(hung: list[tuple[str, str, float]]) -> list[dict]:
    rng = random.Random(1)
    rows = [{"kind": "call", "source": "load", "t": i * 0.1, "outcome": "success",
             "latency": rng.gauss(0.05, 0.005), "phase": "healthy"} for i in range(40)]
    rows += [{"kind": "call", "source": "load", "t": 4 + i * 0.1, "outcome": outcome,
              "error_type": error, "latency": latency, "phase": "hang"}
             for i, (outcome, error, latency) in enumerate(hung)]
    return rows


def test_a_guards_deadline_counts_as_a_timeout():
    hung = [("failure", "MCPError", 2.0 + i / 1000) for i in range(25)]  # at the deadline
    hung += [("failure", "request_timeout", 1.5)] * 5  # the guard's code, whatever the time
    hung += [("timeout", "deadline_exceeded", 5.0)] * 5  # the load generator's own deadline
    fit = fit_run(_rows(hung), deadline_s=2.0)
    healthy, hang = fit.phases
    assert (healthy.timeouts, healthy.errors) == (0, 0)
    assert (hang.timeouts, hang.errors) == (35, 0)
    assert hang.profile.mode == "hang"
    assert [row["timeouts"] for row in fit.quality_rows()] == [0, 35]


def test_a_fast_failure_is_an_error_not_a_timeout():
    hung = [("failure", "MCPError", 0.01)] * 20 + [("failure", "http_500", 1.9)] * 20
    hang = fit_run(_rows(hung), deadline_s=2.0).phases[1]
    assert (hang.timeouts, hang.errors) == (0, 40)
