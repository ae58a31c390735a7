"""Ctrl-C (a terminal's SIGINT to the process group) or a notebook's interrupt (SIGINT to
the kernel process alone) stops `cblab sweep`: exit 130, no process of ours left, no
output file, and what finished is in the cache for the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from cblab.sim.cache import ResultCache

from .sweep_helpers import alive, child_env, descendants, wait_for

ARGS = ["--param", "failure_threshold=2,3,4,5,6,7", "--param", "timeout=1,2,4,8",
        "--scenario", "outage-and-recovery", "--seeds", "50", "--batch-size", "2",
        "--workers", "2", "--no-progress"]


@pytest.mark.parametrize(("executor", "to_group"), [("local", True), ("dask", False)])
def test_interrupting_a_sweep_leaves_nothing_behind(tmp_path, executor, to_group):
    out = tmp_path / "sweep.parquet"
    cache = ResultCache(tmp_path / "cache")
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cblab.cli import main; sys.exit(main())",
         "sweep", *ARGS, "--executor", executor, "--cache-dir", str(cache.path), "-o", str(out)],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        # batches are coming back from the workers: the sweep is well under way
        wait_for(lambda: len(cache.entries()) >= 6 or process.poll() is not None, 120,
                 "the sweep to make progress")
        assert process.poll() is None, process.communicate()
        workers = descendants(process.pid)
        assert len(workers) >= 2, "expected the sweep's worker processes"
        if to_group:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    wait_for(lambda: not alive(workers), 20, "the sweep's worker processes to end")
    assert not out.exists()
    assert list(tmp_path.glob(".sweep.parquet*")) == []
    done = len(cache.entries())
    assert 0 < done < 6 * 4 * 50


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_notebook_interrupt_stops_an_in_process_sweep(tmp_path, executor):
    """The kernel's interrupt is a KeyboardInterrupt in the main thread, mid-sweep."""
    import _thread
    import threading

    import psutil

    from cblab.sim.sweep import sweep

    cache = ResultCache(tmp_path / "cache")
    seen: dict[str, list[psutil.Process]] = {}
    # Children started before the sweep (session fixtures of other test modules, such as a
    # redis-server or JupyterLab) are not the sweep's and outlive it on purpose.
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    def interrupt_once_running() -> None:
        wait_for(lambda: len(cache.entries()) >= 6, 120, "the sweep to make progress")
        # multiprocessing's resource tracker serves the whole interpreter and ends with
        # it: not one of the sweep's processes
        seen["workers"] = [p for p in psutil.Process().children(recursive=True)
                           if p.pid not in before
                           and "multiprocessing.resource_tracker" not in _cmdline(p)]
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        sweep({"failure_threshold": [2, 3, 4, 5, 6, 7], "timeout": [1, 2, 4, 8]},
              "outage-and-recovery", 50, executor=executor, workers=2, batch_size=2,
              cache=cache, progress=False)
    assert len(seen["workers"]) >= 2
    wait_for(lambda: not alive(seen["workers"]), 20, "the sweep's worker processes to end")
    assert 0 < len(cache.entries()) < 6 * 4 * 50


def test_progress_moves_on_dask_too(capsys):
    from cblab.sim.sweep import sweep

    from .sweep_helpers import short

    sweep({"failure_threshold": [2, 3, 4]}, short("hang"), 4, executor="dask", workers=2,
          batch_size=3)
    err = capsys.readouterr().err
    assert "sweep (dask)" in err and "12/12" in err


def _cmdline(process) -> str:
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""
