"""Chromium (the system's, through playwright) and JupyterLab page helpers.

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        errors = collect_console_errors(page)
        open_notebook(page, server, "03-live-lab.ipynb")
        run_all_cells(page)
        page.wait_for_selector(PLOTLY_SELECTOR, timeout=60_000)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # playwright is a test extra; import it lazily
    from playwright.sync_api import Browser, Page, Playwright

    from .server import JupyterLabServer

__all__ = [
    "BAND_STATE_JS",
    "CHROMIUM_ARGS",
    "CURRENT_STATE_JS",
    "DEFAULT_CHROMIUM",
    "ERROR_RATE_HANDLE",
    "HAS_LATENCY_POINTS_JS",
    "KERNEL_ERROR_MARK",
    "KERNEL_WATCH_JS",
    "LIVE_CHART",
    "PLOTLY_SELECTOR",
    "SLIDER_HANDLE_SELECTOR",
    "chromium_path",
    "collect_console_errors",
    "kernel_status",
    "launch_chromium",
    "open_notebook",
    "page_diagnosis",
    "run_all_cells",
    "wait_for_kernel_idle",
]

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
SLIDER_HANDLE_SELECTOR = ".widget-slider .noUi-handle"
PLOTLY_SELECTOR = ".jp-OutputArea .js-plotly-plot"

# The live lab (cblab.lab.LiveLab) as a page shows it.
LIVE_CHART = ".cblab-live-chart.js-plotly-plot, .cblab-live-chart .js-plotly-plot"
ERROR_RATE_HANDLE = ".cblab-error-rate .noUi-handle"

#: ``([selector, band])`` -> the state a band of the live state chart shows now (its
#: segment that ends last); band None: any band.
BAND_STATE_JS = """
([sel, band]) => {
  const el = document.querySelector(sel);
  if (!el || !el.data) return null;
  let best = null;
  for (const trace of el.data) {
    const meta = trace.meta;
    if (!meta || meta[0] !== 'state' || !trace.base) continue;
    for (let i = 0; i < trace.base.length; i++) {
      if (band !== null && trace.y[i] !== band) continue;
      const base = Number(trace.base[i]), end = base + Number(trace.x[i]);
      if (best === null || end > best.end || (end === best.end && base > best.base)) {
        best = {state: meta[1], end: end, base: base};
      }
    }
  }
  return best && best.state;
}
"""
#: ``(selector)`` -> the state the live state chart shows now (any band).
CURRENT_STATE_JS = f"(sel) => ({BAND_STATE_JS})([sel, null])"
#: ``(selector)`` -> whether the live latency chart has points.
HAS_LATENCY_POINTS_JS = """
(sel) => {
  const el = document.querySelector(sel);
  return !!(el && el.data && el.data.some((t) => t.meta && t.meta[0] === 'latency'
            && t.x && t.x.length > 0));
}
"""


def chromium_path() -> str:
    """The Chromium binary: ``$CBLAB_CHROMIUM`` or Debian's ``/usr/bin/chromium``."""
    path = os.environ.get("CBLAB_CHROMIUM") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise FileNotFoundError(
            f"Chromium not found at {path}: run `make system-deps` (Debian package "
            "`chromium`) or set CBLAB_CHROMIUM. Playwright's own browsers are not used."
        )
    return path


def launch_chromium(
    playwright: Playwright, *, headless: bool = True, extra_args: Sequence[str] = ()
) -> Browser:
    """Launch the system Chromium through playwright (never a downloaded browser).

    ``launch`` gives every browser its own fresh temporary profile (user data dir),
    which playwright deletes when the browser closes.
    """
    args = list(CHROMIUM_ARGS)
    if headless:
        args.insert(0, "--headless")
    args += list(extra_args)
    return playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=headless,
        args=args,
    )


#: Marks a kernel error the page reports through ``console.error`` (see KERNEL_WATCH_JS).
KERNEL_ERROR_MARK = "[cblab-kernel] "

