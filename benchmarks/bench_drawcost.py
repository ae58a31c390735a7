"""What one redraw of the live chart costs Chromium's main thread, without JupyterLab.

A synthetic two-variant run (a breaker flapping every 10 s, 25 calls/s per variant)
is fed to a `LiveFeed` four times a second; each tick's update is captured from a
`FigureWidget` exactly as it would reach the browser, and replayed in headless
Chromium through plotly.js, side by side:

- "replot": every tick a `batch_update` (Plotly.update: plotly replots every
  subplot, axis, legend and title), as before `LiveChart`;
- "LiveChart": `LiveChart.refresh` (only the traces while no range or legend changes).

Per redraw: Chromium's main-thread task time (CDP Performance.getMetrics
TaskDuration), the same at 4 redraws/s as a share of the main thread, and the SVG
points on the page (both must show the same data). Rounds alternate the two; the
median is quoted with the load average. ``CBLAB_BENCH_DRAW_PROFILE=1`` adds a CPU
profile of the replot path (self time per plotly.js function, minified names).

    python -m benchmarks drawcost
"""

from __future__ import annotations

import json
import os
import random
import statistics
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go

from cblab.lab.dashboard import LiveChart, apply_arrays, live_figure
from cblab.lab.feed import LiveFeed
from cblab.schema import event_row

VARIANTS = ["protected", "unprotected"]
TICKS = int(os.environ.get("CBLAB_BENCH_DRAW_TICKS", "60"))
ROUNDS = int(os.environ.get("CBLAB_BENCH_DRAW_ROUNDS", "3"))
RATE_PER_S = 4.0  # issue 19's redraw target
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

REPLAY = """async (sent) => {
    for (const [kind, data, layout, traces, options] of sent) {
        if (kind === 'update') {  // null: plotly's Undefined, a trace without that edit
            for (const key of Object.keys(data))
                data[key] = data[key].map(v => v === null ? undefined : v);
            await Plotly.update('gd', data, layout, traces);
        }
        else await Plotly.animate('gd', {data: data, layout: layout, traces: traces}, options);
        await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
    }
    return document.querySelectorAll('#gd .point').length;
}"""


def _rows(seconds: float, rate: float = 25.0, seed: int = 1) -> list[dict[str, Any]]:
    """Calls of both variants (server and client view) and the protected breaker's moves."""
    rnd, rows, state = random.Random(seed), [], "closed"
    for i in range(int(seconds * rate)):
        t = i / rate
        bad, phase = int(t // 10) % 2 == 1, t % 10
        for variant in VARIANTS:
            st = state if variant == "protected" else None
            if st == "open":
                outcome, latency = "rejected", 0.0002
            else:
                outcome = ("failure" if bad and rnd.random() < 0.9 else
                           "slow" if rnd.random() < 0.05 else "success")
                latency = rnd.lognormvariate(-3.5, 0.6)
            rows += [event_row(kind="call", t=t, source=source, variant=variant,
                               breaker="github", tool="github_user", outcome=outcome,
                               latency=latency, state=st, state_after=st)
                     for source in ("server", "load")]
        moved = {("closed", True): "open", ("open", False): "half_open",
                 ("half_open", False): "closed"}.get((state, bad)) if phase > 1 else None
        if moved and not (moved == "closed" and phase <= 1.5):
            rows.append(event_row(kind="state", t=t, source="server", variant="protected",
                                  breaker="github", state=state, state_after=moved,
                                  reason="bench"))
            state = moved
    return rows


def _ticks(warm_up_s: float = 30.0) -> list[tuple[dict[str, Any], tuple[float, float]]]:
    """(arrays, x_range) four times a second after `warm_up_s` (a full window)."""
    rows = _rows(warm_up_s + TICKS / RATE_PER_S + 1)
    feed, out, k = LiveFeed(breaker="github", max_points=125), [], 0
    for tick in range(int(warm_up_s * RATE_PER_S) + TICKS):
        now = (tick + 1) / RATE_PER_S
        batch = []
        while k < len(rows) and rows[k]["t"] <= now:
            batch.append(rows[k])
            k += 1
        feed.add(batch)
        feed.advance(now)
        if now > warm_up_s:
            out.append((feed.arrays(), feed.x_range))
    return out


def _captured(ticks: list[Any], live_chart: bool) -> tuple[dict[str, Any], list[Any]]:
    """The initial figure and what a FigureWidget sends its browser view for `ticks`."""
    start = live_figure(VARIANTS, "github", ticks[0][1])
    widget, sent = go.FigureWidget(start), []

    def update(restyle_data: Any, relayout_data: Any, trace_indexes: Any = None,
               source_view_id: Any = None) -> None:
        sent.append(["update", restyle_data, relayout_data, trace_indexes, None])

    def animate(styles_data: Any, relayout_data: Any, trace_indexes: Any,
                animation_opts: Any) -> None:
        sent.append(["animate", styles_data, relayout_data, trace_indexes, animation_opts])

    widget._send_update_msg = update  # type: ignore[method-assign]
    widget._send_animate_msg = animate  # type: ignore[method-assign]
    chart, cache, shown = LiveChart(widget, legend_variant=VARIANTS[0]), {}, None
    for arrays, x_range in ticks:
        if live_chart:
            chart.refresh(arrays, x_range)
            continue
        with widget.batch_update():  # the replot path
            apply_arrays(widget, arrays, cache, legend_variant=VARIANTS[0])
            if x_range != shown:
                widget.update_xaxes(range=list(x_range))
                shown = x_range
    # numpy arrays as lists; plotly's Undefined sentinel (a property reset) as null
    plain = json.loads(json.dumps(sent, default=lambda o: getattr(o, "tolist", lambda: None)()))
    return json.loads(start.to_json()), plain


def _replay(page: Any, cdp: Any, figure: dict[str, Any], sent: list[Any]) -> tuple[float, int]:
    """Main-thread ms per redraw, and the points drawn at the end."""
    page.evaluate("(f) => Plotly.newPlot('gd', f.data, f.layout)", figure)

    def task_s() -> float:
        metrics = cdp.send("Performance.getMetrics")["metrics"]
        return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))

    before = task_s()
    points = page.evaluate(REPLAY, sent)
    return 1000 * (task_s() - before) / len(sent), int(points)


