"""The live lab under a flapping breaker: chart update rate and kernel memory, and the
time from "Run all" to the first chart in a real JupyterLab + Chromium.

Part 1 runs the live lab in a real Jupyter kernel (nbclient drains its widget
messages, as a frontend would) for ``CBLAB_BENCH_LAB_SECONDS`` (default 600) while
an autopilot flips the backend's error rate between 100 % and 0 every 10 s, so the
breaker trips and recovers all the time. A sampler in the kernel records RSS and the
update count every 5 s. Targets: >= 4 chart updates per second in every 30 s window,
and flat memory (RSS at the end within 15 % + 20 MB of the RSS after warm-up).

Part 2 (``CBLAB_BENCH_BROWSER``, default 1) opens 03-live-lab.ipynb in JupyterLab,
runs all cells and times the first chart with data; then counts the redraws the
browser actually makes (plotly_afterplot on the live chart) over 20 s while the lab
runs, with the error rate at 100 % half of that time (the breaker flapping). Target:
>= 4 redraws per second (``CBLAB_BENCH_LAB_SECONDS=0`` runs this part alone). The
load average is printed with the figures: on a shared machine it decides them.

    python -m benchmarks lab                      # 10 minutes
    CBLAB_BENCH_LAB_SECONDS=60 python -m benchmarks lab
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from cblab.testing import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("CBLAB_BENCH_LAB_SECONDS", "600"))  # 0: browser part only
BROWSER = os.environ.get("CBLAB_BENCH_BROWSER", "1") not in ("0", "false", "no")
FLIP_EVERY_S = 10.0
MIN_RATE = 4.0

SAMPLER = """\
import asyncio, json, time, psutil
from cblab.lab import LabParams, LiveLab

samples = []
lab = LiveLab(LabParams.from_env()).start()

async def sample(every=5.0):
    process = psutil.Process()
    while not lab.task.done():
        samples.append((time.perf_counter(), process.memory_info().rss, lab.feed.update_count,
                        lab.feed.rows_in, len(lab.feed)))
        await asyncio.sleep(every)

