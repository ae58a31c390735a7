"""The sweep's disk cache: hits, misses when anything that decides a run changes,
damaged entries recomputed (never trusted), a size cap, and the CLI's switches."""

from __future__ import annotations

import json

import pytest

from cblab.sim.cache import ResultCache
from cblab.sim.cli import sweep_main
from cblab.sim.sweep import sweep

from .sweep_helpers import short

GRID = {"failure_threshold": [2, 4], "timeout": [1.0, 3.0]}


def run(cache, **kwargs):
    options = {"base": None, "workers": 1, "progress": False, **kwargs}
    return sweep(GRID, short("outage-and-recovery"), [0, 1], cache=cache, **options)


def test_a_second_sweep_is_served_from_the_cache(tmp_path):
    cache = ResultCache(tmp_path)
    first = run(cache)
    assert first.attrs["sweep"]["cached"] == 0 and len(cache.entries()) == 8
    second = run(ResultCache(tmp_path))
    assert second.attrs["sweep"]["cached"] == 8 and second.attrs["sweep"]["computed"] == 0
    assert second.equals(first)
    # the figures really come from the files: an entry signed with the cache's own key
    # (only its owner can) shows through
    entry = cache.entries()[0]
    data = json.loads(entry.read_text())
    data["kpis"]["trips"] = 999
    data["mac"] = cache.open()._mac(data["key"], data["kpis"])
    entry.write_text(json.dumps(data))
    assert 999 in set(run(ResultCache(tmp_path))["trips"])


def test_changes_that_decide_a_run_are_misses(tmp_path):
    run(ResultCache(tmp_path))
    assert run(ResultCache(tmp_path), base={"success_threshold": 1}).attrs["sweep"]["cached"] == 0
    assert run(ResultCache(tmp_path), deadline_s=0.5).attrs["sweep"]["cached"] == 0
    assert run(ResultCache(tmp_path, version="0.0.0+other")).attrs["sweep"]["cached"] == 0
    # a grid that widens reuses what it already had
    wider = sweep({**GRID, "timeout": [1.0, 3.0, 9.0]}, short("outage-and-recovery"), [0, 1],
                  cache=ResultCache(tmp_path), workers=1, progress=False)
    assert wider.attrs["sweep"]["cached"] == 8 and wider.attrs["sweep"]["computed"] == 4
    # the same settings spelled differently (the defaults, ints for floats) are hits
    same = run(ResultCache(tmp_path), base={"half_open_max_calls": 3, "timeout": 30})
    assert same.attrs["sweep"]["cached"] == 8


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],  # cut short (a crash mid-write, a full disk)
    lambda text: "not json at all",
    lambda text: text.replace('"requested": ', '"requested": 1'),  # MAC mismatch
    lambda text: json.dumps({**json.loads(text), "key": "0" * 64}),  # someone else's entry
])
def test_a_damaged_entry_is_recomputed(tmp_path, damage):
    first = run(ResultCache(tmp_path))
    entry = ResultCache(tmp_path).entries()[3]
    entry.write_text(damage(entry.read_text()))
    cache = ResultCache(tmp_path)
    again = run(cache)
    assert cache.corrupt == 1 and again.attrs["sweep"]["cached"] == 7
    assert again.equals(first)
    assert run(ResultCache(tmp_path)).attrs["sweep"]["cached"] == 8  # rewritten, whole again


def test_the_cache_keeps_under_its_size_cap(tmp_path):
    run(ResultCache(tmp_path))
    one = ResultCache(tmp_path).entries()[0].stat().st_size
    capped = ResultCache(tmp_path, max_bytes=3 * one + one // 2)
    sweep({"failure_threshold": [7]}, short("hang"), [0, 1], cache=capped, workers=1,
          progress=False)
    assert capped.size_bytes() <= capped.max_bytes
    assert 1 <= len(capped.entries()) <= 3
    with pytest.raises(ValueError, match="max_bytes"):
        ResultCache(tmp_path, max_bytes=-1)


def test_cli_uses_the_cache_unless_told_not_to(tmp_path, capsys):
    args = ["--param", "failure_threshold=2,4", "--scenario", "hang", "--seeds", "2",
            "--workers", "1", "--no-progress", "--cache-dir", str(tmp_path / "c")]
    assert sweep_main(args) == 0
    assert "0 from the cache" in capsys.readouterr().out
    assert sweep_main(args) == 0
    assert "4 from the cache" in capsys.readouterr().out
    assert sweep_main([*args[:-2], "--no-cache", "--cache-dir", str(tmp_path / "d")]) == 0
    assert "0 from the cache" in capsys.readouterr().out
    assert not (tmp_path / "d").exists()
