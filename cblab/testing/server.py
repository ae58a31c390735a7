"""A throwaway JupyterLab server for browser tests (`JupyterLabServer`).

    with JupyterLabServer("notebooks", env={"CBLAB_RUN_SECONDS": "30"}) as lab:
        lab.notebook_url("03-live-lab.ipynb")     # a fresh workspace, token included

The facts this encodes (flags, settings) are in shared/NOTES.md, section
"Jupyter: widgets, live charts, headless runs". `LAB_USER_SETTINGS` are also what
`make lab` installs as settings overrides (no news prompt).
"""

from __future__ import annotations

import contextlib
import json
import os
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
from typing import Any

__all__ = ["LAB_USER_SETTINGS", "JupyterLabServer", "JupyterLabStartError", "write_kernelspec"]

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



def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_kernelspec(data_dir: Path, name: str = "python3") -> Path:
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



class JupyterLabStartError(RuntimeError):
    """JupyterLab did not become ready; the message carries the tail of its log."""


class JupyterLabServer:
    """A throwaway ``jupyter lab`` on 127.0.0.1, an ephemeral port and a random token.

    Each instance gets fresh config, runtime, settings and workspaces dirs in a temp
    dir, so nothing from the user's JupyterLab (open tabs, settings, news) leaks in.
    Use as a context manager; on exit every session is deleted (so live loops in the
    kernels stop), then the server's process group is terminated (killed after
    ``stop_timeout``).

    ``user_settings`` replaces `LAB_USER_SETTINGS` (``{}``: JupyterLab's defaults).
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
        user_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.notebook_dir = Path(notebook_dir).resolve()
        if not self.notebook_dir.is_dir():
            raise NotADirectoryError(f"notebook_dir {self.notebook_dir} is not a directory")
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args)
        self.keep_tmp = keep_tmp
        self.user_settings = LAB_USER_SETTINGS if user_settings is None else user_settings
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
        for rel, settings in self.user_settings.items():
            f = dirs["JUPYTERLAB_SETTINGS_DIR"] / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(settings, indent=2))
        # A fresh data dir too (kernels, notebook-signing key): nothing from ~/.local.
        # JupyterLab's own assets and extensions live in sys.prefix, unaffected.
        data_dir = self.tmp_dir / "data"
        write_kernelspec(data_dir)
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

