"""A report compares only runs that played the same scenario (06 compared outage runs
against a hang run), and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from cblab.report import build_report
from cblab.report.figures import comparison_groups
from cblab.runs import load_run

RUNS = Path(__file__).resolve().parents[2] / "data" / "runs"
NAMES = ["hang-protected", "outage-and-recovery-protected", "hang-unprotected",
         "outage-and-recovery-unprotected"]


@pytest.fixture(scope="module")
def runs():
    return [load_run(RUNS / name) for name in NAMES]


def _section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}"')
    return page[start:page.index("</section>", start)]


def test_runs_are_compared_with_their_own_scenario(runs):
    assert comparison_groups(runs) == [("hang", [0, 2]), ("outage-and-recovery", [1, 3])]
    page = build_report(runs, plotlyjs="cdn")
    assert '<section id="comparison"' not in page
    hang, outage = _section(page, "comparison-1"), _section(page, "comparison-2")
    assert "Comparison: hang" in hang and "Comparison: outage-and-recovery" in outage
    assert "runs of other scenarios (outage-and-recovery)" in hang
    for section, own, other in ((hang, "hang", "outage-and-recovery"),
                                (outage, "outage-and-recovery", "hang")):
        table = section[section.index('-kpis"'):section.index("</table>")]
        assert f">{own}-protected<" in table and f">{own}-unprotected " in table
        assert f">{other}-protected" not in table and f">{other}-unprotected" not in table
    assert 'href="#comparison-1"' in page and 'href="#comparison-2"' in page


def test_two_runs_of_different_scenarios_are_not_compared(runs):
    page = build_report(runs[:2], plotlyjs="cdn")
    section = _section(page, "comparison")
    assert "No two of these runs played the same scenario (hang, outage-and-recovery)" in section
    assert "comparison-kpis" not in page


def test_runs_of_one_scenario_keep_one_comparison(runs):
    page = build_report([runs[1], runs[3]], plotlyjs="cdn")
    section = _section(page, "comparison")
    assert "<h2>Comparison</h2>" in section and "other scenarios" not in section
    assert 'id="comparison-kpis"' in section
