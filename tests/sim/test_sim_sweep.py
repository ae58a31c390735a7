"""sweep(): the cross product, on one or several processes."""

from __future__ import annotations

import pytest

from cblab.analysis import KPI_COLUMNS
from cblab.sim import simulate
from cblab.sim.sweep import SweepError, grid_points, sweep


def short(name, scale=0.2):
    from cblab.sim import resolve_scenario

    return resolve_scenario(name).scaled(scale)


def test_grid_points_is_the_cross_product_in_order():
    points = grid_points({"failure_threshold": [3, 5], "timeout": [1.0, 2.0, 4.0]})
    assert len(points) == 6
    assert points[0] == {"failure_threshold": 3, "timeout": 1.0}
    assert points[1] == {"failure_threshold": 3, "timeout": 2.0}
    assert points[-1] == {"failure_threshold": 5, "timeout": 4.0}


def test_sweep_with_two_workers_returns_the_full_cross_product():
    grid = {"failure_threshold": [3, 5, 10], "timeout": [1.0, 5.0]}
    scenarios = [short("outage-and-recovery"), short("flapping")]
    table = sweep(grid, scenarios, [0, 1], workers=2, progress=False)
    assert len(table) == 3 * 2 * 2 * 2
    assert set(KPI_COLUMNS) <= set(table.columns)
    combos = set(zip(table.failure_threshold, table.timeout, table.scenario, table.seed,
                     strict=True))
    assert len(combos) == 24
    assert (table["calls"] > 0).all()
    # rows come back in grid order, and match a run made by hand
    row = table.iloc[7]  # point (3, 5.0), second scenario, second seed
    assert (row.failure_threshold, row.timeout, row.scenario, row.seed) == (
        3, 5.0, "flapping", 1)
    by_hand = simulate(scenarios[1], {"failure_threshold": 3, "timeout": 5.0}, seed=1)
    assert row.requested == by_hand.calls


def test_every_executor_and_batch_size_gives_the_same_table():
    grid = {"failure_threshold": [2, 4], "timeout": [1.0, 3.0]}
    scenarios = [short("hang"), short("flapping")]
    one = sweep(grid, scenarios, 3, workers=1, progress=False)
    assert one.attrs["sweep"]["executor"] == "local" and one.attrs["sweep"]["workers"] == 1
    for options in ({"workers": 2}, {"workers": 2, "batch_size": 1},
                    {"workers": 2, "batch_size": 100}, {"workers": 2, "chunks_per_worker": 1}):
        other = sweep(grid, scenarios, 3, progress=False, **options)
        assert other.equals(one), options


def test_batches_are_sized_from_the_calibration():
    from cblab.sim.sweep import TARGET_BATCH_S, _batch_size

    # fast runs: as many as fit TARGET_BATCH_S, but every worker still gets 4 batches
    assert _batch_size(0.001, 100_000, 2, 4) == int(TARGET_BATCH_S / 0.001)
    assert _batch_size(0.001, 80, 2, 4) == 10
    # slow runs: one per task
    assert _batch_size(2.0, 1000, 8, 4) == 1
    table = sweep({"failure_threshold": [2, 3, 4, 5]}, short("hang"), 4, workers=2,
                  progress=False)
    meta = table.attrs["sweep"]
    assert meta["calibration_s_per_run"] > 0
    assert meta["batch_size"] == _batch_size(meta["calibration_s_per_run"], 14, 2, 4)
    assert meta["batches"] == -(-14 // meta["batch_size"])


def test_progress_moves_per_batch(capsys):
    sweep({"failure_threshold": [2, 3, 4]}, short("hang"), 4, workers=2, batch_size=3)
    err = capsys.readouterr().err
    assert "sweep (local)" in err and "12/12" in err


def test_simulation_settings_and_a_base_config_can_be_swept():
    table = sweep({"protected": [True, False], "deadline_s": [0.5, 2.0]}, short("hang"), [7],
                  base={"failure_threshold": 3, "timeout": 2.0}, workers=1, progress=False)
    assert len(table) == 4
    unprotected = table[~table.protected]
    assert (unprotected.rejected == 0).all() and (unprotected.trips == 0).all()
    assert (table[table.protected].trips > 0).all()


def test_bad_sweeps_are_refused():
    with pytest.raises(SweepError, match="unknown grid key"):
        sweep({"threshold": [1]}, "hang", 1, progress=False)
    with pytest.raises(SweepError, match="empty"):
        sweep({"timeout": []}, "hang", 1, progress=False)
    with pytest.raises(SweepError, match="list of values"):
        sweep({"timeout": 5}, "hang", 1, progress=False)
    with pytest.raises(SweepError, match="failure_threshold"):
        sweep({"failure_threshold": [0]}, "hang", 1, progress=False)
    with pytest.raises(SweepError, match="seeds"):
        sweep({"timeout": [1]}, "hang", 0, progress=False)
    with pytest.raises(SweepError, match="workers"):
        sweep({"timeout": [1]}, "hang", 1, workers=0, progress=False)
    with pytest.raises(ValueError, match="unknown scenario"):
        sweep({"timeout": [1]}, "no-such", 1, progress=False)
    with pytest.raises(SweepError, match="more than once"):
        sweep({"timeout": [1]}, [short("hang"), short("hang", 0.3)], 1, progress=False)
    with pytest.raises(SweepError, match="unknown executor"):
        sweep({"timeout": [1]}, "hang", 1, executor="spark", progress=False)
    with pytest.raises(SweepError, match="batch_size"):
        sweep({"timeout": [1]}, "hang", 1, batch_size=0, progress=False)
    with pytest.raises(SweepError, match="scheduler is for the dask executor"):
        sweep({"timeout": [1]}, "hang", 1, scheduler="tcp://127.0.0.1:1", progress=False)
    with pytest.raises(SweepError, match="cache"):
        sweep({"timeout": [1]}, "hang", 1, cache=3, progress=False)