#: Runs in every page before its scripts: once JupyterLab is up, it listens to the
#: IOPub channel of every notebook's kernel and reports, through ``console.error``, what
#: JupyterLab's log console and output areas would show as an error: ``error``
#: messages (a cell's or a comm handler's traceback) and stderr text with a Python
#: traceback in it (ipykernel logs "Exception in comm_msg" with one; the kernel also
#: forwards its child processes' stderr, whose mere "ERROR" log lines are not
#: counted). Outside
#: JupyterLab (a report page) it does nothing.
KERNEL_WATCH_JS = r"""
(() => {
  if (window.__cblabKernelWatch) return;
  window.__cblabKernelWatch = true;
  const MARK = MARK_LITERAL;
  const hooked = new WeakSet();
  const pattern = /Traceback \(most recent call last\)/;
  const report = (text) => console.error(MARK + text.slice(0, 2000));
  const onMessage = (_ctx, msg) => {
    const type = msg.header && msg.header.msg_type, c = msg.content || {};
    const parent = (msg.parent_header && msg.parent_header.msg_type) || '?';
    if (type === 'error') {
      report(`error output (${parent}): ${c.ename}: ${c.evalue}\n`
             + (c.traceback || []).join('\n').replace(/\x1b\[[0-9;]*m/g, ''));
    } else if (type === 'stream' && c.name === 'stderr' && pattern.test(c.text || '')) {
      report(`stderr (${parent}): ${c.text}`);
    }
  };
  const hook = () => {
    const app = window.jupyterapp;
    if (!app || !app.shell || !app.shell.widgets) return;
    for (const w of app.shell.widgets('main')) {
      const ctx = w.sessionContext;
      if (!ctx || !ctx.iopubMessage || hooked.has(ctx)) continue;
      hooked.add(ctx);
      ctx.iopubMessage.connect(onMessage);
    }
  };
  // What went over each notebook's widget comms (for page_diagnosis): messages per
  // direction and state key, and the plotly views that finished their first draw.
  const comm = window.__cblabComm = {recv: {}, send: {}, opens: [], rendered: 0, last: {}};
  document.addEventListener('plotlywidget-after-render', () => { comm.rendered += 1; });
  const hookedKernels = new WeakSet();
  const onAny = (_k, {msg, direction}) => {
    const type = msg.header && msg.header.msg_type;
    if (type !== 'comm_msg' && type !== 'comm_open') return;
    const data = (msg.content && msg.content.data) || {};
    const state = data.state || {};
    if (type === 'comm_open') {
      comm.opens.push(`${state._model_name || '?'}@${Math.round(performance.now() / 1000)}s`);
      return;
    }
    const book = direction === 'send' ? comm.send : comm.recv;
    for (const key of Object.keys(state).length ? Object.keys(state) : [data.method || '?']) {
      book[key] = (book[key] || 0) + 1;
      comm.last[`${direction}:${key}`] = Math.round(performance.now() / 100) / 10;
    }
  };
  const hookKernels = () => {
    const app = window.jupyterapp;
    if (!app || !app.shell || !app.shell.widgets) return;
    for (const w of app.shell.widgets('main')) {
      const k = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
      if (!k || !k.anyMessage || hookedKernels.has(k)) continue;
      hookedKernels.add(k);
      k.anyMessage.connect(onAny);
    }
  };
  setInterval(() => { hook(); hookKernels(); }, 200);
})();
""".replace("MARK_LITERAL", repr(KERNEL_ERROR_MARK))


def collect_console_errors(page: Page) -> list[str]:
    """Start collecting errors; returns a live list. Call it before ``page.goto``.

    It holds the page's console errors (``console.error: ...``), uncaught page errors
    (``pageerror: ...``) and, in JupyterLab, the kernel's errors (``kernel: ...``):
    error outputs and tracebacks on stderr, including those of comm handlers that no
    cell shows (JupyterLab's log console collects them). A test that
    ``assert not errors`` fails on any of them.
    """
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        text = msg.text
        if text.startswith(KERNEL_ERROR_MARK):
            errors.append("kernel: " + text[len(KERNEL_ERROR_MARK):])
        else:
            errors.append(f"console.error: {text}")

    def on_pageerror(exc: Any) -> None:
        errors.append(f"pageerror: {exc}")

    page.add_init_script(KERNEL_WATCH_JS)
    page.on("console", on_console)
    page.on("pageerror", on_pageerror)
    return errors


_KERNEL_STATE_JS = """
() => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return 'no-app';
  const w = app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content) return 'no-notebook';
  if (w.context && !w.context.isReady) return 'loading';
  const s = w.sessionContext.session;
  const k = s && s.kernel;
  if (!k) return 'no-kernel';
  if (k.connectionStatus && k.connectionStatus !== 'connected') return k.connectionStatus;
  return k.status;
}
"""


