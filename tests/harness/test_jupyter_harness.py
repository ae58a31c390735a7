"""Prove cblab.testing (server, browser, nbrun) on a throwaway notebook (made in tmp_path, not notebooks/).

(a) headless: nbclient runs an IntSlider + plotly FigureWidget notebook with this venv's
    kernel, the given env and the notebook's directory as cwd; failures name the cell;
(b) browser: JupyterLab + Chromium, run all, move the slider with the keyboard and see
    the Python observer's update arrive in the plotly chart; nothing goes wrong out of
    sight, and an error in a widget's handler, which no cell shows, is caught.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

from cblab.testing import (
    PLOTLY_SELECTOR,
    SLIDER_HANDLE_SELECTOR,
    JupyterLabServer,
    NotebookExecutionError,
    collect_console_errors,
    execute_notebook,
    launch_chromium,
    open_notebook,
    run_all_cells,
)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

SETUP_CELL = """\
import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import display

slider = W.IntSlider(value=0, min=0, max=10, description="level")
fig = go.FigureWidget(data=[go.Scatter(x=[0], y=[0], mode="lines+markers", name="level")])
seen = []
status = W.HTML(value="seen: []")
status.add_class("cblab-seen")

def on_change(change):
    v = change["new"]
    seen.append(v)
    with fig.batch_update():
        fig.data[0].x = list(range(v + 1))
        fig.data[0].y = [v] * (v + 1)
    status.value = f"seen: {seen}"

slider.observe(on_change, names="value")
display(W.VBox([slider, status, fig]))
"""


# A slider whose handler fails: the traceback goes to the kernel's stderr (ipykernel
# logs "Exception in comm_msg"), which only JupyterLab's log console shows.
TRAP_CELL = """\
trap = W.IntSlider(value=0, min=0, max=3, description="trap")
trap.add_class("cblab-trap")

def fail(change):
    raise ValueError("hidden handler failure")

trap.observe(fail, names="value")
display(trap)
"""


def make_notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nbformat.write(nb, path)
    return path


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream"
    )


# -- (a) headless ------------------------------------------------------------------------


def test_execute_notebook_widgets_env_cwd_and_venv_kernel(tmp_path: Path) -> None:
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    path = make_notebook(
        nb_dir / "widgets.ipynb",
        [
            "import os, sys\n"
            "print('VALUE=' + os.environ['CBLAB_HARNESS_VALUE'])\n"
            "print('CWD=' + os.getcwd())\n"
            "print('PREFIX=' + sys.prefix)",
            SETUP_CELL,
            "slider.value = 3\n"
            "assert seen == [3], seen\n"
            "assert list(fig.data[0].y) == [3, 3, 3, 3], fig.data[0].y\n"
            "print('OK', status.value)",
        ],
    )
    nb = execute_notebook(path, env={"CBLAB_HARNESS_VALUE": "42"}, timeout=180)

    text = stream_text(nb)
    assert "VALUE=42" in text
    assert f"CWD={nb_dir.resolve()}" in text
    assert f"PREFIX={sys.prefix}" in text  # the kernel is this venv's interpreter
    assert "OK seen: [3]" in text
    widget_outputs = [out for out in nb.cells[1].outputs if WIDGET_MIME in out.get("data", {})]
    assert widget_outputs, nb.cells[1].outputs
    assert "widgets" not in nb.metadata  # store_widget_state=False: no ~5 MB of state


def test_execute_notebook_error_names_cell_and_traceback(tmp_path: Path) -> None:
    path = make_notebook(
        tmp_path / "broken.ipynb",
        ["x = 1", "print('before')\nresult = x / 0  # boom"],
    )
    with pytest.raises(NotebookExecutionError) as info:
        execute_notebook(path, timeout=120, save_to=tmp_path / "out" / "broken.ipynb")
    err = info.value
    assert err.cell_index == 1
    assert err.ename == "ZeroDivisionError"
    message = str(err)
    assert "result = x / 0  # boom" in message  # the failing cell's source
    assert "ZeroDivisionError" in message and "\x1b[" not in message  # traceback, no ANSI
    assert (tmp_path / "out" / "broken.ipynb").exists()


# -- (b) browser -------------------------------------------------------------------------


def _y_equals_js() -> str:
    return """([sel, n]) => {
        const el = document.querySelector(sel);
        if (!el || !el.data || !el.data.length) return false;
        const y = Array.from(el.data[0].y || []);
        return y.length === n + 1 && y.every(v => v === n);
    }"""


@pytest.mark.browser
def test_jupyterlab_slider_drives_plotly_chart(tmp_path: Path, artifacts_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    make_notebook(tmp_path / "slider.ipynb", [SETUP_CELL, TRAP_CELL])
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def mark(name: str) -> None:
        marks[name] = round(time.perf_counter() - t0, 2)

    errors: list[str] = []
    with JupyterLabServer(tmp_path, log_path=artifacts_dir / "harness_jupyterlab.log") as lab:
        mark("server_ready")
        with sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                errors = collect_console_errors(page)
                open_notebook(page, lab, "slider.ipynb", timeout=120)
                mark("kernel_idle")

                run_all_cells(page)
                page.wait_for_function(_y_equals_js(), arg=[PLOTLY_SELECTOR, 0], timeout=90_000)
                handle = page.locator(SLIDER_HANDLE_SELECTOR).first
                handle.wait_for(state="visible", timeout=30_000)
                mark("first_chart")

                def slider_value() -> float:
                    return float(handle.get_attribute("aria-valuenow") or "nan")

                handle.focus()
                handle.press("ArrowRight")
                page.wait_for_function(_y_equals_js(), arg=[PLOTLY_SELECTOR, 1], timeout=30_000)
                assert slider_value() == 1
                mark("arrow_right_roundtrip")

                handle.press("End")
                page.wait_for_function(_y_equals_js(), arg=[PLOTLY_SELECTOR, 10], timeout=30_000)
                assert slider_value() == 10
                mark("end_roundtrip")

                # The Python observer saw exactly the two changes, in order.
                seen = page.locator(".cblab-seen")
                seen.filter(has_text="seen: [1, 10]").wait_for(timeout=30_000)

                page.screenshot(path=str(artifacts_dir / "harness_slider_chart.png"))
                assert not errors, errors  # nothing went wrong out of sight

                # An error no cell shows is still caught (the watch can fail a test).
                trap = page.locator(".cblab-trap .noUi-handle").first
                trap.focus()
                trap.press("ArrowRight")
                deadline = time.monotonic() + 30
                while not errors and time.monotonic() < deadline:
                    page.wait_for_timeout(100)  # poll for the kernel's report
            finally:
                browser.close()
    mark("total")

    (artifacts_dir / "harness_browser_timings.json").write_text(json.dumps(marks, indent=2))
    (artifacts_dir / "harness_browser_console.txt").write_text("\n".join(errors))
    print(f"browser harness timings (s): {marks}")
    # (stderr may arrive in several chunks: every report is the kernel's, one names it)
    assert errors and all(e.startswith("kernel: ") for e in errors), errors
    assert any("hidden handler failure" in e for e in errors), errors
