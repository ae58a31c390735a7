"""`cblab report`: one run, several runs, bad input (exit 2, nothing written), PNG notes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cblab.cli import main as cblab_main
from cblab.report import files as report_files
from cblab.report.cli import main
from cblab.runs import save_run
from cblab.schema import EVENT_COLUMNS
from tests.plots.sample import sample_events


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("cli-runs")
    events = sample_events()
    return [
        save_run(root / v, events[events["variant"] == v], {"name": f"cli-{v}"})
        for v in ("protected", "unprotected")
    ]


def test_one_run(tmp_path: Path, runs, capsys):
    out = tmp_path / "one.html"
    assert main([str(runs[0]), "-o", str(out), "--cdn"]) == 0
    assert out.is_file() and (tmp_path / "one_data" / "01-cli-protected" / "events.csv").is_file()
    assert "wrote" in capsys.readouterr().out


def test_several_runs_through_the_cblab_command(tmp_path: Path, runs):
    out = tmp_path / "many.html"
    code = cblab_main(["report", *map(str, runs), "-o", str(out), "--cdn", "--title", "Two <runs>"])
    assert code == 0
    text = out.read_text(encoding="utf-8")
    assert 'id="comparison"' in text and "Two &lt;runs&gt;" in text


def test_inline_plotlyjs_by_default_and_no_data(tmp_path: Path, runs):
    out = tmp_path / "inline.html"
    assert main([str(runs[0]), "-o", str(out), "--no-data"]) == 0
    assert out.stat().st_size > 3_000_000
    assert not (tmp_path / "inline_data").exists()


def _bad_runs(root: Path) -> dict[str, Path]:
    good = sample_events()
    cases: dict[str, Path] = {"missing": root / "does-not-exist"}
    corrupt = save_run(root / "corrupt", good, {"name": "c"})
    (corrupt / "run.json").write_text("{oops", encoding="utf-8")
    cases["corrupt-json"] = corrupt
    columns = save_run(root / "columns", good, {"name": "k"})
    (columns / "events.csv").write_text(good.assign(extra=1).to_csv(index=False))
    cases["unknown-columns"] = columns
    empty = save_run(root / "empty", good, {"name": "e"})
    (empty / "events.csv").write_text(",".join(EVENT_COLUMNS) + "\n")
    cases["empty-run"] = empty
    no_events = save_run(root / "no-events", good, {"name": "n"})
    (no_events / "events.csv").unlink()
    cases["no-events-csv"] = no_events
    return cases


@pytest.mark.parametrize(
    "case", ["missing", "corrupt-json", "unknown-columns", "empty-run", "no-events-csv"]
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, runs, case, capsys):
    bad = _bad_runs(tmp_path / "bad")[case]
    out = tmp_path / "report.html"
    assert main([str(runs[0]), str(bad), "-o", str(out), "--cdn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cblab report: error: ") and str(bad) in err
    assert not out.exists() and not (tmp_path / "report_data").exists()
    # an existing report is not overwritten either
    out.write_text("previous report")
    assert main([str(bad), "-o", str(out), "--cdn"]) == 2
    assert out.read_text() == "previous report"


def test_usage_errors_exit_2(tmp_path: Path, capsys):
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_output_that_is_a_directory_is_refused(tmp_path: Path, runs, capsys):
    assert main([str(runs[0]), "-o", str(tmp_path), "--cdn"]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_png_unavailable_prints_a_note_and_still_writes_html(
    tmp_path: Path, runs, capsys, monkeypatch
):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    out = tmp_path / "r.html"
    code = main([str(runs[0]), "-o", str(out), "--cdn", "--png", str(tmp_path / "png")])
    assert code == 0
    assert out.is_file()
    err = capsys.readouterr().err
    assert "note: PNG export unavailable" in err and "no-such-chromium" in err
    assert "HTML report was written anyway" in err
    assert not (tmp_path / "png").exists()


def test_png_without_kaleido_is_a_note_too(tmp_path: Path, runs, capsys, monkeypatch):
    def no_kaleido(*args, **kwargs):
        raise report_files.PngUnavailable(
            "PNG export needs kaleido (no module); pip install kaleido"
        )

    monkeypatch.setattr(report_files, "export_pngs", no_kaleido)
    assert main([str(runs[0]), "-o", str(tmp_path / "r.html"), "--cdn", "--png", "x"]) == 0
    assert "needs kaleido" in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path: Path, runs):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cblab.report",
            str(tmp_path / "nope"),
            "-o",
            str(tmp_path / "r.html"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no such run directory" in done.stderr