def kernel_status(page: Page) -> str:
    """Status of the current notebook's kernel as JupyterLab sees it (``"idle"``,
    ``"busy"``, ``"starting"``...), or ``"no-app"``/``"no-notebook"``/``"no-kernel"``."""
    return str(page.evaluate(_KERNEL_STATE_JS))


def wait_for_kernel_idle(page: Page, timeout: float = 90.0, stable_for: float = 1.0) -> None:
    """Wait until the current notebook's kernel is connected and idle for ``stable_for``
    seconds in a row (a kernel flickers busy/idle while it starts).

    Do not use it while a live loop runs: the kernel then shows busy all the time.
    """
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    status = "unknown"
    while True:
        try:
            status = kernel_status(page)
        except Exception as e:  # navigation in progress destroys the JS context
            if page.is_closed():
                raise
            status = f"evaluate failed: {e}"
        now = time.monotonic()
        if status == "idle":
            idle_since = idle_since if idle_since is not None else now
            if now - idle_since >= stable_for:
                return
        else:
            idle_since = None
        if now > deadline:
            raise TimeoutError(f"kernel not idle after {timeout:.0f} s (last status: {status})")
        page.wait_for_timeout(100)  # poll interval


def open_notebook(
    page: Page, server: JupyterLabServer, path: str | os.PathLike[str], timeout: float = 120.0
) -> None:
    """Open ``path`` in a fresh workspace and wait for its kernel to be idle."""
    page.goto(server.notebook_url(path), wait_until="domcontentloaded", timeout=timeout * 1000)
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout * 1000
    )
    wait_for_kernel_idle(page, timeout=timeout)


def run_all_cells(page: Page) -> None:
    """Run all cells of the current notebook (``notebook:run-all-cells``).

    Returns at once: wait for what the notebook shows (a selector, widget state),
    not for the kernel, since a live loop keeps it busy.
    """
    ok = page.evaluate(
        """() => {
            const app = window.jupyterapp;
            if (!app || !app.commands.hasCommand('notebook:run-all-cells')) return false;
            app.commands.execute('notebook:run-all-cells');
            return true;
        }"""
    )
    if not ok:
        raise RuntimeError(
            "window.jupyterapp or 'notebook:run-all-cells' missing "
            "(was the server started with --expose-app-in-browser?)"
        )


_DIAGNOSIS_JS = """
() => {
  const text = (sel, n) => [...document.querySelectorAll(sel)]
    .map((e) => e.innerText.slice(0, n)).join(' | ');
  const app = window.jupyterapp, w = app && app.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session
    && w.sessionContext.session.kernel;
  return {status_line: text('.cblab-live-status', 400),
          outputs: text('.jp-OutputArea-output', 300),
          kernel: k ? `${k.status}/${k.connectionStatus}` : 'none',
          plotly_divs: [...document.querySelectorAll('.js-plotly-plot')].map((d) => {
            const r = d.getBoundingClientRect(), p = d.parentElement;
            return `class=${d.className} parent=${p && p.className} `
              + `box=${Math.round(r.width)}x${Math.round(r.height)} `
              + `display=${getComputedStyle(d).display} drawn=${!!d._fullLayout} `
              + `traces=${d.data ? d.data.length : -1} svg=${!!d.querySelector('.main-svg')}`;
          }).join(' | '),
          widget_views: document.querySelectorAll('.jupyter-widgets').length,
          page_s: Math.round(performance.now() / 1000),
          comms: JSON.stringify(window.__cblabComm || null)};
}
"""


def page_diagnosis(page: Page, server: JupyterLabServer | None = None,
                   log_lines: int = 40) -> str:
    """What a person would look at when a live chart does not come: the status line,
    the cells' outputs, the kernel's state, the widgets on the page and the end of the
    server's log (the kernels' own stderr goes there)."""
    try:
        parts = [f"{k}: {v}" for k, v in page.evaluate(_DIAGNOSIS_JS).items()]
    except Exception as exc:  # a closed or navigating page
        parts = [f"page unreadable: {exc}"]
    if server is not None:
        parts += ["server log (end):", *server.read_log().splitlines()[-log_lines:]]
    return "\n".join(parts)
