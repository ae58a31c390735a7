"""compare(): two runs' KPIs side by side."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cblab.analysis import KPI_COLUMNS, AnalysisError, compare, compare_variants, run_kpis
from cblab.sim import simulate_pair


@pytest.fixture(scope="module")
def pair():
    return simulate_pair("outage-and-recovery", {"failure_threshold": 3, "timeout": 5.0}, seed=3)


def test_side_by_side_with_difference_and_ratio(pair):
    protected, unprotected = pair
    table = compare(unprotected, protected)
    assert list(table.columns) == ["unprotected", "protected", "difference", "ratio"]
    assert list(table.index) == list(KPI_COLUMNS)
    p, u = run_kpis(protected), run_kpis(unprotected)
    row = table.loc["wasted"]
    assert row["unprotected"] == u["wasted"] and row["protected"] == p["wasted"]
    assert row["difference"] == p["wasted"] - u["wasted"]
    assert row["ratio"] == pytest.approx(p["wasted"] / u["wasted"])
    assert table.loc["wasted", "ratio"] < 0.1
    assert math.isnan(table.loc["rejected", "ratio"])  # 0 rejected unprotected: no ratio


def test_kpi_dicts_frames_and_labels(pair):
    protected, unprotected = pair
    table = compare(run_kpis(unprotected), protected.to_frame(), protected.scenario,
                    labels=("before", "after"))
    assert list(table.columns[:2]) == ["before", "after"]
    same = compare(protected, protected)
    assert list(same.columns[:2]) == ["protected (a)", "protected (b)"]
    assert (same["difference"].fillna(0) == 0).all()
    with pytest.raises(AnalysisError, match="labels"):
        compare(protected, unprotected, labels=("x", "x"))
    with pytest.raises(AnalysisError, match=r"got \('x', 2\.0\)$"):  # no np.float64(
        compare(protected, unprotected, labels=(np.str_("x"), np.float64(2.0)))


def test_per_phase(pair):
    protected, unprotected = pair
    table = compare(unprotected, protected, per_phase=True)
    assert table.index.names == ["phase", "kpi"]
    outage = table.loc["outage"]
    assert outage.loc["share_failed_fast", "protected"] > 0.9
    assert outage.loc["share_failed_fast", "unprotected"] == 0


def test_compare_variants_in_one_frame(pair):
    frame = pd.concat([run.to_frame() for run in pair], ignore_index=True)
    table = compare_variants(frame, pair[0].scenario)
    assert list(table.columns) == ["unprotected", "protected", "protected / unprotected"]
    with pytest.raises(AnalysisError, match="no variant 'baseline'"):
        compare_variants(frame, pair[0].scenario, baseline="baseline")
