"""The live lab under a flapping breaker: chart update rate and kernel memory, and the
time from "Run all" to the first chart in a real JupyterLab + Chromium.

Part 1 runs the live lab in a real Jupyter kernel (nbclient drains its widget
messages, as a frontend would) for ``CBLAB_BENCH_LAB_SECONDS`` (default 600) while
an autopilot flips the backend's error rate between 100 % and 0 every 10 s, so the
breaker trips and recovers all the time. A sampler in the kernel records RSS and the
update count every 5 s. Targets: >= 4 chart updates per second in every 30 s window,
and flat memory (RSS at the end within 15 % + 20 MB of the RSS after warm-up).

Part 2 (``CBLAB_BENCH_BROWSER``, default 1) opens every live notebook in JupyterLab
and Chromium (``CBLAB_BENCH_NOTEBOOKS`` picks some), runs all cells, times the first
chart, then for 20 s while the charts run presses a slider's arrow keys every 1.5 s
and measures: redraws of the live chart per second, the main thread's busy share
(Chromium's task time), the time from a key press to the next paint (Event Timing), and
console/kernel errors. 03 also runs with the old settings (8 updates/s, 600 points
per variant), side by side. Targets: >= 4 redraws/s, < 50 % busy, press -> page
<= 300 ms p95, no errors, no chart shown anew (drawn blank or stalled: the lab's trace
in the server log), ``CBLAB_BENCH_LAB_SECONDS=0`` runs this part alone. The load
average is printed with the figures: on a shared machine it decides them.
``CBLAB_BENCH_LAB_BURNERS=N`` runs N CPU-burning processes beside it (a busy machine on
purpose): then only errors and charts shown anew are judged.

    python -m benchmarks lab                      # 10 minutes
    CBLAB_BENCH_LAB_SECONDS=60 python -m benchmarks lab
    CBLAB_BENCH_LAB_SECONDS=0 CBLAB_BENCH_LAB_BURNERS=9 python -m benchmarks lab
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

from cblab.testing import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("CBLAB_BENCH_LAB_SECONDS", "600"))  # 0: browser part only
BROWSER = os.environ.get("CBLAB_BENCH_BROWSER", "1") not in ("0", "false", "no")
FLIP_EVERY_S = 10.0
MIN_RATE = 4.0
CHART_TIMEOUT_S = float(os.environ.get("CBLAB_BENCH_CHART_TIMEOUT", "600"))

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


# Measured in the page while the charts run: redraws of the live chart
# (plotly_afterplot for a full replot, plotly_animated for LiveChart's traces-only
# update), and for every key press on a slider the time from the press to
# the next paint after the page handled it (the Event Timing API's duration: what a
# person waits for the slider to move, queueing behind chart work included).
# Main-thread busy comes from Chromium's own task accounting (CDP Performance
# metrics: TaskDuration over wall time).
PAGE_PROBE_JS = """(sel) => {
  const el = document.querySelector(sel);
  const w = window.__cblabBench = {redraws: 0, events: []};
  el.on('plotly_afterplot', () => { w.redraws++; });
  el.on('plotly_animated', () => { w.redraws++; });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.name === 'keydown') w.events.push(e.duration);
  }).observe({type: 'event', durationThreshold: 16});
}"""

#: The live notebooks and the slider a person moves in each (a live-lab control).
LIVE_NOTEBOOKS = {
    "01-why-circuit-breakers.ipynb": ".cblab-latency-ms",
    "03-live-lab.ipynb": ".cblab-error-rate",
    "04-tuning.ipynb": None,  # its live check has no sliders: redraws and busy only
    "08-your-server.ipynb": ".cblab-error-rate",
}
MAX_REFLECT_MS = 300.0
MAX_BUSY = 0.5


def _p95(values: list[float]) -> float | None:
    return round(sorted(values)[int(0.95 * (len(values) - 1))], 1) if values else None


def _chromium_cpu_s() -> float:
    """CPU seconds used so far by this process's Chromium processes: unlike the busy
    share (wall time), it hardly moves with the machine's load."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name():
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def browser_page(server: Any, page: Any, notebook: str, slider: str | None,
                 seconds: float = 20.0) -> dict:
    from cblab.testing import HAS_LATENCY_POINTS_JS, LIVE_CHART, open_notebook, run_all_cells

    out: dict = {}
    open_notebook(page, server, notebook, timeout=180)
    start = time.perf_counter()
    run_all_cells(page)
    page.wait_for_selector(LIVE_CHART, timeout=CHART_TIMEOUT_S * 1000)  # 04 sweeps first
    out["run_all_to_chart_widget_s"] = round(time.perf_counter() - start, 2)
    page.wait_for_function(HAS_LATENCY_POINTS_JS, arg=LIVE_CHART, timeout=300_000)
    out["run_all_to_first_data_s"] = round(time.perf_counter() - start, 2)
    page.wait_for_timeout(2000)  # past the first draws
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")

    def task_s() -> float:
        metrics = cdp.send("Performance.getMetrics")["metrics"]
        return next(m["value"] for m in metrics if m["name"] == "TaskDuration")

    page.evaluate(PAGE_PROBE_JS, LIVE_CHART)
    busy0, wall0, cpu0 = task_s(), time.perf_counter(), _chromium_cpu_s()
    handle = page.locator(f"{slider} .noUi-handle").first if slider else None
    presses = 0
    while time.perf_counter() - wall0 < seconds:
        if handle is not None:
            handle.focus()
            handle.press("ArrowRight" if presses % 2 == 0 else "ArrowLeft")
            presses += 1
        page.wait_for_timeout(1500)
    busy1, wall1, cpu1 = task_s(), time.perf_counter(), _chromium_cpu_s()
    probe = page.evaluate("() => window.__cblabBench")
    out["redraws_per_s"] = round(probe["redraws"] / (wall1 - wall0), 2)
    # all of Chromium's CPU (renderer, GPU/raster, browser) per redraw of the chart
    out["chromium_cpu_ms_per_redraw"] = round(1000 * (cpu1 - cpu0) / max(probe["redraws"], 1))
    out["main_thread_busy"] = round((busy1 - busy0) / (wall1 - wall0), 2)
    out["presses"] = presses
    # (Event Timing reports presses answered within 16 ms as nothing: count them as 16)
    answered = probe["events"] + [16.0] * max(presses - len(probe["events"]), 0)
    out["press_to_paint_ms_p95"] = _p95(answered)
    out["press_to_paint_ms_max"] = round(max(answered), 1) if answered else None
    out["status_line"] = page.locator(".cblab-live-status").first.inner_text()[-45:]
    out["load_average"] = tuple(round(x, 2) for x in os.getloadavg())
    return out


