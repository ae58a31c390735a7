"""The search: optuna over a grid's values finds the grid's own pick; `auto` switches."""

from __future__ import annotations

from pathlib import Path

import pytest

from cblab.faults.fit import fit_run
from cblab.tune import Objective, robust_pick, stress_variants
from cblab.tune.cli import main
from cblab.tune.search import GRID_LIMIT, search
from tests.tune.traffic import crafted_rows, write_rows

GRID = {"failure_threshold": [3, 20], "timeout": [5.0, 60.0]}
OPTIONS = {"workers": 1, "progress": False}  # sweep options: in this process


@pytest.fixture(scope="module")
def variants() -> list[dict]:
    return stress_variants(fit_run(crafted_rows()).scenario("traffic"))


def test_optuna_finds_the_grid_pick(variants):
    objective = Objective()
    grid_points, grid_meta = search(GRID, variants, 2, objective, OPTIONS, method="grid")
    tried, meta = search(GRID, variants, 2, objective, OPTIONS, method="optuna", trials=20)
    assert (grid_meta["search"], meta["search"]) == ("grid", "optuna")
    assert meta["runs"] == len(tried) * len(variants) * 2  # each setting swept once
    assert robust_pick(tried, objective).setting == robust_pick(grid_points, objective).setting
    by_setting = {tuple(p.setting.values()): p.robust for p in grid_points}
    for point in tried:  # the same figures whichever search ran them
        assert point.robust == by_setting[tuple(point.setting.values())]


def test_auto_uses_optuna_past_the_grid_limit(tmp_path: Path, capsys):
    traffic = write_rows(tmp_path / "traffic.json", crafted_rows())
    thresholds = ",".join(str(n) for n in range(1, GRID_LIMIT // 2 + 2))  # > GRID_LIMIT points
    assert main([str(traffic), "--workers", "1", "--seeds", "1", "--trials", "6",
                 "--param", f"failure_threshold={thresholds}", "--param", "timeout=5,30"]) == 0
    assert "optuna: " in capsys.readouterr().out


def test_optuna_trials_are_bounded_by_max_runs(tmp_path: Path, capsys):
    traffic = write_rows(tmp_path / "traffic.json", crafted_rows())
    assert main([str(traffic), "--workers", "1", "--search", "optuna", "--trials", "100",
                 "--max-runs", "50"]) == 2
    assert "over --max-runs 50" in capsys.readouterr().err
