"""Recorded runs: round trip, validation of every bad input, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cblab import runs as runs_module
from cblab.analysis import AnalysisError, events_frame
from cblab.runs import RUN_FORMAT, RunError, RunMeta, load_run, save_run, validate_events
from cblab.schema import EVENT_COLUMNS, EVENT_DTYPES
from tests.plots.sample import sample_events, sample_rows

META = {
    "name": "sample",
    "kind": "simulated",
    "config": {"users": {"failure_threshold": 2, "timeout": 1.5}},
    "scenario": {"name": "outage-and-recovery", "spec": None},
    "seed": 7,
    "notes": "hand-built",
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return save_run(tmp_path / "run", sample_events(), META)


def test_round_trip_keeps_events_and_metadata(run_dir: Path):
    run = load_run(run_dir)
    assert run.path == run_dir
    assert list(run.events.columns) == list(EVENT_COLUMNS)
    assert len(run.events) == len(sample_rows())
    original = sample_events()
    assert run.events["t"].tolist() == original["t"].tolist()
    pd.testing.assert_series_equal(
        run.events["latency"], original["latency"].astype(float), check_names=False
    )
    assert run.events["outcome"].tolist()[:3] == ["success", "failure", "failure"]
    assert run.events["breaker"].isna().sum() == original["breaker"].isna().sum()
    assert {c: str(run.events[c].dtype) for c in EVENT_COLUMNS} == {
        c: str(pd.Series(dtype=d).dtype) for c, d in EVENT_DTYPES.items()}  # analysis's frame
    meta = run.meta
    assert (meta.name, meta.kind, meta.seed, meta.format) == ("sample", "simulated", 7, RUN_FORMAT)
    assert meta.config == META["config"]
    assert meta.scenario == {"name": "outage-and-recovery", "spec": None}
    assert meta.variants == ["protected", "unprotected"]  # filled from the events
    assert meta.duration_s == pytest.approx(5.04)
    assert meta.started_at.endswith("Z")
    assert {"cblab", "python", "pandas"} <= set(meta.versions)
    assert run.variants == ["protected", "unprotected"]


def test_save_accepts_row_dicts_a_runmeta_and_a_scenario_name(tmp_path: Path):
    meta = RunMeta(name="rows", kind="live", scenario={"name": "hang"}, extra={"k": 1})
    path = save_run(tmp_path / "rows", sample_rows(), meta)
    data = json.loads((path / "run.json").read_text())
    assert data["extra"] == {"k": 1}
    assert load_run(path).meta.scenario == {"name": "hang", "spec": None}
    path = save_run(tmp_path / "named", sample_rows(), {"name": "n", "scenario": "hang"})
    assert load_run(path).meta.scenario_name == "hang"


def test_a_partial_frame_gets_the_missing_columns(tmp_path: Path):
    frame = sample_events()[["kind", "t", "variant", "outcome", "latency", "state", "state_after"]]
    run = load_run(save_run(tmp_path / "partial", frame, {"name": "p"}))
    assert list(run.events.columns) == list(EVENT_COLUMNS)
    assert run.events["seq"].tolist() == list(range(1, len(frame) + 1))  # numbered in order
    with pytest.raises(RunError, match="missing required column"):  # state rows need `state`
        save_run(tmp_path / "no-state", frame.drop(columns="state"), {"name": "p"})


# --- bad input: load_run ------------------------------------------------------------


def _corrupt(run_dir: Path, name: str, text: str) -> Path:
    (run_dir / name).write_text(text, encoding="utf-8")
    return run_dir


def _events_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "nowhere", "no such run directory"),
        (lambda d: _corrupt(d, "x.txt", "x") / "x.txt", "not a directory"),
        (lambda d: (d / "run.json").unlink() or d, "run.json is missing"),
        (lambda d: _corrupt(d, "run.json", "{not json"), "not valid JSON"),
        (lambda d: _corrupt(d, "run.json", "[1, 2]"), "must be a JSON object"),
        (lambda d: _corrupt(d, "run.json", '{"format": 99, "name": "x"}'), "unsupported format"),
        (lambda d: _corrupt(d, "run.json", '{"format": 1}'), "'name' must be a non-empty"),
        (lambda d: _corrupt(d, "run.json", '{"name": "x", "kind": "dream"}'), "'kind' must be"),
        (
            lambda d: _corrupt(d, "run.json", '{"name": "x", "started_at": "soon"}'),
            "not an ISO 8601 time",
        ),
        (lambda d: (d / "events.csv").unlink() or d, "events.csv is missing"),
        (lambda d: _corrupt(d, "events.csv", ""), "the file is empty"),
        (
            lambda d: _corrupt(d, "events.csv", ",".join(EVENT_COLUMNS) + "\n"),
            "no events (empty run)",
        ),
        (
            lambda d: _corrupt(d, "events.csv", _events_csv(sample_events().assign(colour="red"))),
            "unknown column(s) 'colour'",
        ),
        (
            lambda d: _corrupt(d, "events.csv", _events_csv(sample_events().drop(columns="t"))),
            "missing column(s) 't'",
        ),
        (
            lambda d: _corrupt(
                d,
                "events.csv",
                _events_csv(sample_events().replace({"outcome": {"failure": "oops"}})),
            ),
            "row 2 (line 3): outcome must be one of",
        ),
        (
            lambda d: _corrupt(
                d,
                "events.csv",
                _events_csv(sample_events().replace({"state_after": {"open": "ajar"}})),
            ),
            "state_after must be one of",
        ),
        (
            lambda d: _corrupt(
                d, "events.csv", _events_csv(sample_events().replace({"kind": {"state": "mood"}}))
            ),
            "kind must be one of call, state",
        ),
        (
            lambda d: _corrupt(
                d, "events.csv", _events_csv(sample_events().assign(t=["soon"] * 17))
            ),
            "t must be a number",
        ),
        (
            lambda d: _corrupt(d, "events.csv", _events_csv(sample_events().assign(latency=-1.0))),
            "latency must be >= 0",
        ),
        (
            lambda d: _corrupt(d, "events.csv", "seq,seq\n1,2\n"),
            "duplicate or malformed column names",
        ),
    ],
    ids=[
        "missing-dir",
        "not-a-dir",
        "no-run-json",
        "corrupt-json",
        "json-not-object",
        "bad-format",
        "no-name",
        "bad-kind",
        "bad-started-at",
        "no-events",
        "empty-file",
        "empty-run",
        "unknown-column",
        "missing-column",
        "bad-outcome",
        "bad-state",
        "bad-event-kind",
        "bad-t",
        "negative-latency",
        "duplicate-columns",
    ],
)
def test_load_run_refuses_bad_input_with_a_clear_message(run_dir: Path, setup, message):
    target = setup(run_dir)
    with pytest.raises(RunError) as info:
        load_run(target)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


# --- bad input: save_run -----------------------------------------------------------


def test_save_run_validates_before_writing_anything(tmp_path: Path):
    with pytest.raises(RunError, match="unknown column"):
        save_run(tmp_path / "a", sample_events().assign(colour=1), META)
    with pytest.raises(RunError, match="empty run"):
        save_run(tmp_path / "b", sample_events().iloc[:0], META)
    with pytest.raises(RunError, match="'name'"):
        save_run(tmp_path / "c", sample_events(), {"kind": "live"})
    with pytest.raises(RunError, match="cannot be stored as JSON"):
        save_run(tmp_path / "d", sample_events(), {**META, "config": {"x": object()}})
    assert list(tmp_path.iterdir()) == []  # nothing, not even a temp dir


def test_validate_events_points_at_the_row():
    frame = sample_events()
    frame.loc[4, "outcome"] = "teleported"
    with pytest.raises(RunError, match=r"row 5 \(line 6\).*'teleported'"):
        validate_events(frame)


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.replace({"outcome": {"failure": "oops"}}),
        lambda f: f.replace({"kind": {"state": "mood"}}),
        lambda f: f.replace({"state_after": {"open": "ajar"}}),
        lambda f: f.assign(state=f["state"].where(f["kind"] == "call", None)),
        lambda f: f.assign(t=["soon"] * len(f)),
        lambda f: f.assign(t=f["t"].where(f.index != 3, float("nan"))),
        lambda f: f.assign(latency=f["latency"] - 0.5),
        lambda f: f.assign(generation=[1.5] * len(f)),
        lambda f: f.drop(columns=["outcome"]),
    ],
)
def test_runs_and_analysis_refuse_a_bad_frame_with_the_same_message(tmp_path: Path, change):
    frame = change(sample_events())
    with pytest.raises(AnalysisError) as refused:
        events_frame(frame)
    with pytest.raises(RunError) as by_runs:
        validate_events(frame, where="events")
    assert str(by_runs.value) == f"events: {refused.value}"
    with pytest.raises(RunError) as on_save:
        save_run(tmp_path / "run", frame, META)
    assert str(on_save.value) == f"events: {refused.value}"
    assert "np." not in str(refused.value)


def test_a_bad_events_csv_names_the_file_row_and_column(run_dir: Path):
    frame = sample_events()
    frame.loc[1, "latency"] = -1.0
    (run_dir / "events.csv").write_text(frame.to_csv(index=False))
    with pytest.raises(RunError) as info:
        load_run(run_dir)
    assert str(info.value) == (
        f"{run_dir / 'events.csv'}: row 2 (line 3): latency must be >= 0 seconds and finite, "
        "got -1.0"
    )


# --- atomic writes -----------------------------------------------------------------


def test_existing_run_is_replaced_only_on_request(run_dir: Path):
    with pytest.raises(FileExistsError):
        save_run(run_dir, sample_events(), META)
    save_run(run_dir, sample_events().iloc[:3], {**META, "name": "smaller"}, overwrite=True)
    run = load_run(run_dir)
    assert (run.meta.name, len(run.events)) == ("smaller", 3)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["run"]  # no leftovers


def test_a_failing_write_leaves_the_good_run_untouched(run_dir: Path, monkeypatch):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    calls = []

    def failing_write(path: Path, text: str) -> None:
        calls.append(path.name)
        if path.name == "run.json":  # the second file: events.csv is already written
            raise OSError("disk full")
        path.write_text(text)

    monkeypatch.setattr(runs_module, "_write_text", failing_write)
    with pytest.raises(OSError, match="disk full"):
        save_run(run_dir, sample_events().iloc[:2], {**META, "name": "new"}, overwrite=True)
    assert calls == ["events.csv", "run.json"]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["run"]
    assert load_run(run_dir).meta.name == "sample"


def test_save_refuses_to_replace_a_directory_that_is_not_a_run(tmp_path: Path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(RunError, match="not a recorded run"):
        save_run(precious, sample_events(), META, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_shipped_runs_load_and_are_small():
    root = Path(__file__).resolve().parents[2] / "data" / "runs"
    shipped = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(shipped) >= 2
    kinds = set()
    for path in shipped:
        run = load_run(path)
        kinds.add(run.variants[0])
        assert sum(f.stat().st_size for f in path.iterdir()) < 1_000_000
        assert run.meta.scenario_name
    assert {"protected", "unprotected"} <= kinds
