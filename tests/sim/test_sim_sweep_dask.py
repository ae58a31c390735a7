"""Sweeps on a real Dask cluster: `dask scheduler` and `dask worker` processes on loopback.

The frame must equal the local pool's, row for row; a worker killed mid-sweep
must not lose or repeat a point; a scheduler that is not there is a clear error.
"""

from __future__ import annotations

import threading

import pytest

from cblab.sim.cache import ResultCache
from cblab.sim.cli import sweep_main
from cblab.sim.executors import DaskExecutor, ExecutorError
from cblab.sim.sweep import SweepError, sweep

from .sweep_helpers import DaskCluster, needs_a_missing_module, short, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = DaskCluster(tmp_path_factory.mktemp("dask")).start(workers=2)
    try:
        yield running
    finally:
        running.stop()


GRID = {"failure_threshold": [2, 5], "timeout": [1.0, 4.0]}


def test_a_dask_sweep_equals_the_local_pool(cluster):
    scenarios = [short("outage-and-recovery"), short("flapping")]
    local = sweep(GRID, scenarios, [0, 1, "x"], workers=2, progress=False)
    remote = sweep(GRID, scenarios, [0, 1, "x"], executor="dask", scheduler=cluster.address,
                   batch_size=3, progress=False)
    assert len(remote) == 4 * 2 * 3
    assert remote.equals(local)
    meta = remote.attrs["sweep"]
    assert meta["executor"] == "dask" and meta["scheduler"] == cluster.address
    assert meta["workers"] == 2 and meta["batches"] == 8


def test_an_open_executor_serves_several_sweeps(cluster):
    with DaskExecutor(cluster.address) as executor:
        first = sweep({"timeout": [1.0, 2.0]}, short("hang"), 2, executor=executor,
                      progress=False)
        second = sweep({"timeout": [1.0, 2.0]}, short("hang"), 2, executor=executor,
                       progress=False)
        assert executor.client is not None  # still open between sweeps
    assert executor.client is None
    assert first.equals(second)


def test_a_worker_killed_mid_sweep_loses_no_point(cluster, tmp_path):
    victim = cluster.add_worker()
    cluster.wait_workers(3)
    grid = {"failure_threshold": [2, 3, 4, 5, 6], "timeout": [1.0, 2.0, 4.0, 8.0]}
    scenario = short("outage-and-recovery", 1.0)
    seeds = [0, 1, 2]
    total = 5 * 4 * 3
    cache = ResultCache(tmp_path / "cache")
    seen: dict[str, int] = {}

    def kill_once_started() -> None:
        wait_for(lambda: len(cache.entries()) >= 4, 120, "the sweep to make progress")
        seen["at_kill"] = len(cache.entries())
        victim.kill()
        victim.wait(timeout=10)

    killer = threading.Thread(target=kill_once_started, daemon=True)
    killer.start()
    table = sweep(grid, scenario, seeds, executor="dask", scheduler=cluster.address,
                  batch_size=1, cache=cache, progress=False)
    killer.join(timeout=30)
    assert victim.poll() is not None, "the worker was not killed"
    assert seen["at_kill"] < total, "the sweep finished before the kill: make it longer"
    # every point exactly once, and the same figures the local pool computes
    assert len(table) == total
    assert not table.duplicated(["failure_threshold", "timeout", "seed"]).any()
    local = sweep(grid, scenario, seeds, workers=2, progress=False)
    assert table.equals(local)
    wait_for(lambda: cluster.workers() == 2, 30, "the scheduler to drop the killed worker")


def test_an_unreachable_scheduler_is_a_clear_error(capsys):
    with pytest.raises(SweepError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"):
        sweep({"timeout": [1.0]}, short("hang"), 1,
              executor=DaskExecutor("tcp://127.0.0.1:9", connect_timeout=2), progress=False)
    code = sweep_main(["--param", "timeout=1,2", "--scenario", "hang", "--seeds", "1",
                       "--no-cache", "--no-progress", "--executor", "dask",
                       "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in err
    assert "Traceback" not in err


def test_cli_sweep_on_the_cluster_writes_parquet(cluster, tmp_path, capsys):
    out = tmp_path / "sweep.parquet"
    code = sweep_main(["--param", "failure_threshold=2,5", "--scenario", "hang", "--seeds", "2",
                       "--deadline", "1", "--no-cache", "--no-progress", "--executor", "dask",
                       "--scheduler", cluster.address, "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    import pandas as pd

    table = pd.read_parquet(out)
    assert len(table) == 4 and table.attrs["sweep"]["executor"] == "dask"
    assert table.attrs["sweep"]["options"]["deadline_s"] == 1.0


def test_workers_that_cannot_import_cblab_are_a_clear_error(cluster):
    with DaskExecutor(cluster.address) as executor, pytest.raises(
            ExecutorError, match=r"workers cannot import .*cblab_no_such_module"):
        list(executor.run(needs_a_missing_module, [[1], [2]]))
