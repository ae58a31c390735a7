"""A read-only HTTP server on 127.0.0.1 for the reports a notebook writes.

The Jupyter server serves a report at ``/files/...`` inside a sandbox (an opaque
origin): the browser then sends no Referer with the report's own links, and the
Jupyter server refuses them ("Blocking request from unknown origin", 403), so a
report's ``events.csv`` and ``run.json`` could not be opened from it. When the
Jupyter server is on this machine, the notebooks link to this server instead: one
per report directory, in a daemon thread of the kernel, on an ephemeral loopback
port. It serves files under that directory only (no listing), answers GET and HEAD
only, and refuses a Host header other than its own address (DNS rebinding).
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

__all__ = ["ReportServer", "report_server"]


class _Handler(SimpleHTTPRequestHandler):
    def _host_ok(self) -> bool:
        port = cast(ThreadingHTTPServer, self.server).server_port
        return self.headers.get("Host", "") in (f"127.0.0.1:{port}", f"localhost:{port}")

    def send_head(self) -> Any:
        if not self._host_ok():
            self.send_error(403, "Host not allowed")
            return None
        if self.path == "/favicon.ico":  # asked by every browser tab: "none", not a 404
            self.send_response(204)
            self.end_headers()
            return None
        return super().send_head()

    def list_directory(self, path: Any) -> None:
        self.send_error(404, "No listing")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a kernel's stderr is the notebook's: keep it quiet


class ReportServer:
    """Serves `root` at ``http://127.0.0.1:<port>/``; `url(path)` for a file under it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        handler = functools.partial(_Handler, directory=str(self.root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       name=f"cblab-reports-{self.port}")
        self.thread.start()

    def url(self, path: Path) -> str:
        relative = path.resolve().relative_to(self.root)
        return f"http://127.0.0.1:{self.port}/{quote(relative.as_posix())}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_servers: dict[Path, ReportServer] = {}
_lock = threading.Lock()


def report_server(directory: Path) -> ReportServer:
    """The server for `directory` (started on first use, then reused)."""
    root = directory.resolve()
    with _lock:
        server = _servers.get(root)
        if server is None:
            server = _servers[root] = ReportServer(root)
        return server
