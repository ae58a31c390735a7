"""A regular install works: build the wheel, install it into a fresh venv, run cblab
from a directory outside the checkout.

The wheel is built offline from a copy of the checkout (`pip wheel --no-deps
--no-build-isolation --no-index`, so the setuptools of the test's environment
builds it and the checkout gets no build/ directory). The fresh venv has no pip
and no cblab: the wheel goes in with `pip --python`, and the dependencies
(fastmcp, pandas, ...) come from the test environment's site-packages through a
plain path in a `.pth` file. A plain path runs none of that directory's `.pth`
hooks, so an editable cblab installed there stays invisible: the test checks
that `cblab` is imported from the venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.helpers import eventually_sync

CHECKOUT = Path(__file__).resolve().parents[2]
SHIPPED = ("pyproject.toml", "README.md", "cblab", "data", "notebooks")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in SHIPPED:
        path = CHECKOUT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(root / "dist"), str(src)],
        check=True, capture_output=True, text=True,
    )
    (built,) = (root / "dist").glob("cblab-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", str(wheel)],
        check=True, capture_output=True, text=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(site) / "_cblab_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no `data/`, `notebooks/` or `cblab/` in sight."""
    work = tmp_path / "work"
    work.mkdir()
    return work


def run_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "CBLAB_DATA_DIR", "VIRTUAL_ENV"}}
    env["FASTMCP_ENABLE_RICH_TRACEBACKS"] = "false"
    return env


def cblab(venv: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "cblab"), *args], cwd=cwd, env=run_env(),
                          capture_output=True, text=True, timeout=timeout)


def printed_by(venv: Path, cwd: Path, code: str) -> list[str]:
    """The lines the venv's python prints running `code`."""
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, env=run_env(),
                          capture_output=True, text=True, check=True).stdout.split()


def test_the_wheel_carries_the_runtime_files_and_no_top_level_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cblab/py.typed" in names
    for path in (CHECKOUT / "data").rglob("*"):
        if path.is_file():
            assert f"cblab/_data/{path.relative_to(CHECKOUT / 'data').as_posix()}" in names, path
    for path in (CHECKOUT / "notebooks").glob("*.ipynb"):
        assert f"cblab/_notebooks/{path.name}" in names
    for folder, dirs, files in os.walk(CHECKOUT / "cblab"):  # package files (Lua, report assets)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not (Path(folder) / d).is_symlink()]
        for name in files:
            path = Path(folder, name).relative_to(CHECKOUT).as_posix()
            assert path in names, f"{path} is missing from the wheel: add it to package-data"
    assert not [name for name in names if name.split("/")[0] in {"data", "notebooks", "tests"}]


def test_installed_cblab_is_the_wheel_not_the_checkout(venv: Path, elsewhere: Path) -> None:
    out = printed_by(venv, elsewhere,
                     "import cblab, cblab.faults as f; print(cblab.__file__); print(f.data_dir())")
    assert all(Path(line).is_relative_to(venv) for line in out), out
    assert not Path(out[1]).is_symlink()


def test_simulate_finds_the_shipped_scenarios(venv: Path, elsewhere: Path) -> None:
    done = cblab(venv, elsewhere, "simulate", "outage-and-recovery", "--time-scale", "0.1",
                 "-o", "events.csv")
    assert done.returncode == 0, done.stderr
    assert "detection time" in done.stdout
    assert (elsewhere / "events.csv").stat().st_size > 0


def test_data_dir_override_still_wins(venv: Path, elsewhere: Path) -> None:
    (elsewhere / "mine" / "scenarios").mkdir(parents=True)
    shutil.copy(CHECKOUT / "data" / "scenarios" / "hang.json",
                elsewhere / "mine" / "scenarios" / "only-mine.json")
    text = (elsewhere / "mine" / "scenarios" / "only-mine.json").read_text()
    (elsewhere / "mine" / "scenarios" / "only-mine.json").write_text(
        text.replace('"name": "hang"', '"name": "only-mine"'))
    env = {**run_env(), "CBLAB_DATA_DIR": str(elsewhere / "mine")}
    done = subprocess.run([str(venv / "bin" / "cblab"), "simulate", "outage-and-recovery"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "available: only-mine" in done.stderr


def test_serve_starts_with_its_in_process_backend(venv: Path, elsewhere: Path) -> None:
    ready = elsewhere / "ready.json"
    process = subprocess.Popen(
        [str(venv / "bin" / "cblab"), "serve", "--port", "0", "--ready-file", str(ready)],
        cwd=elsewhere, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def started() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"cblab serve exited: {process.communicate()[1][-3000:]}")
            return ready.is_file()

        eventually_sync(started, timeout=120, what="cblab serve's ready file")
        url = json.loads(ready.read_text())["url"]
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode == 0


def test_report_on_the_shipped_runs(venv: Path, elsewhere: Path) -> None:
    runs = printed_by(venv, elsewhere,
                      "from cblab.runs import shipped_runs; print(*shipped_runs(), sep='\\n')")
    assert len(runs) >= 2 and all(Path(run).is_relative_to(venv) for run in runs)
    done = cblab(venv, elsewhere, "report", *runs[:2], "-o", "report.html", "--cdn")
    assert done.returncode == 0, done.stderr
    assert "<html" in (elsewhere / "report.html").read_text()[:500].lower()


def test_notebooks_come_out_of_the_install(venv: Path, elsewhere: Path) -> None:
    done = cblab(venv, elsewhere, "notebooks", "nb")
    assert done.returncode == 0, done.stderr
    copied = sorted(path.name for path in (elsewhere / "nb").glob("*.ipynb"))
    assert copied == sorted(path.name for path in (CHECKOUT / "notebooks").glob("*.ipynb"))
    again = cblab(venv, elsewhere, "notebooks", "nb")
    assert again.returncode == 1 and "--force" in again.stderr
    assert cblab(venv, elsewhere, "notebooks", "nb", "--force").returncode == 0


def test_no_module_looks_for_data_beside_the_checkout() -> None:
    pattern = re.compile(r"parents\[\d+\]\s*/\s*[\"'](data|notebooks)[\"']")
    offenders = [str(path.relative_to(CHECKOUT)) for path in (CHECKOUT / "cblab").rglob("*.py")
                 if pattern.search(path.read_text())]
    assert not offenders, f"find shipped files with importlib.resources instead: {offenders}"
