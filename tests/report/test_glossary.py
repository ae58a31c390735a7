"""One glossary: the docs' "Key figures" (Record runs and build reports) and every report's last section are
`cblab.analysis.GLOSSARY`, word for word, and it names every figure a report shows."""

from __future__ import annotations

import html
from pathlib import Path

from cblab.analysis import GLOSSARY, glossary_markdown
from cblab.report import build_report
from cblab.runs import load_run

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_hold_the_glossary():
    assert glossary_markdown() in (ROOT / "docs" / "how-to" / "reports.md").read_text()


# where each report column is defined (a column added without a definition fails here)
_TERM = {"requested": "requested", "availability": "availability",
         "share_failed_fast": "share_failed_fast", "failed": "failed",
         "latency_p50_ms": "latency p50", "latency_p95_ms": "p95", "latency_p99_ms": "p99",
         "goodput_per_s": "goodput", "admitted": "admitted", "wasted": "wasted",
         "trips": "trips", "probe_failures": "probe_failures", "flaps": "flaps",
         "time_open_s": "time open", "time_half_open_s": "half-open",
         "detection_s": "detection_s", "recovery_s": "recovery_s"}


def test_every_kpi_a_report_shows_is_defined():
    from cblab.report.kpis import REPORT_KPIS

    terms = [term for term, _ in GLOSSARY]
    for kpi in REPORT_KPIS:
        assert kpi in _TERM, f"{kpi}: no glossary entry"
        assert any(_TERM[kpi] in term for term in terms), kpi


def test_a_report_ends_with_the_glossary():
    page = build_report([load_run(ROOT / "data" / "runs" / "hang-protected")], plotlyjs="cdn")
    section = page[page.index('<section id="glossary">'):]
    for term, text in GLOSSARY:
        assert f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" in section
    assert 'href="#glossary"' in page
