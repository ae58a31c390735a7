"""Where a sweep's batches run: this process, a local process pool, or Dask.

    with DaskExecutor("tcp://10.0.0.5:8786") as executor:   # or DaskExecutor() for a LocalCluster
        for index, result in executor.run(function, batches):
            ...                                             # as each batch finishes

Every executor has the same shape: a context manager whose `run(function,
batches)` yields `(batch index, function(batch))` as batches complete, in
whatever order they finish (the caller puts results back in order). Leaving the
`with` block, normally or by an exception such as KeyboardInterrupt, cancels
what is still queued and stops the processes the executor started: nothing of
ours outlives it. An executor can be entered again while open (a notebook can
keep one cluster for several sweeps); only the outermost exit closes it.

The local pool needs nothing beyond the standard library; `DaskExecutor` needs
`dask.distributed` (`pip install 'cblab[dask]'`), imported only when used. Dask
workers must be able to import cblab (same version) to run the batches.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "InProcessExecutor",
    "LocalExecutor",
    "resolve_executor",
]


class ExecutorError(ValueError):
    """An executor cannot be set up (bad option, missing extra, unreachable scheduler)."""


def max_local_workers() -> int:
    """Processes a sweep may start on this machine: 4 per core (at least 64). A pool
    forks all its workers at once, so `workers=100000` would fork 100,000 processes."""
    return max(64, 4 * (os.cpu_count() or 1))


def _workers(workers: Any, what: str = "workers") -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ExecutorError(f"{what} must be an integer >= 1, got {workers!r}")
    if workers > max_local_workers():
        raise ExecutorError(f"{what} must be at most {max_local_workers()} on this machine "
                            f"(4 per core), got {workers}")
    return workers


class Executor:
    """Base: a re-entrant context manager around `_open` / `_close`."""

    name = "executor"

    def __init__(self) -> None:
        self._depth = 0

    def __enter__(self) -> Executor:
        if self._depth == 0:
            self._open()
        self._depth += 1
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._close(interrupted=kind is not None)

    def _open(self) -> None:
        pass

    def _close(self, *, interrupted: bool) -> None:
        pass

    @property
    def parallelism(self) -> int:
        """How many batches run at once (used to size batches)."""
        return 1

    def describe(self) -> dict[str, Any]:
        """What ran the sweep, for the result's metadata."""
        return {"executor": self.name, "workers": self.parallelism}

    def run(self, function: Callable[[Any], Any], batches: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError


class InProcessExecutor(Executor):
    """One batch after the other, in this process (no start-up cost; Ctrl-C stops at once)."""

    name = "local"

    def run(self, function: Callable[[Any], Any], batches: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for index, batch in enumerate(batches):
            yield index, function(batch)


def _ignore_sigint() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the workers leave it to
    # the parent, which cancels the sweep and terminates them (no tracebacks x N).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor(Executor):
    """A `ProcessPoolExecutor` of `workers` processes (default: every core)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        self.workers = _workers(workers) or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    @property
    def parallelism(self) -> int:
        return self.workers

    def _open(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_ignore_sigint)

    def _close(self, *, interrupted: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if not interrupted:
            pool.shutdown(wait=True)
            return
        # Terminate rather than wait: after an interrupt the workers may be deep in a
        # batch, and shutdown(wait=True) would sit until it finished.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    def run(self, function: Callable[[Any], Any], batches: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if self._pool is None:
            raise RuntimeError("LocalExecutor.run outside its `with` block")
        futures: dict[Future[Any], int] = {
            self._pool.submit(function, batch): index for index, batch in enumerate(batches)
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield futures[future], future.result()
        finally:
            for future in pending:
                future.cancel()


#: Dask settings for a LocalCluster this executor starts (its scheduler and workers
#: read them when it starts). Every Dask server polls itself in the background: its
#: event loop's health 50 times a second, host and memory figures 2 and 10 times a
#: second, and a worker samples its task's stack 100 times a second for the
#: dashboard's profile. A 2-worker cluster then costs 8 % of a core doing nothing, for
#: a dashboard this cluster does not serve; with these, 1.5 %.
_LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "500ms",
}

_DASK_LOGGERS = ("distributed.client", "distributed.utils", "distributed.core")


class _LostSchedulerFilter(logging.Filter):
    """Losing the scheduler is reported by `DaskExecutor.run` in one line: drop
    distributed's own reports of it (a reconnect error, tracebacks while closing)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.lost or str(record.msg).startswith("Failed to reconnect to scheduler"))


class DaskExecutor(Executor):
    """Batches as Dask tasks: on an existing cluster (`scheduler` address or a
    `distributed.Client`), or on a `LocalCluster` of `workers` processes started here.

    Tasks lost with a worker are re-run by Dask on another one; results come back
    as they finish (`distributed.as_completed`).
    """

    name = "dask"

    def __init__(self, scheduler: Any = None, *, workers: int | None = None,
                 connect_timeout: float = 5.0) -> None:
        super().__init__()
        if scheduler is not None and not isinstance(scheduler, str) and not hasattr(
                scheduler, "submit"):
            raise ExecutorError(
                f"scheduler must be an address such as tcp://127.0.0.1:8786 or a "
                f"distributed.Client, got {scheduler!r}")
        if isinstance(scheduler, str) and not scheduler.strip():
            raise ExecutorError("scheduler address is empty")
        if scheduler is not None and workers is not None:
            raise ExecutorError("workers sets the size of a LocalCluster; "
                                "an existing cluster (scheduler) has its own workers")
        self.scheduler = scheduler
        self.workers = _workers(workers)
        self.connect_timeout = connect_timeout
        self.client: Any = None
        self._cluster: Any = None
        self._own_client = False
        self._lost = False
        self._quiet = _LostSchedulerFilter()

    def _open(self) -> None:
        try:
            import distributed
        except ImportError:
            raise ExecutorError("the dask executor needs dask.distributed: "
                                "pip install 'cblab[dask]'") from None
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            self.client, self._own_client = self.scheduler, False
            return
        if isinstance(self.scheduler, str):
            for name in _DASK_LOGGERS:
                logging.getLogger(name).addFilter(self._quiet)
            try:
                self.client = distributed.Client(self.scheduler, timeout=self.connect_timeout,
                                                 set_as_default=False)
            except (OSError, TimeoutError, ValueError, TypeError) as exc:
                raise ExecutorError(
                    f"cannot reach the Dask scheduler at {self.scheduler!r}: "
                    f"{exc or type(exc).__name__}") from None
        else:
            import dask

            try:
                with warnings.catch_warnings(), dask.config.set(_LOCAL_CLUSTER_CONFIG):
                    # "Port 8787 is already in use": its health routes move to a free port
                    warnings.filterwarnings("ignore", message="Port .* is already in use")
                    self._cluster = distributed.LocalCluster(
                        n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1,
                        processes=True, host="127.0.0.1", dashboard_address=None,
                        silence_logs=logging.ERROR)
            except RuntimeError as exc:
                raise ExecutorError(
                    f"could not start a Dask LocalCluster ({exc}); in a script, start the "
                    "sweep under `if __name__ == \"__main__\":` (workers re-import it)") from None
            self.client = distributed.Client(self._cluster, set_as_default=False)
        self._own_client = True

    def _close(self, *, interrupted: bool) -> None:
        client, cluster = self.client, self._cluster
        self.client, self._cluster = None, None
        if client is not None and self._own_client:
            # a lost scheduler: nothing to say goodbye to, do not wait for it
            client.close(**({"timeout": 1} if self._lost else {}))
        if cluster is not None:
            cluster.close()
        for name in _DASK_LOGGERS:
            logging.getLogger(name).removeFilter(self._quiet)

    @property
    def parallelism(self) -> int:
        if self.client is None:
            return self.workers or 1
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def describe(self) -> dict[str, Any]:
        address = getattr(self.client, "scheduler", None)
        return {"executor": self.name, "workers": self.parallelism,
                "scheduler": getattr(address, "address", None) if self._cluster is None
                else "LocalCluster"}

    def run(self, function: Callable[[Any], Any], batches: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if self.client is None:
            raise RuntimeError("DaskExecutor.run outside its `with` block")
        from distributed import as_completed
        from distributed.client import FutureCancelledError

        # what losing the scheduler looks like from here (a closed comm is an OSError;
        # futures are cancelled when the client gives up reconnecting)
        lost = (OSError, TimeoutError, FutureCancelledError)
        address = self.describe().get("scheduler")
        token = uuid.uuid4().hex[:12]
        futures = [self.client.submit(function, batch, pure=False, key=f"cblab-sweep-{token}-{i}")
                   for i, batch in enumerate(batches)]
        index = {future.key: i for i, future in enumerate(futures)}
        finished: set[int] = set()
        try:
            try:
                for future in as_completed(futures, loop=self.client.loop):
                    try:
                        result = future.result()
                    except ImportError as exc:  # raised on a worker, re-raised here
                        raise ExecutorError(
                            f"the Dask workers cannot import what the sweep needs ({exc}): "
                            "install the same cblab in the workers' environment") from None
                    finished.add(index[future.key])
                    future.release()
                    yield index[future.key], result
            except lost as exc:
                self._lost = self._quiet.lost = True
                raise ExecutorError(
                    f"lost the Dask scheduler at {address} mid-sweep "
                    f"({type(exc).__name__}); {len(finished)} of {len(futures)} batches "
                    "had finished") from None
        finally:
            outstanding = [f for i, f in enumerate(futures) if i not in finished]
            if outstanding and self.client is not None and not self._lost:
                self.client.cancel(outstanding)


def resolve_executor(executor: Any = "local", *, workers: int | None = None,
                     scheduler: Any = None) -> Executor:
    """"local" (a process pool; in this process when `workers` is 1), "dask"
    (a LocalCluster, or the cluster at `scheduler`), or an `Executor`/`distributed.Client`."""
    if isinstance(executor, Executor):
        if workers is not None or scheduler is not None:
            raise ExecutorError("workers and scheduler configure a new executor; "
                                "pass them to the executor you built instead")
        return executor
    if hasattr(executor, "submit") and hasattr(executor, "scheduler_info"):
        return DaskExecutor(executor)
    if executor == "local":
        if scheduler is not None:
            raise ExecutorError("scheduler is for the dask executor; use executor='dask'")
        count = _workers(workers) or os.cpu_count() or 1
        return InProcessExecutor() if count == 1 else LocalExecutor(count)
    if executor == "dask":
        return DaskExecutor(scheduler, workers=workers)
    raise ExecutorError(f"unknown executor {executor!r}; executors: local, dask "
                        "(or an Executor / distributed.Client)")
