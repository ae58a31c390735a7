"""Issue 20 item 7: input files and paths. Each bad one is one line naming the problem
and exit 2 (or, for a cache entry, a recompute), found before the work starts; run
through the real `cblab` command, fenced in memory and time."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from cblab.faults.paths import data_dir
from cblab.sim.cache import ResultCache
from tests.sim.cli_process import run_cblab

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_ARG = "[" * 30_000 + "]" * 30_000  # one argument is at most 128 KiB
SWEEP = ["sweep", "--param", "failure_threshold=2,3", "--scenario", "hang", "--seeds", "2",
         "--rate", "5", "--workers", "1", "--no-progress"]


def _one_line(done, command: str, *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith(f"cblab {command}: ")
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deep.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("where", ["scenario", "config", "grid", "set", "serve-config"])
def test_deeply_nested_json_is_one_line(tmp_path, where):
    deep = _scenario(tmp_path, DEEP)
    argv = {
        "scenario": ["simulate", str(deep)],
        "config": ["simulate", "hang", "--config", str(deep)],
        "grid": ["sweep", "--grid", str(deep), "--no-cache"],
        "set": ["simulate", "hang", "--set", f"policy={DEEP_ARG}"],
        "serve-config": ["serve", "--port", "0", "--github-config", DEEP_ARG],
    }[where]
    done = run_cblab(*argv, cwd=tmp_path)
    if where == "serve-config":  # serve's errors say "cblab serve: ..." without "error:"
        _one_line(done, "serve", "nested deeper than")
    else:
        _one_line(done, argv[0], "error:", "nested deeper than")


def test_a_deep_run_json_is_one_line(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(data_dir() / "runs" / "hang-protected", run)
    (run / "run.json").write_text(DEEP)
    done = run_cblab("report", str(run), "-o", str(tmp_path / "r.html"), cwd=tmp_path)
    _one_line(done, "report", "run.json", "nested deeper than")
    assert not (tmp_path / "r.html").exists()


def test_a_report_on_a_row_at_t_1e12_is_refused_up_front(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(data_dir() / "runs" / "hang-protected", run)
    rows = list(csv.reader((run / "events.csv").open()))
    rows[-1][rows[0].index("t")] = "1e12"  # today: tries to allocate 14.6 TiB
    with (run / "events.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    done = run_cblab("report", str(run), "-o", str(tmp_path / "r.html"), cwd=tmp_path)
    _one_line(done, "report", "events span 1e+12 s", "--max-span")
    assert not (tmp_path / "r.html").exists()


def _sweep_with_cache(tmp_path: Path, *extra: str):
    return run_cblab(*SWEEP, "--cache-dir", str(tmp_path / "cache"), *extra, cwd=tmp_path)


def _rows(done) -> str:
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split(" s on ")[1]  # the summary table (after the wall time)


@pytest.mark.parametrize("damage", ["deep", "fifo", "forged"])
def test_a_bad_cache_entry_is_recomputed_not_trusted_or_waited_on(tmp_path, damage):
    first = _sweep_with_cache(tmp_path)
    cache = ResultCache(tmp_path / "cache")
    entries = cache.entries()
    assert len(entries) == 4
    entry = entries[0]
    if damage == "deep":  # today: a RecursionError on every rerun (never removed)
        entry.write_text(DEEP)
    elif damage == "fifo":  # today: the sweep blocks reading it
        entry.unlink()
        os.mkfifo(entry)
    else:  # today: a checksum anyone can recompute, so the edit is trusted
        data = json.loads(entry.read_text())
        import hashlib

        data["kpis"] = {**data["kpis"], "availability": 1.0, "trips": 0}
        body = json.dumps(data["kpis"], sort_keys=True, separators=(",", ":"), default=str)
        data["sha256"] = data["mac"] = hashlib.sha256(body.encode()).hexdigest()
        entry.write_text(json.dumps(data))
    again = _sweep_with_cache(tmp_path)
    assert _rows(again) == _rows(first)  # the same figures: recomputed, not the damage
    assert "3 from the cache" in again.stdout
    assert entry.is_file() and json.loads(entry.read_text())["kpis"]["trips"] >= 0
    assert "4 from the cache" in _sweep_with_cache(tmp_path).stdout  # whole again


def test_cache_entries_are_authenticated_with_a_private_key(tmp_path):
    _sweep_with_cache(tmp_path)
    key = tmp_path / "cache" / ".key"
    assert key.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other"  # an entry copied from another cache does not verify
    other.mkdir()
    _sweep_with_cache(other)
    for entry in ResultCache(other / "cache").entries():
        target = tmp_path / "cache" / entry.relative_to(other / "cache")
        shutil.copy(entry, target)
    assert "0 from the cache" in _sweep_with_cache(tmp_path).stdout
    key.chmod(0o644)  # a key others can read could be used to forge entries
    _one_line(_sweep_with_cache(tmp_path), "sweep", "--cache-dir", "not private", "chmod 600")


def test_a_cache_dir_that_is_a_file_is_one_line_before_work(tmp_path):
    not_a_dir = tmp_path / "passwd"
    not_a_dir.write_text("root:x:0:0\n")
    done = run_cblab(*SWEEP, "--cache-dir", str(not_a_dir), cwd=tmp_path)
    _one_line(done, "sweep", "--cache-dir", "is not a directory", "--no-cache")
    assert done.stdout == ""


@pytest.mark.parametrize(("command", "output", "words"), [
    (["simulate", "hang"], "/nonexistent/x.csv", ("'/nonexistent' does not exist",)),
    (SWEEP, "/proc/cblab-sweep.csv", ("cannot create a file in '/proc'",)),
    (SWEEP, "{tmp}/file.txt/out.csv", ("is not a directory",)),
    (SWEEP, "{tmp}/dir.csv", ("it is a directory",)),
])
def test_an_unwritable_output_is_found_before_the_work(tmp_path, command, output, words):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dir.csv").mkdir()
    done = run_cblab(*command, "--no-cache" if command[0] == "sweep" else "--phases",
                     "-o", output.format(tmp=tmp_path), cwd=tmp_path)
    line = _one_line(done, command[0], "error:", *words)
    assert "None" not in line
    assert done.stdout == ""  # nothing ran: today the sweep runs, then fails to write
