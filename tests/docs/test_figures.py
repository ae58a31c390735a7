"""The tutorial pages' static figures (docs/hooks/figures.py): every tutorial page has
its "What you will see" figures, a figure shows the rows of the run it names (computed
here from events.csv with the csv module, not with cblab), the figures are the same in
every build, and they render from file:// with no console error and no network request."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cblab.testing import collect_console_errors

ROOT = Path(__file__).resolve().parents[2]


def tutorial_pages() -> list[str]:
    """The notebooks in the nav's Tutorials section, as built pages."""
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    (tutorials,) = [e["Tutorials"] for e in nav if isinstance(e, dict) and "Tutorials" in e]
    pages = [next(iter(e.values())) for e in tutorials if isinstance(e, dict)]
    return [p.replace(".ipynb", ".html") for p in pages if p.endswith(".ipynb")]


def figure_keys(page_html: str) -> list[str]:
    return re.findall(r'<div class="cblab-figure" data-cblab-figure="([\w-]+)"', page_html)


def plotly_call(page_html: str, key: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The data and layout that the page passes to Plotly.newPlot for the div `key`."""
    match = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(key) + r'",\s*', page_html)
    assert match, f"no Plotly.newPlot call for {key}"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(page_html, match.end())
    layout, _ = decoder.raw_decode(page_html, re.compile(r",\s*").match(page_html, end).end())
    return data, layout


def values(array: Any) -> list[Any]:
    """A trace array as plotly writes it: a JSON list, or numpy as base64 (`bdata`)."""
    if isinstance(array, dict) and "bdata" in array:
        raw = base64.b64decode(array["bdata"])
        return np.frombuffer(raw, dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def csv_rows(run: str) -> list[dict[str, str]]:
    with open(ROOT / "data" / "runs" / run / "events.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_tutorial_page_has_its_figures(built_site: Path) -> None:
    pages = tutorial_pages()
    assert len(pages) >= 9
    plotly_js = built_site / "assets" / "javascripts" / "plotly.min.js"
    assert plotly_js.stat().st_size > 1_000_000  # the whole library, written once
    for page in pages:
        text = (built_site / page).read_text(encoding="utf-8")
        keys = figure_keys(text)
        assert 1 <= len(keys) <= 3, f"{page}: {len(keys)} figures"
        assert text.count('id="what-you-will-see"') == 1, page
        # plotly.js once, from the site by a relative path (the site opens from disk)
        sources = re.findall(r'<script src="([^"]*plotly[^"]*)"', text)
        assert sources == ["../../assets/javascripts/plotly.min.js"], (page, sources)
        assert (built_site / page).parent.joinpath(sources[0]).resolve() == plotly_js.resolve()
        assert len(text) < 1_000_000, f"{page} inlines too much ({len(text):,} bytes)"
        # after the notebook's introduction, before its first code
        section = text.index('id="what-you-will-see"')
        assert text.index('class="jp-Cell') < section < text.index('<div class="jp-Cell jp-CodeCell'), page
        for key in keys:
            data, _ = plotly_call(text, key)
            assert data and any(values(t.get("x", t.get("z", []))) for t in data), (page, key)
    # the headings' list links to the section
    first = (built_site / pages[1]).read_text(encoding="utf-8")
    assert 'href="#what-you-will-see"' in first


def test_the_latency_figure_shows_the_hang_runs_rows(built_site: Path) -> None:
    """01's latency scatter: per run and outcome, each call's (t, latency ms) as the
    caller saw it (load rows), rejections raised to the log axis' 0.1 ms floor."""
    text = (built_site / "tutorials/notebooks/01-why-circuit-breakers.html").read_text()
    data, layout = plotly_call(text, "fig-01-latency")
    assert layout["yaxis"]["type"] == "log"
    drawn: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for trace in data:
        run, outcome = trace["meta"]
        drawn[(run, outcome)] = sorted(zip(values(trace["x"]), values(trace["y"]), strict=True))
    expected: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run in ("hang-protected", "hang-unprotected"):
        for row in csv_rows(run):
            if row["kind"] == "call" and row["source"] == "load" and row["latency"]:
                point = (float(row["t"]), max(float(row["latency"]) * 1000, 0.1))
                expected.setdefault((run, row["outcome"]), []).append(point)
    assert set(drawn) == set(expected)
    assert {o for _, o in expected} >= {"success", "rejected", "timeout"}
    for key, points in expected.items():
        assert len(drawn[key]) == len(points), key
        np.testing.assert_allclose(drawn[key], sorted(points), rtol=1e-9, err_msg=str(key))


def test_the_load_figure_counts_the_outage_runs_calls(built_site: Path) -> None:
    """06's load chart: per bin, the calls the load generator offered (load rows) and
    the calls the server let through to the backend (server rows, not rejected)."""
    text = (built_site / "tutorials/notebooks/06-reports.html").read_text()
    data, _ = plotly_call(text, "fig-06-load")
    checked = 0
    for run in ("outage-and-recovery-protected", "outage-and-recovery-unprotected"):
        rows = [r for r in csv_rows(run) if r["kind"] == "call"]
        times = {
            "offered": [float(r["t"]) for r in rows if r["source"] == "load"],
            "backend": [float(r["t"]) for r in rows
                        if r["source"] == "server" and r["outcome"] not in ("rejected", "dropped")],
        }
        for which, ts in times.items():
            (trace,) = [t for t in data if t["meta"] == [run, which]]
            x, y = values(trace["x"]), values(trace["y"])
            for start, end, rate in zip(x[:-2], x[1:-1], y[:-2], strict=True):
                count = sum(start <= t < end for t in ts)
                assert rate == pytest.approx(count / (end - start)), (run, which, start)
                checked += 1
    assert checked > 100
    protected = [t for t in data if t["meta"] == ["outage-and-recovery-protected", "backend"]]
    offered = [t for t in data if t["meta"] == ["outage-and-recovery-protected", "offered"]]
    # the breaker shed load: fewer calls reached the backend than were offered
    assert sum(values(protected[0]["y"])) < 0.8 * sum(values(offered[0]["y"]))


def test_simulated_figures_are_the_same_in_every_build(built_site: Path) -> None:
    """Seeded: 07's replica sweep built again in this process is byte for byte the
    section of the built page (fixed div ids, no random state)."""
    from figures import PAGES, on_pre_build, section_html

    on_pre_build({})
    page = "tutorials/notebooks/07-replicas.html"
    text = (built_site / page).read_text(encoding="utf-8")
    assert section_html("07-replicas", page) in text
    assert len(PAGES["07-replicas"][1]) == 2


def test_figures_render_from_disk_without_network(built_site: Path, chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    errors = collect_console_errors(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    for path in tutorial_pages():
        keys = figure_keys((built_site / path).read_text(encoding="utf-8"))
        page.goto((built_site / path).as_uri())
        page.wait_for_function(
            "keys => keys.every(k => { const d = document.getElementById(k);"
            " return d && d.data && d.data.length > 0 && d.querySelector('.main-svg'); })",
            arg=keys, timeout=60_000,
        )
        widths = page.evaluate(
            "keys => keys.map(k => document.getElementById(k).getBoundingClientRect().width)",
            keys,
        )
        assert all(w > 400 for w in widths), (path, widths)  # drawn across the page
        drawn = page.evaluate("keys => keys.map(k => document.getElementById(k)"
                              ".querySelectorAll('.trace, .hm').length)", keys)
        assert all(n > 0 for n in drawn), (path, drawn)
    remote = [url for url in requests if not url.startswith(("file:", "data:", "blob:"))]
    assert remote == [], f"the tutorial pages asked the network for {remote}"
    assert errors == [], errors
