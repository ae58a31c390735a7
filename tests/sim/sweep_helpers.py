"""Shared pieces of the sweep tests: short scenarios, a real Dask cluster on loopback,
process bookkeeping."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil

from cblab.sim import resolve_scenario
from tests.helpers import eventually_sync

ROOT = Path(__file__).resolve().parents[2]


def short(name: str, scale: float = 0.2):
    return resolve_scenario(name).scaled(scale)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for processes that must import this checkout's cblab."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "FASTMCP_ENABLE_RICH_TRACEBACKS": "false", **extra}


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    return eventually_sync(check, timeout, what, every=0.05)


class DaskCluster:
    """`dask scheduler` + `dask worker` processes on 127.0.0.1, as a person would start them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.file = directory / "scheduler.json"
        self.processes: list[subprocess.Popen] = []
        self.address = ""

    def _spawn(self, *args: str, log: str) -> subprocess.Popen:
        handle = open(self.directory / log, "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([sys.executable, "-m", "dask", *args], env=child_env(),
                                   stdout=handle, stderr=subprocess.STDOUT,
                                   cwd=self.directory)
        handle.close()
        self.processes.append(process)
        return process

    def start(self, workers: int) -> DaskCluster:
        self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(self.file), log="scheduler.log")
        wait_for(self.file.exists, 30, "the dask scheduler's file")

        self.address = wait_for(lambda: _read_json(self.file).get("address"), 30,
                                "the scheduler address")  # type: ignore[assignment]
        for _ in range(workers):
            self.add_worker()
        self.wait_workers(workers)
        return self

    def add_worker(self) -> subprocess.Popen:
        n = len(self.processes)
        return self._spawn("worker", self.address, "--nworkers", "1", "--nthreads", "1",
                           "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                           "--name", f"w{n}", log=f"worker{n}.log")

    def workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=10, set_as_default=False) as client:
            return len(client.scheduler_info()["workers"])

    def wait_workers(self, count: int) -> None:
        wait_for(lambda: self.workers() >= count, 60, f"{count} dask workers")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
        except psutil.NoSuchProcess:
            pass
    return out


def needs_a_missing_module(batch: object) -> object:
    """A task as a worker without the right packages would run it."""
    import cblab_no_such_module  # type: ignore[import-not-found]  # noqa: F401

    return batch
