"""`cblab simulate` and `cblab sweep` from the command line."""

from __future__ import annotations

import json

import pytest

from cblab.analysis import read_events, run_kpis
from cblab.cli import main
from cblab.sim.cli import simulate_main, sweep_main


def test_simulate_prints_kpis_and_writes_events(tmp_path, capsys):
    out = tmp_path / "run.csv"
    code = simulate_main(["outage-and-recovery", "--set", "failure_threshold=3",
                          "--set", "timeout=5", "--seed", "4", "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "availability" in text and "trips" in text and f"to {out}" in text
    frame = read_events(out)
    assert set(frame["source"]) == {"sim"} and set(frame["variant"]) == {"protected"}
    assert run_kpis(frame, "outage-and-recovery")["trips"] >= 1


def test_simulate_compare_runs_both_sides(tmp_path, capsys):
    out = tmp_path / "both.csv"
    assert main(["simulate", "hang", "--compare", "--phases", "--time-scale", "0.5",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "unprotected" in text and "protected" in text and "per phase" in text
    frame = read_events(out)
    assert set(frame["variant"]) == {"protected", "unprotected"}
    assert list(frame["seq"]) == list(range(1, len(frame) + 1))


def test_config_from_a_json_file(tmp_path, capsys):
    path = tmp_path / "breaker.json"
    path.write_text(json.dumps({"failure_threshold": 2, "policy": {"name": "cumulative"}}))
    assert simulate_main(["flapping", "--config", str(path), "--time-scale", "0.2"]) == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["no-such-scenario"], "unknown scenario"),
    (["hang", "--set", "failure_threshold=0"], "failure_threshold"),
    (["hang", "--set", "bogus=1"], "unknown configuration field"),
    (["hang", "--set", "novalue"], "name=value"),
    (["hang", "--deadline", "-2"], "--deadline"),
    (["hang", "--service", "payments"], "--service"),
    (["hang", "--config", "{not json"], "not valid JSON"),
    (["hang", "--config", "/no/such/file.json"], "cannot read"),
    (["hang", "--unprotected", "--compare"], "not allowed"),
    ([], "required"),
])
def test_simulate_bad_input_exits_2_with_a_message(argv, message, capsys):
    assert simulate_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cblab simulate: error:") and message in err
    assert "Traceback" not in err


def test_a_broken_scenario_file_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x", "phases": [{"name": "p", "duration_s": -1}]}')
    assert simulate_main([str(path)]) == 2
    assert "duration_s must be > 0" in capsys.readouterr().err
    path.write_text("{")
    assert simulate_main([str(path)]) == 2
    assert "invalid JSON" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert simulate_main(["--help"]) == 0
    assert sweep_main(["--help"]) == 0
    assert "usage" in capsys.readouterr().out


def test_sweep_writes_one_row_per_run(tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    code = sweep_main(["--param", "failure_threshold=3,5", "--grid", '{"timeout": [1, 5]}',
                       "--scenario", "flapping", "--seed-list", "1,2", "--workers", "1",
                       "--no-progress", "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "8 runs (4 settings x 1 scenarios x 2 seeds)" in text
    import pandas as pd

    table = pd.read_csv(out)
    assert len(table) == 8 and {"failure_threshold", "timeout", "availability"} <= set(table)


@pytest.mark.parametrize("name", ["sweep.parquet", "sweep.csv"])
def test_sweep_output_carries_the_run_metadata(tmp_path, capsys, name):
    from cblab.sim.sweep import read_sweep

    out = tmp_path / name
    code = sweep_main(["--param", "timeout=1,5", "--scenario", "hang", "--seeds", "2",
                       "--set", "failure_threshold=2", "--deadline", "0.5", "--workers", "1",
                       "--no-progress", "--no-cache", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    table = read_sweep(out)
    assert list(table["timeout"]) == [1, 1, 5, 5] and list(table["seed"]) == [0, 1, 0, 1]
    meta = table.attrs["sweep"]
    assert meta["executor"] == "local" and meta["runs"] == 4 and meta["cached"] == 0
    assert meta["base"] == {"failure_threshold": 2} and meta["options"]["deadline_s"] == 0.5
    assert meta["grid"] == {"timeout": [1, 5]} and "hang" in meta["scenarios"]
    assert meta["cblab_version"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(("argv", "message"), [
    ([], "nothing to sweep"),
    (["--param", "nope=1,2"], "unknown grid key"),
    (["--param", "timeout=1", "--scenario", "no-such"], "unknown scenario"),
    (["--param", "timeout=1", "--workers", "0"], "--workers"),
    (["--grid", "[1, 2]"], "JSON object"),
    (["--param", "timeout=1", "--seeds", "0"], "seeds"),
    (["--param", "timeout=1", "--batch-size", "0"], "--batch-size"),
    (["--param", "failure_threshold=0,3"], "failure_threshold"),
    (["--param", "timeout=1", "--scheduler", "tcp://127.0.0.1:8786"], "--executor dask"),
    (["--param", "timeout=1", "--executor", "spark"], "--executor"),
    (["--param", "timeout=1", "-o", "out.xlsx"], ".parquet or .csv"),
    (["--param", "timeout=1", "-o", "/no/such/dir/out.csv"], "does not exist"),
    (["--param", "timeout=1", "--set", "bogus=2"], "unknown configuration field"),
])
def test_sweep_bad_input_exits_2_with_a_message(argv, message, capsys):
    assert sweep_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cblab sweep: error:") and message in err