sampler = asyncio.get_running_loop().create_task(sample())
"""

REPORT = """\
await lab.wait()
await asyncio.sleep(0)
costs = sorted(lab.feed.update_cost)
print("BENCH " + json.dumps({
    "samples": samples, "summary": lab.summary(), "io_errors": lab.io_errors,
    "missed": lab.feed.missed, "cost_ms_mean": 1000 * sum(costs) / max(len(costs), 1),
    "cost_ms_p95": 1000 * costs[int(0.95 * (len(costs) - 1))] if costs else None,
    "started_at_perf": None,
}))
"""


def _autopilot(seconds: float) -> str:
    steps, t, value = [], FLIP_EVERY_S / 2, 100
    while t < seconds:
        steps.append(f"{t:g}:error_rate={value}")
        value = 0 if value else 100
        t += FLIP_EVERY_S
    return ",".join(steps)


def kernel_run(seconds: float) -> dict:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(SAMPLER), nbformat.v4.new_code_cell(REPORT)]
    env = {
        "CBLAB_RUN_SECONDS": f"{seconds:g}",
        "CBLAB_WAIT": "1",
        "CBLAB_UPDATE_HZ": "5",
        "CBLAB_BREAKER_TIMEOUT": "2",
        "CBLAB_FAILURE_THRESHOLD": "3",
        "CBLAB_AUTOPILOT": _autopilot(seconds),
        "CBLAB_EXPECT_STATES": "open,closed",
        "FASTMCP_ENABLE_RICH_TRACEBACKS": "false",
    }
    with tempfile.TemporaryDirectory(prefix="cblab-bench-lab-") as tmp:
        path = Path(tmp) / "bench.ipynb"
        nbformat.write(book, path)
        executed = execute_notebook(path, env=env, timeout=seconds + 180)
    text = "".join(o.get("text", "") for o in executed.cells[1].outputs
                   if o.output_type == "stream")
    line = next(line for line in text.splitlines() if line.startswith("BENCH "))
    return json.loads(line[len("BENCH "):])


def summarise(result: dict, seconds: float) -> tuple[dict, list[str]]:
    samples = result["samples"]
    t0 = samples[0][0]
    times = [s[0] - t0 for s in samples]
    rss = [s[1] / 2**20 for s in samples]
    updates = [s[2] for s in samples]
    # Rates over 30 s windows, once the lab is running (updates started).
    first = next((i for i, u in enumerate(updates) if u > 0), 0)
    rates = []
    i = first
    while i < len(samples):
        j = i
        while j + 1 < len(samples) and times[j] - times[i] < 30:
            j += 1
        if times[j] - times[i] >= 25:
            rates.append((updates[j] - updates[i]) / (times[j] - times[i]))
        i = j if j > i else i + 1
    warm = min(first + 6, len(rss) - 1)  # 30 s after the charts started
    middle = (warm + len(rss) - 1) // 2
    figures = {
        "run_s": round(times[-1], 1),
        "updates": updates[-1],
        "updates_per_s_overall": round((updates[-1] - updates[first]) / max(times[-1] - times[first], 1e-9), 2),
        "updates_per_s_min_30s": round(min(rates), 2) if rates else None,
        "updates_per_s_median_30s": round(statistics.median(rates), 2) if rates else None,
        "update_cost_ms_mean": round(result["cost_ms_mean"], 1),
        "update_cost_ms_p95": round(result["cost_ms_p95"] or 0.0, 1),
        "rss_mb_start": round(rss[first], 1),
        "rss_mb_after_warmup": round(rss[warm], 1),
        "rss_mb_middle": round(rss[middle], 1),
        "rss_mb_end": round(rss[-1], 1),
        "rss_mb_max": round(max(rss), 1),
        "rows_in": samples[-1][3],
        "rows_in_window_end": samples[-1][4],
        "trips": result["summary"]["protected"]["trips"],
        "calls": result["summary"]["protected"]["calls"],
        "io_errors": result["io_errors"],
        "missed_rows": result["missed"],
    }
    problems = []
    if figures["updates_per_s_min_30s"] is None or figures["updates_per_s_min_30s"] < MIN_RATE:
        problems.append(f"chart updates fell below {MIN_RATE}/s in some 30 s window")
    if figures["rss_mb_end"] > figures["rss_mb_after_warmup"] * 1.15 + 20:
        problems.append("kernel memory grew after warm-up")
    return figures, problems


def browser_first_chart() -> dict:
    from playwright.sync_api import sync_playwright

    from cblab.testing import JupyterLabServer, launch_chromium, open_notebook, run_all_cells

    chart = ".cblab-live-chart.js-plotly-plot, .cblab-live-chart .js-plotly-plot"
    has_points = """(sel) => { const el = document.querySelector(sel);
        return !!(el && el.data && el.data.some((t) => t.meta && t.meta[0] === 'latency'
                  && t.x && t.x.length > 0)); }"""
    # Redraws (plotly_afterplot) and updates a person sees: redraws after which the
    # chart's data differs from the previous redraw's.
    count_redraws = """(sel) => { const el = document.querySelector(sel);
        window.__cblabRedraws = 0; window.__cblabUpdates = 0; let last = null;
        el.on('plotly_afterplot', () => {
          window.__cblabRedraws++;
          const sig = JSON.stringify(el.data.map((t) => t.x ? [t.x.length, t.x[t.x.length - 1]] : 0));
          if (sig !== last) { window.__cblabUpdates++; last = sig; }
        }); }"""
    env = {"CBLAB_RUN_SECONDS": "180", "CBLAB_WAIT": "0",
           "CBLAB_UPDATE_HZ": os.environ.get("CBLAB_BENCH_UPDATE_HZ", "8"),
           "CBLAB_BREAKER_TIMEOUT": "1", "CBLAB_FAILURE_THRESHOLD": "3",
           "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    out: dict = {}
    served = Path(tempfile.mkdtemp(prefix="cblab-bench-nb-"))  # JupyterLab saves outputs
    shutil.copy(ROOT / "notebooks" / "03-live-lab.ipynb", served)
    with JupyterLabServer(served, env=env) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            open_notebook(page, server, "03-live-lab.ipynb", timeout=120)
            start = time.perf_counter()
            run_all_cells(page)
            page.wait_for_selector(chart, timeout=120_000)
            out["run_all_to_chart_widget_s"] = round(time.perf_counter() - start, 2)
            page.wait_for_function(has_points, arg=chart, timeout=120_000)
            out["run_all_to_first_data_s"] = round(time.perf_counter() - start, 2)
            page.evaluate(count_redraws, chart)
            handle = page.locator(".cblab-error-rate .noUi-handle").first
            handle.focus()
            handle.press("End")
            page.wait_for_timeout(10_000)
            handle.press("Home")
            page.wait_for_timeout(10_000)
            out["browser_redraws_per_s"] = round(page.evaluate("() => window.__cblabRedraws") / 20, 2)
            out["browser_updates_per_s"] = round(page.evaluate("() => window.__cblabUpdates") / 20, 2)
            out["status_line"] = page.locator(".cblab-live-status").first.inner_text()[-60:]
            out["load_average"] = os.getloadavg()
        finally:
            browser.close()
            for session in server.api("GET", "api/sessions") or []:
                server.api("DELETE", f"api/sessions/{session['id']}")
    return out


def main() -> int:
    problems: list[str] = []
    if SECONDS > 0:
        print(f"live lab, flapping breaker, {SECONDS:g} s in a Jupyter kernel "
              f"(error rate flips every {FLIP_EVERY_S:g} s)", flush=True)
        figures, problems = summarise(kernel_run(SECONDS), SECONDS)
        for key, value in figures.items():
            print(f"  {key:28} {value}")
        print(f"  {'load_average':28} {os.getloadavg()}")
    if BROWSER:
        print("JupyterLab + Chromium, 03-live-lab.ipynb", flush=True)
        browser = browser_first_chart()
        for key, value in browser.items():
            print(f"  {key:28} {value}")
        if browser["browser_updates_per_s"] < MIN_RATE:
            problems.append(f"the browser drew fewer than {MIN_RATE} chart updates per second")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
