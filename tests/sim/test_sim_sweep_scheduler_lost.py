"""Issue 20 item 7: a Dask scheduler killed mid-sweep is one line and exit 2, with no
partial output (today: a 27-line traceback)."""

from __future__ import annotations

import subprocess

from cblab.sim.cache import ResultCache

from .cli_process import CBLAB
from .sweep_helpers import DaskCluster, child_env, wait_for


def test_a_scheduler_killed_mid_sweep_is_one_line_and_exit_2(tmp_path):
    cluster = DaskCluster(tmp_path).start(workers=1)
    out = tmp_path / "sweep.csv"
    cache = ResultCache(tmp_path / "cache")
    try:
        sweep = subprocess.Popen(
            [CBLAB, "sweep", "--param", "failure_threshold=2,3,4,5,6,7,8,9",
             "--param", "timeout=1,2,4,8", "--seeds", "3", "--executor", "dask",
             "--scheduler", cluster.address, "--batch-size", "1", "--no-progress",
             "--cache-dir", str(cache.path), "-o", str(out)],
            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(cache.entries()) >= 3 or sweep.poll() is not None, 180,
                     "the sweep to make progress")
            assert sweep.poll() is None, "the sweep finished before the kill: make it longer"
            cluster.processes[0].kill()  # the scheduler
            stdout, stderr = sweep.communicate(timeout=120)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.wait()
    finally:
        cluster.stop()
    assert sweep.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("cblab sweep: error: ") and "scheduler" in lines[0]
    assert "finished runs are in the cache" in lines[0]
    assert not out.exists() and stdout == ""  # no partial output
