"""Harness for running cblab's notebooks headless and in a real JupyterLab + Chromium.

Importable without pytest: the test-suite uses it, and so can benchmarks or a script.

Headless (nbclient)::

    nb = execute_notebook("notebooks/01_intro.ipynb", env={"CBLAB_RUN_SECONDS": "3"})

In a browser (JupyterLab + playwright)::

    with JupyterLabServer("notebooks") as lab, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        errors = collect_console_errors(page)
        open_notebook(page, lab, "01_intro.ipynb")
        run_all_cells(page)
        page.wait_for_selector(PLOTLY_SELECTOR, timeout=60_000)

The facts this encodes (flags, settings, selectors) are in shared/NOTES.md, section
"Jupyter: widgets, live charts, headless runs".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # playwright and nbformat are test extras; import them lazily
    import nbformat
    from playwright.sync_api import Browser, Page, Playwright

__all__ = [
    "CHROMIUM_ARGS",
    "DEFAULT_CHROMIUM",
    "PLOTLY_SELECTOR",
    "SLIDER_HANDLE_SELECTOR",
    "JupyterLabServer",
    "JupyterLabStartError",
    "NotebookExecutionError",
    "chromium_path",
    "collect_console_errors",
    "execute_notebook",
    "kernel_status",
    "launch_chromium",
    "open_notebook",
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

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

# User settings that keep JupyterLab quiet and deterministic in tests: no news toast
# covering the page, no update check, and every cell kept in the DOM.
LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
    },
}


def _strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _write_kernelspec(data_dir: Path, name: str = "python3") -> Path:
    """Write a kernelspec under ``data_dir/kernels/name`` that runs *this* interpreter.

    Put ``data_dir`` first on ``JUPYTER_PATH`` (or point a ``KernelSpecManager`` at
    ``data_dir/kernels``) so the kernel is this venv's ipykernel, whatever else is
    installed in the user's or the system's Jupyter dirs.
    """
    from ipykernel.kernelspec import get_kernel_dict  # the installed ipykernel's spec

    spec_dir = data_dir / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = get_kernel_dict()
    spec["argv"] = [
        sys.executable,
        "-Xfrozen_modules=off",
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    spec["display_name"] = "Python 3 (cblab venv)"
    spec.setdefault("metadata", {})["debugger"] = False
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


# --------------------------------------------------------------------------------------
# JupyterLab server
# --------------------------------------------------------------------------------------


class JupyterLabStartError(RuntimeError):
    """JupyterLab did not become ready; the message carries the tail of its log."""


class JupyterLabServer:
    """A throwaway ``jupyter lab`` on 127.0.0.1, an ephemeral port and a random token.

    Each instance gets fresh config, runtime, settings and workspaces dirs in a temp
    dir, so nothing from the user's JupyterLab (open tabs, settings, news) leaks in.
    Use as a context manager; on exit every session is deleted (so live loops in the
    kernels stop), then the server's process group is terminated (killed after
    ``stop_timeout``).

    ``env`` adds variables to the server's environment, which kernels inherit (use it
    for a notebook's parameters). The server log goes to ``log_path`` (default: a file
    in the temp dir, kept with ``keep_tmp=True``); it is quoted when startup fails.
    """

    def __init__(
        self,
        notebook_dir: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 90.0,
        stop_timeout: float = 15.0,
        extra_args: Sequence[str] = (),
        keep_tmp: bool = False,
    ) -> None:
        self.notebook_dir = Path(notebook_dir).resolve()
        if not self.notebook_dir.is_dir():
            raise NotADirectoryError(f"notebook_dir {self.notebook_dir} is not a directory")
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args)
        self.keep_tmp = keep_tmp
        self._log_path_arg = Path(log_path) if log_path is not None else None
        self.token = ""
        self.port = 0
        self.tmp_dir: Path | None = None
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    # -- public API ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, with a trailing slash, e.g. ``http://127.0.0.1:41234/``."""
        return f"http://127.0.0.1:{self.port}/"

    def notebook_url(self, path: str | os.PathLike[str]) -> str:
        """URL that opens ``path`` (relative to the notebook dir) in a fresh workspace.

        A fresh workspace means no tabs are restored from an earlier run, so selectors
        match only this notebook.
        """
        p = Path(path)
        if p.is_absolute():
            p = p.resolve().relative_to(self.notebook_dir)
        quoted = urllib.parse.quote(p.as_posix())
        return f"{self.url}lab/workspaces/{uuid.uuid4().hex}/tree/{quoted}?token={self.token}"

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """Call the server's REST API (``path`` like ``"api/sessions"``); returns JSON."""
        req = urllib.request.Request(
            self.url + path.lstrip("/"),
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def read_log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def start(self) -> JupyterLabServer:
        if self.process is not None:
            raise RuntimeError("JupyterLabServer already started")
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="cblab-jupyterlab-"))
        self.log_path = self._log_path_arg or (self.tmp_dir / "jupyterlab.log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.token = uuid.uuid4().hex + uuid.uuid4().hex
        try:
            # The port is picked by binding to port 0 and released before jupyter binds
            # it; another process can grab it in between, so retry on that only.
            for attempt in range(3):
                self.port = _free_port()
                self._spawn(append_log=attempt > 0)
                try:
                    self._wait_ready()
                    return self
                except JupyterLabStartError:
                    in_use = "already in use" in self.read_log().lower()
                    self._terminate()
                    if not in_use or attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Delete all sessions and kernels, then stop the server. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self._shutdown_kernels()
        self._terminate()
        if self.tmp_dir is not None and not self.keep_tmp:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None

    def __enter__(self) -> JupyterLabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------

    def _command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--notebook-dir={self.notebook_dir}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--expose-app-in-browser",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd + self.extra_args

    def _environment(self) -> dict[str, str]:
        assert self.tmp_dir is not None
        dirs = {
            "JUPYTER_CONFIG_DIR": self.tmp_dir / "config",
            "JUPYTER_RUNTIME_DIR": self.tmp_dir / "runtime",
            "JUPYTERLAB_SETTINGS_DIR": self.tmp_dir / "settings",
            "JUPYTERLAB_WORKSPACES_DIR": self.tmp_dir / "workspaces",
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for rel, settings in LAB_USER_SETTINGS.items():
            f = dirs["JUPYTERLAB_SETTINGS_DIR"] / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(settings, indent=2))
        # A fresh data dir too (kernels, notebook-signing key): nothing from ~/.local.
        # JupyterLab's own assets and extensions live in sys.prefix, unaffected.
        data_dir = self.tmp_dir / "data"
        _write_kernelspec(data_dir)
        env = dict(os.environ)
        env.update({k: str(v) for k, v in dirs.items()})
        env["JUPYTER_DATA_DIR"] = str(data_dir)
        env["JUPYTER_PATH"] = os.pathsep.join(
            [str(data_dir)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
        )
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        return env

    def _spawn(self, append_log: bool) -> None:
        assert self.log_path is not None
        cmd = self._command()
        with open(self.log_path, "ab" if append_log else "wb") as log:
            log.write(("$ " + " ".join(cmd).replace(self.token, "<token>") + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                cwd=self.notebook_dir,
                start_new_session=True,  # own process group: terminate it as a whole
            )

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        status_url = f"{self.url}api/status?token={self.token}"
        last_error = "no answer yet"
        while True:
            rc = self.process.poll()
            if rc is not None:
                raise JupyterLabStartError(
                    f"jupyter lab exited with code {rc} during startup\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(status_url, timeout=2) as resp:
                    if resp.status == 200:
                        json.loads(resp.read())
                        return
                    last_error = f"HTTP {resp.status}"
            except (OSError, ValueError) as e:  # URLError, refused, reset, bad JSON
                last_error = repr(e)
            if time.monotonic() > deadline:
                raise JupyterLabStartError(
                    f"jupyter lab not ready on {self.url} after {self.startup_timeout:.0f} s"
                    f" (last: {last_error})\n{self._log_tail()}"
                )
            time.sleep(0.1)  # poll interval, not a wait for an event

    def _log_tail(self, lines: int = 40) -> str:
        tail = "\n".join(self.read_log().splitlines()[-lines:])
        return f"--- last lines of {self.log_path} ---\n{tail}"

    def _shutdown_kernels(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for s in self.api("GET", "api/sessions") or []:
                with contextlib.suppress(OSError, ValueError):
                    self.api("DELETE", f"api/sessions/{s['id']}", timeout=self.stop_timeout)
        with contextlib.suppress(OSError, ValueError):
            for k in self.api("GET", "api/kernels") or []:
                with contextlib.suppress(OSError, ValueError):
                    self.api("DELETE", f"api/kernels/{k['id']}", timeout=self.stop_timeout)

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=self.stop_timeout)
        # Reap leftovers in the group (the server itself is gone by now).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------
# Chromium + playwright page helpers
# --------------------------------------------------------------------------------------


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


def collect_console_errors(page: Page) -> list[str]:
    """Start collecting console errors and uncaught page errors; returns a live list.

    Call it before ``page.goto`` to see errors from page load.
    """
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"console.error: {msg.text}")

    def on_pageerror(exc: Any) -> None:
        errors.append(f"pageerror: {exc}")

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


# --------------------------------------------------------------------------------------
# Headless execution (nbclient)
# --------------------------------------------------------------------------------------


class NotebookExecutionError(RuntimeError):
    """A notebook cell failed (or timed out, or the kernel died) during execution."""

    def __init__(
        self,
        notebook: str,
        cell_index: int | None,
        source: str,
        detail: str,
        *,
        ename: str = "",
        evalue: str = "",
    ) -> None:
        self.notebook = notebook
        self.cell_index = cell_index
        self.source = source
        self.detail = detail
        self.ename = ename
        self.evalue = evalue
        where = f"cell {cell_index}" if cell_index is not None else "kernel setup"
        bar = "-" * 60
        super().__init__(
            f"{notebook}: {where} failed: {ename or 'error'}: {evalue}\n"
            f"{bar}\n{source}\n{bar}\n{detail}"
        )


def execute_notebook(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    *,
    startup_timeout: float = 120.0,
    save_to: str | os.PathLike[str] | None = None,
) -> nbformat.NotebookNode:
    """Execute a notebook headless with this venv's ipykernel; return the executed node.

    ``env`` is added to the kernel's environment (on top of ``os.environ``); the kernel
    runs in the notebook's directory. ``timeout`` is per cell (seconds), as in nbclient.
    Widget state is not stored (``store_widget_state=False``). ``save_to`` writes the
    executed notebook (also when a cell fails) for inspection.

    Raises :class:`NotebookExecutionError` with the failing cell's source and its
    traceback (ANSI colours stripped).
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb_path = Path(path).resolve()
    nb = nbformat.read(nb_path, as_version=4)
    current: dict[str, Any] = {"index": None, "source": ""}

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        current["index"] = cell_index
        current["source"] = cell.source

    kernel_env = dict(os.environ)
    kernel_env.update({k: str(v) for k, v in (env or {}).items()})
    kernel_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

    with tempfile.TemporaryDirectory(prefix="cblab-kernelspec-") as tmp:
        _write_kernelspec(Path(tmp))
        ksm = KernelSpecManager(kernel_dirs=[str(Path(tmp) / "kernels")])
        km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ksm)
        client = NotebookClient(
            nb,
            km=km,
            kernel_name="python3",
            timeout=timeout,
            startup_timeout=int(startup_timeout),
            store_widget_state=False,
            allow_errors=False,
            record_timing=True,
            resources={"metadata": {"path": str(nb_path.parent)}},
            on_cell_execute=on_cell_execute,
        )
        try:
            # We pass our own kernel manager, so ask nbclient to shut the kernel down.
            client.execute(env=kernel_env, cleanup_kc=True)
        except CellExecutionError as e:
            raise NotebookExecutionError(
                str(nb_path),
                current["index"],
                current["source"],
                _strip_ansi(e.traceback),
                ename=e.ename,
                evalue=e.evalue,
            ) from None
        except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as e:
            raise NotebookExecutionError(
                str(nb_path),
                current["index"],
                current["source"],
                _strip_ansi(str(e)),
                ename=type(e).__name__,
                evalue=f"(per-cell timeout {timeout:.0f} s)"
                if isinstance(e, CellTimeoutError | TimeoutError)
                else "",
            ) from e
        finally:
            _ensure_kernel_dead(km)
            if save_to is not None:
                Path(save_to).parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, save_to)
    return nb


def _ensure_kernel_dead(km: Any) -> None:
    """Best effort: kill the kernel process if nbclient left it running."""
    provisioner = getattr(km, "provisioner", None)
    proc = getattr(provisioner, "process", None)
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
