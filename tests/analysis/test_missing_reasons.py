"""A missing detection or recovery says why, in tables (compare, compare_variants)
and in the tuning heatmaps (a blank cell gets a word)."""

from __future__ import annotations

import math

import pandas as pd

from cblab.analysis import compare, compare_variants, missing_reasons, run_kpis
from cblab.analysis.kpis import NEVER_OPENED, NEVER_OPENED_IN_FAULT, NO_FAULT, NOT_CLOSED
from cblab.sim import simulate, simulate_pair

from .test_kpi_definitions import NOISY, NOISY_ROWS


def test_reasons_by_hand():
    figures = run_kpis(NOISY_ROWS, NOISY)
    assert missing_reasons(figures) == {}  # both figures are there
    assert missing_reasons({"fault_episodes": 0, "detection_s": math.nan,
                            "recovery_s": math.nan}) == {"detection_s": NO_FAULT,
                                                         "recovery_s": NO_FAULT}
    assert missing_reasons({"fault_episodes": 1, "trips": 0, "time_open_s": 0.0,
                            "detection_s": math.nan, "recovery_s": math.nan}) == {
        "detection_s": NEVER_OPENED_IN_FAULT, "recovery_s": NEVER_OPENED}
    assert missing_reasons({"fault_episodes": 4, "trips": 1, "detection_s": 0.5,
                            "recovery_s": math.nan}) == {"recovery_s": NOT_CLOSED}


def test_tables_carry_the_reasons():
    protected, unprotected = simulate_pair("hang", {"failure_threshold": 5, "timeout": 5}, seed=1)
    both = pd.concat([protected.to_frame(), unprotected.to_frame()], ignore_index=True)
    table = compare_variants(both, "hang")
    assert math.isnan(table.loc["recovery_s", "unprotected"])
    assert table.attrs["unavailable"] == {
        "unprotected": {"detection_s": NEVER_OPENED_IN_FAULT, "recovery_s": NEVER_OPENED}}
    stuck = simulate("flapping", {"failure_threshold": 3, "timeout": 20}, seed=1)
    quick = simulate("flapping", {"failure_threshold": 3, "timeout": 1}, seed=1)
    side = compare(quick, stuck, labels=("timeout 1 s", "timeout 20 s"))
    assert math.isnan(side.loc["recovery_s", "timeout 20 s"])
    assert side.attrs["unavailable"] == {"timeout 20 s": {"recovery_s": NOT_CLOSED}}


def test_blank_heatmap_cells_get_a_word():
    from cblab.lab.tuning import SWEEP_SCORES, heatmaps
    from cblab.sim.sweep import sweep

    table = sweep({"failure_threshold": [3], "timeout": [1, 20]}, ["flapping"], seeds=1,
                  progress=False)
    recovery = [t for t in heatmaps(table, SWEEP_SCORES).data if "recovery" in t.hovertemplate]
    ((quick, stuck),) = recovery[0].text
    assert quick.replace(".", "").isdigit()
    assert stuck == "never closed"  # not an empty cell
