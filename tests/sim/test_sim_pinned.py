"""Speed work changes no result: pinned runs give the same events, counts and KPIs,
alone and through a sweep (batched, on a process pool). See tests/sim/pinned.py."""

from __future__ import annotations

import json

import pytest

from cblab.sim.sweep import sweep

from .pinned import FITTED, PINNED_FILE, all_cases, case_id, measure, same

PINNED = json.loads(PINNED_FILE.read_text(encoding="utf-8"))
CASES = all_cases()


def test_every_case_is_pinned():
    assert sorted(PINNED) == sorted(key for key, *_ in CASES)


@pytest.mark.parametrize(("key", "scenario", "config", "options", "seed"), CASES,
                         ids=[key[:70] for key, *_ in CASES])
def test_a_pinned_run_gives_the_same_events_and_kpis(key, scenario, config, options, seed):
    got = measure(scenario, config, options, seed)
    want = PINNED[key]
    assert {k: got[k] for k in ("rows", "calls", "counts")} == {
        k: want[k] for k in ("rows", "calls", "counts")}
    assert got["digest"] == want["digest"]
    different = {k: (got["kpis"][k], want["kpis"][k]) for k in want["kpis"]
                 if not same(got["kpis"][k], want["kpis"][k])}
    assert not different


def test_a_sweep_on_a_pool_gives_the_pinned_kpis():
    grid = {"failure_threshold": [1, 20], "timeout": [2.0, 120.0]}
    # small batches on 2 processes: runs of one (scenario, seed) are split across tasks
    table = sweep(grid, [FITTED], [0, 7], workers=2, batch_size=3, progress=False)
    checked = 0
    for row in table.to_dict("records"):
        config = {"failure_threshold": row["failure_threshold"], "timeout": row["timeout"]}
        key = case_id(FITTED, config, {}, row["seed"])
        if key in PINNED:
            want = PINNED[key]["kpis"]
            assert same({k: row[k] for k in want}, want), key
            assert row["calls"] == PINNED[key]["calls"]
            checked += 1
    assert checked == 4
