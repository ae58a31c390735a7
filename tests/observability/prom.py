"""A real Prometheus for tests: loopback, ephemeral port, 1 s scrape and evaluation,
storage in a temporary directory; stopped (and waited for) on exit."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from cblab.stores.server import free_port

from ..helpers import eventually_sync

PROMETHEUS = shutil.which("prometheus")


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str], rules: list[Path]) -> None:
        self.workdir = workdir
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(r) for r in rules],
            "scrape_configs": [{"job_name": "cblab", "metrics_path": "/metrics",
                                "static_configs": [{"targets": targets}]}],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, attempts: int = 3) -> Prometheus:
        assert PROMETHEUS is not None
        for _ in range(attempts):  # a port picked free may be taken before we bind it
            port = free_port()
            log = (self.workdir / "prometheus.log").open("wb")
            self.process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
            log.close()
            self.url = f"http://127.0.0.1:{port}"
            try:
                eventually_sync(self._ready, timeout=30, what="prometheus /-/ready")
                return self
            except AssertionError:
                self.stop()
        raise AssertionError("prometheus did not start:\n" + self.log()[-2000:])

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError("prometheus exited:\n" + self.log()[-2000:])
        try:
            return httpx.get(self.url + "/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:  # SIGTERM not heeded in time
            process.kill()
            process.wait()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_for(check: Any, what: str, timeout: float = 60.0) -> Any:
    """`eventually_sync` with a deadline fit for a loaded machine and 1 s scrapes."""
    return eventually_sync(check, timeout=timeout, what=what, every=0.1)


__all__ = ["PROMETHEUS", "Prometheus", "wait_for"]
