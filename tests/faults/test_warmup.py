"""Warm-up: a client's first-call stall is found and left out of a fit; an outage later
in the run is never taken for one."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cblab.faults.fit import FitError, fit_run
from cblab.faults.warmup import find_warmup


def rows(stall_s: float = 6.0, n: int = 600, error_rate: float = 0.1,
         outage: tuple[float, float] | None = None, seed: int = 1) -> list[dict[str, Any]]:
    """Calls every 0.1 s, lognormal ~50 ms; the client stalls until `stall_s` (each call
    scheduled before then waits for it, as an open-loop generator measures)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = i * 0.1
        latency = rng.lognormvariate(-3.0, 0.3)
        if t < stall_s:
            latency += stall_s + 0.2 - t
        if outage and outage[0] <= t < outage[1]:
            latency += 8.0
        outcome = "failure" if rng.random() < error_rate else "success"
        out.append({"seq": i + 1, "kind": "call", "t": t, "source": "load", "tool": "echo",
                    "outcome": outcome, "latency": latency})
    return out


def test_the_stall_is_found_and_ends_when_the_client_caught_up() -> None:
    found = find_warmup(rows(stall_s=6.0))
    assert found
    assert 6.0 <= found.end_s <= 6.6
    assert found.dropped == sum(1 for r in rows(stall_s=6.0) if r["t"] < found.end_s)


def test_no_stall_no_warmup() -> None:
    assert not find_warmup(rows(stall_s=0.0))


def test_an_outage_later_in_the_run_is_not_warmup() -> None:
    assert not find_warmup(rows(stall_s=0.0, outage=(30.0, 40.0)))


def test_the_fit_leaves_the_warmup_out_and_says_so() -> None:
    data = rows(stall_s=6.0)
    trimmed = fit_run(data)
    whole = fit_run(data, warmup=0)
    assert trimmed.warmup.dropped > 50 and not whole.warmup
    q_trim, q_whole = trimmed.quality(), whole.quality()
    assert q_trim.loc["all", "ks"] < 0.08 < q_whole.loc["all", "ks"]
    # the fitted p99 matches what the service did, not the stall
    assert q_trim.loc["all", "p99_ms_fitted"] == pytest.approx(
        q_trim.loc["all", "p99_ms_observed"], rel=0.25)
    assert q_whole.loc["all", "p99_ms_observed"] > 2000
    assert trimmed.phases[0].profile.error_rate == pytest.approx(0.1, abs=0.04)
    with pytest.raises(FitError, match="warmup"):
        fit_run(data, warmup=-1)


def _cblab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cblab.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cblab_fit_writes_a_scenario_that_simulate_replays(tmp_path: Path) -> None:
    source = tmp_path / "rows.json"
    source.write_text(json.dumps({"events": rows(stall_s=6.0)}))
    out = tmp_path / "profile.json"
    done = _cblab("fit", str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "warm-up:" in done.stdout and "left out" in done.stdout
    assert "p99_ms_fitted" in done.stdout and "error_rate_95ci" in done.stdout
    scenario = json.loads(out.read_text())
    assert scenario["phases"][0]["faults"]["users"]["latency"]["kind"] == "lognormal"
    replay = _cblab("simulate", str(out), "--seed", "1")
    assert replay.returncode == 0, replay.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"events": []}, "no rows"),
        ({"events": rows(n=10)}, "need at least 20 calls"),
        ([1, 2, 3], "expected a list of event rows"),
        ("[" * 5000 + "]" * 5000, "nest"),
    ],
)
def test_cblab_fit_refuses_bad_input_in_one_line(tmp_path: Path, content: Any,
                                                 message: str) -> None:
    source = tmp_path / "rows.json"
    source.write_text(content if isinstance(content, str) else json.dumps(content))
    done = _cblab("fit", str(source))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_cblab_fit_names_a_missing_input_and_a_bad_flag(tmp_path: Path) -> None:
    done = _cblab("fit", str(tmp_path / "nope"))
    assert done.returncode == 2 and "no such run directory or file" in done.stderr
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(rows()))
    done = _cblab("fit", str(source), "--warmup", "soon")
    assert done.returncode == 2 and "--warmup must be 'auto' or seconds" in done.stderr