def main() -> int:
    from playwright.sync_api import sync_playwright

    from cblab.testing import launch_chromium

    ticks = _ticks()
    paths = {"replot": _captured(ticks, False), "LiveChart": _captured(ticks, True)}
    full = sum(kind == "update" for kind, *_ in paths["LiveChart"][1])
    print(f"Live chart redraw cost in Chromium, {TICKS} ticks x {ROUNDS} rounds "
          f"(LiveChart: {full} full updates, {TICKS - full} traces only)")
    costs: dict[str, list[float]] = {name: [] for name in paths}
    points: dict[str, int] = {}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.set_content(f"<script>{PLOTLY_JS.read_text()}</script><div id='gd'></div>")
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
        _replay(page, cdp, *paths["replot"])  # warm-up: plotly.js compiled
        for _ in range(ROUNDS):
            for name, (figure, sent) in paths.items():
                ms, points[name] = _replay(page, cdp, figure, sent)
                costs[name].append(ms)
        if os.environ.get("CBLAB_BENCH_DRAW_PROFILE") == "1":
            _profile(page, cdp, *paths["replot"])
        browser.close()
    base = statistics.median(costs["replot"])
    for name, values in costs.items():
        ms = statistics.median(values)
        print(f"  {name:10s} {ms:6.1f} ms main thread per redraw ({ms * RATE_PER_S / 10:4.1f} % "
              f"busy at {RATE_PER_S:g}/s), x{ms / base:.2f}, {points[name]} points drawn, "
              f"rounds {[round(v, 1) for v in values]}")
    print(f"  load average {[round(x, 2) for x in os.getloadavg()]}")
    if points["replot"] != points["LiveChart"]:
        print("FAIL: the two paths drew different points")
        return 1
    return 0


def _profile(page: Any, cdp: Any, figure: dict[str, Any], sent: list[Any]) -> None:
    """Self time per function over one replay (sampled every 0.2 ms)."""
    from collections import Counter

    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    _replay(page, cdp, figure, sent)
    profile = cdp.send("Profiler.stop")["profile"]
    names = {n["id"]: f"{n['callFrame']['functionName'] or '(anonymous)'}:"
                      f"{n['callFrame']['columnNumber']}" for n in profile["nodes"]}
    spent: Counter[str] = Counter()
    for node, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        spent[names[node]] += delta
    total = sum(spent.values())
    print("  replot profile, self time:")
    for name, us in spent.most_common(15):
        print(f"    {100 * us / total:5.1f} %  {name}")


if __name__ == "__main__":
    raise SystemExit(main())