def browser_runs(runs: list[tuple[str, str, dict[str, str]]]) -> list[tuple[str, str, dict]]:
    """(label, notebook, extra env) -> figures, each on its own JupyterLab, one Chromium."""
    from playwright.sync_api import sync_playwright

    from cblab.testing import (
        JupyterLabServer,
        collect_console_errors,
        launch_chromium,
        page_diagnosis,
    )

    base = {"CBLAB_RUN_SECONDS": "300", "CBLAB_WAIT": "0", "CBLAB_QUICK": "1",
            "CBLAB_LAB_TRACE": "1",  # the server log says when a chart was shown anew
            "CBLAB_BREAKER_TIMEOUT": "1", "CBLAB_FAILURE_THRESHOLD": "3",
            "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    results = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            for label, notebook, extra in runs:
                root = Path(tempfile.mkdtemp(prefix="cblab-bench-nb-"))
                served = root / "notebooks"
                served.mkdir()
                shutil.copy(ROOT / "notebooks" / notebook, served)  # JupyterLab saves outputs
                (root / "data").symlink_to(ROOT / "data")
                env = {**base, "CBLAB_REPORT_DIR": str(served / "reports"), **extra}
                log = root / "server.log"
                with JupyterLabServer(served, env=env, log_path=log) as server:
                    context = browser.new_context(viewport={"width": 1400, "height": 1400})
                    page = context.new_page()
                    errors = collect_console_errors(page)
                    try:
                        figures = browser_page(server, page, notebook, LIVE_NOTEBOOKS[notebook])
                        figures["errors"] = len(errors)
                        if errors:  # what went wrong, not only how often
                            figures["first_errors"] = [str(e)[:300] for e in errors[:3]]
                    except Exception as exc:  # one notebook's failure: the others still run
                        figures = {"failed": f"{type(exc).__name__}: {str(exc)[:200]}"}
                        print(page_diagnosis(page, server), *errors[:5], sep="\n", flush=True)
                    finally:
                        context.close()
                        for session in server.api("GET", "api/sessions") or []:
                            server.api("DELETE", f"api/sessions/{session['id']}")
                # a chart drawn blank, or that stopped drawing, shown anew (cblab.lab.live)
                figures["charts_shown_anew"] = log.read_text(errors="replace").count(
                    "showing it anew")
                shutil.rmtree(root, ignore_errors=True)
                results.append((label, notebook, figures))
                print(f"  {label:8} {notebook:32} {json.dumps(figures)}", flush=True)
        finally:
            browser.close()
    return results


def _burn(stop: Any) -> None:
    while not stop.is_set():
        sum(range(100_000))


def main() -> int:
    problems: list[str] = []
    burners = int(os.environ.get("CBLAB_BENCH_LAB_BURNERS", "0"))
    if burners:  # a busy machine on purpose: the charts must still draw and keep drawing
        import multiprocessing

        stop = multiprocessing.Event()
        for _ in range(burners):
            multiprocessing.Process(target=_burn, args=(stop,), daemon=True).start()
        print(f"{burners} CPU-burning processes run beside the lab", flush=True)
        try:
            return _measure(problems, judge_speed=False)  # the burners decide the speed
        finally:
            stop.set()
    return _measure(problems, judge_speed=True)


def _measure(problems: list[str], *, judge_speed: bool) -> int:
    if SECONDS > 0:
        print(f"live lab, flapping breaker, {SECONDS:g} s in a Jupyter kernel "
              f"(error rate flips every {FLIP_EVERY_S:g} s)", flush=True)
        figures, problems = summarise(kernel_run(SECONDS), SECONDS)
        for key, value in figures.items():
            print(f"  {key:28} {value}")
        print(f"  {'load_average':28} {os.getloadavg()}")
    if BROWSER:
        print("JupyterLab + Chromium, the live notebooks while their charts run "
              "(before: the old 8 updates/s of 600 points per variant)", flush=True)
        notebooks = [n.strip() for n in os.environ.get(
            "CBLAB_BENCH_NOTEBOOKS", ",".join(LIVE_NOTEBOOKS)).split(",") if n.strip()]
        runs = [("before", "03-live-lab.ipynb",
                 {"CBLAB_UPDATE_HZ": "8", "CBLAB_CHART_POINTS": "600"})]
        runs += [("now", n, {}) for n in notebooks]
        results = browser_runs(runs)
        before = results[0][2]
        for _label, notebook, fig in results:
            if "failed" in fig:
                problems.append(f"{notebook}: {fig['failed']}")
        results = [r for r in results if "failed" not in r[2]]
        for _label, notebook, fig in results[1:] if "failed" not in before else results:
            if notebook == "03-live-lab.ipynb" and "failed" not in before:
                print(f"  03 now/before: busy {fig['main_thread_busy']}/{before['main_thread_busy']}"
                      f", press->paint p95 {fig['press_to_paint_ms_p95']}/"
                      f"{before['press_to_paint_ms_p95']} ms, redraws/s "
                      f"{fig['redraws_per_s']}/{before['redraws_per_s']}")
            if judge_speed and fig["redraws_per_s"] < MIN_RATE:
                problems.append(f"{notebook}: fewer than {MIN_RATE} redraws per second")
            if judge_speed and fig["main_thread_busy"] >= MAX_BUSY:
                problems.append(f"{notebook}: main thread {fig['main_thread_busy']:.0%} busy")
            if judge_speed and (fig["press_to_paint_ms_p95"] or 0) > MAX_REFLECT_MS:
                problems.append(f"{notebook}: a slider press took "
                                f"{fig['press_to_paint_ms_p95']} ms (p95) to show")
            if fig["errors"]:
                problems.append(f"{notebook}: {fig['errors']} console/kernel errors")
            if fig["charts_shown_anew"]:
                problems.append(f"{notebook}: the chart was shown anew "
                                f"{fig['charts_shown_anew']} times (drawn blank or stalled)")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
