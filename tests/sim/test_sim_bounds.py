"""Issue 20 item 1: no flag takes the machine. The work a simulation or sweep implies
(calls per run, runs per sweep, calls per sweep) is bounded up front, with one line
naming the limit and the flag that raises it."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from cblab.sim import simulate, sweep
from cblab.sim.bounds import WorkLimitError, expected_calls
from cblab.sim.run import write_events_csv
from cblab.sim.workload import load_phases, resolve_scenario

from .cli_process import run_cblab


def _one_error_line(stderr: str, command: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"cblab {command}: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        # each grew to gigabytes before the bound (21 GB, 7 GB, 1.7 GB)
        (["sweep", "--param", "failure_threshold=3,5", "--seeds", "1000000000"], "--max-runs"),
        (["sweep", "--param", "failure_threshold=3,5", "--rate", "1e9"], "--max-calls"),
        (["simulate", "outage-and-recovery", "--rate", "100000", "--time-scale", "10"],
         "--max-calls"),
        (["sweep", "--param", "failure_threshold=3,5", "--seeds", "50", "--rate", "1000",
          "--max-sweep-calls", "1000000"], "--max-sweep-calls"),
    ],
    ids=["seeds", "sweep-rate", "simulate-rate-x-time-scale", "sweep-calls"],
)
def test_work_past_a_bound_exits_2_naming_the_flag(tmp_path, argv, flag):
    done = run_cblab(*argv, "--no-progress" if argv[0] == "sweep" else "--phases", cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    line = _one_error_line(done.stderr, argv[0])
    assert flag in line and "more than the limit" in line
    assert done.stdout == ""  # nothing ran


def test_raising_the_limit_lets_the_run_through(tmp_path):
    small = ["simulate", "hang", "--rate", "50", "--time-scale", "0.1"]  # ~400 calls
    refused = run_cblab(*small, "--max-calls", "100", cwd=tmp_path)
    assert refused.returncode == 2 and "--max-calls" in refused.stderr
    accepted = run_cblab(*small, "--max-calls", "1000", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert "calls to users" in accepted.stdout


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "lots"])
def test_a_bad_limit_is_one_line(value, capsys):
    from cblab.sim.cli import simulate_main

    assert simulate_main(["hang", "--max-calls", value]) == 2
    assert "--max-calls" in capsys.readouterr().err


def test_the_python_api_refuses_before_any_work():
    with pytest.raises(WorkLimitError, match="max_calls=N"):
        simulate("outage-and-recovery", seed=0, rate=1e9)
    with pytest.raises(WorkLimitError, match="max_runs=N"):
        sweep({"failure_threshold": [3]}, "hang", 10**9, progress=False)
    # an endless iterator of seeds is read no further than the limit allows
    with pytest.raises(WorkLimitError, match="at least 11 seed"):
        sweep({"failure_threshold": [3]}, "hang", itertools.count(), progress=False,
              max_runs=10)
    with pytest.raises(WorkLimitError, match="max_sweep_calls=N"):
        sweep({"rate": [100, 200]}, "hang", 5, progress=False, max_sweep_calls=50_000)
    with pytest.raises(ValueError, match="max_calls must be an integer >= 1"):
        simulate("hang", seed=0, max_calls=0)


def test_the_bound_counts_rate_times_duration():
    scenario = resolve_scenario("overload")  # phases of 10, 60 and 10 calls/s
    by_hand = sum(p.duration_s * p.load.rate_per_s for p in scenario.phases)  # type: ignore[union-attr]
    assert expected_calls(load_phases(scenario)) == pytest.approx(by_hand)
    run = simulate(scenario, seed=3, max_calls=int(by_hand * 1.1))
    assert abs(run.calls - by_hand) < 5 * by_hand**0.5  # Poisson: within 5 sigma
    with pytest.raises(WorkLimitError):
        simulate(scenario, seed=3, max_calls=int(by_hand * 0.9))


def test_a_sweep_within_its_bounds_runs_every_point():
    table = sweep({"failure_threshold": [3, 5]}, ["hang"], 2, progress=False, workers=1,
                  max_runs=4, max_calls=2000, max_sweep_calls=8000)
    assert len(table) == 4


def test_events_are_written_in_chunks_exactly_as_the_frame(tmp_path):
    protected = simulate("hang", seed=2, time_scale=0.3)
    unprotected = simulate("hang", seed=2, time_scale=0.3, protected=False)
    out = tmp_path / "events.csv"
    assert write_events_csv([protected, unprotected], out, chunk_rows=37) == (
        len(protected) + len(unprotected))
    expected = pd.concat([protected.to_frame(), unprotected.to_frame()], ignore_index=True)
    expected["seq"] = range(1, len(expected) + 1)
    written = pd.read_csv(out)
    assert list(written.columns) == list(expected.columns)
    pd.testing.assert_series_equal(written["seq"], expected["seq"].astype(written["seq"].dtype))
    assert list(written["kind"]) == list(expected["kind"])
    assert list(written["variant"]) == list(expected["variant"])
    assert written["t"].tolist() == pytest.approx(expected["t"].tolist())
    assert [p.name for p in tmp_path.iterdir()] == ["events.csv"]  # no temp file left


def test_replica_runs_are_bounded_too():
    from cblab.sim.replicas import simulate_replicas

    with pytest.raises(WorkLimitError, match="max_calls=N"):
        simulate_replicas(2, rate=1e9, duration=60)
    assert simulate_replicas(2, rate=10, duration=10, outage=(2, 4), max_calls=200)


def test_a_process_count_that_would_fork_the_machine_is_refused(capsys):
    from cblab.sim.cli import sweep_main
    from cblab.sim.executors import max_local_workers

    assert sweep_main(["--param", "failure_threshold=3", "--workers", "100000"]) == 2
    assert "--workers must be at most" in capsys.readouterr().err
    with pytest.raises(ValueError, match="workers must be at most"):
        sweep({"failure_threshold": [3]}, "hang", 1, workers=max_local_workers() + 1,
              progress=False)
