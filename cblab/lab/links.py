"""Links to files the notebooks write (reports), that open in a real browser tab.

A relative link in a notebook's output opens inside JupyterLab: HTML files in its
sandboxed viewer, where a report's scripts are blocked (blank charts) until the
reader presses "Trust HTML", or, from a widget, as a second JupyterLab tab. The
Jupyter server serves every file under its root at ``<base_url>files/<path>``
(with scripts allowed, in a sandboxed origin of their own), so the notebooks link
there, in a new tab. Outside a Jupyter server (nbclient, a script) the link is the
file's ``file://`` URL.

A report links to its data (``events.csv``, ``run.json``); the Jupyter server
refuses those links from a page it serves sandboxed. So when the Jupyter server
runs on this machine (``make lab``), report links go to a loopback server for the
report's directory (`cblab.lab.report_server`) instead.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from urllib.parse import quote

__all__ = ["file_url", "report_link_html", "report_url"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _servers() -> list[dict[str, object]]:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return []
    try:
        return list(list_running_servers())
    except OSError:
        return []


def file_url(path: str | os.PathLike[str]) -> str:
    """The URL a browser opens `path` at: the running Jupyter server's ``/files/``
    route when the file is under its root (the server that started this kernel
    first), else a ``file://`` URL."""
    target = Path(path).resolve()
    servers = _servers()
    # The kernel's own server: its root holds the notebook the kernel runs for.
    session = os.environ.get("JPY_SESSION_NAME")
    if session:
        servers.sort(key=lambda s: not _under(Path(session), s))
    for server in servers:
        root = Path(str(server.get("root_dir") or "")).resolve()
        try:
            relative = target.relative_to(root)
        except ValueError:
            continue
        base = str(server.get("base_url") or "/")
        return base.rstrip("/") + "/files/" + quote(relative.as_posix())
    return target.as_uri()


def _under(path: Path, server: dict[str, object]) -> bool:
    root = Path(str(server.get("root_dir") or "/"))
    full = path if path.is_absolute() else root / path
    return full.resolve().is_relative_to(root.resolve()) and full.exists()


def report_url(path: str | os.PathLike[str]) -> str:
    """Where a person opens a report with working data links: the loopback report
    server when the Jupyter server is on this machine, else `file_url`."""
    servers = _servers()
    if servers and all(str(s.get("hostname") or "") in _LOOPBACK for s in servers):
        from .report_server import report_server

        target = Path(path).resolve()
        return report_server(target.parent).url(target)
    return file_url(path)


def report_link_html(path: str | os.PathLike[str], label: str = "Report") -> str:
    """An HTML link to a report that opens in a new browser tab."""
    shown = escape(Path(path).name)
    return (f'{escape(label)}: <a class="cblab-report-link" href="{escape(report_url(path))}" '
            f'target="_blank" rel="noopener">{shown}</a> '
            '<span style="color:#6b7280">(opens in a new tab)</span>')
