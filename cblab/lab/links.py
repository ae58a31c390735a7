"""Links to files the notebooks write (reports), that open in a real browser tab.

A relative link in a notebook's output opens inside JupyterLab: HTML files in its
sandboxed viewer, where a report's scripts are blocked (blank charts) until the
reader presses "Trust HTML", or, from a widget, as a second JupyterLab tab. The
Jupyter server serves every file under its root at ``<base_url>files/<path>``
(with scripts allowed, in a sandboxed origin of their own), so the notebooks link
there, in a new tab. Outside a Jupyter server (nbclient, a script) the link is the
file's ``file://`` URL.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from urllib.parse import quote

__all__ = ["file_url", "report_link_html"]


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


def report_link_html(path: str | os.PathLike[str], label: str = "Report") -> str:
    """An HTML link to a report that opens in a new browser tab."""
    shown = escape(Path(path).name)
    return (f'{escape(label)}: <a class="cblab-report-link" href="{escape(file_url(path))}" '
            f'target="_blank" rel="noopener">{shown}</a> '
            '<span style="color:#6b7280">(opens in a new tab)</span>')
