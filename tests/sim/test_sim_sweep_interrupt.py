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
