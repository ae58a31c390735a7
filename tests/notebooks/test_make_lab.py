"""`make lab` opens a JupyterLab that never asks about Jupyter news.

The Makefile writes JupyterLab's settings overrides (``LAB_OVERRIDES``) into the
venv; here the same snippet writes them into a temporary prefix, and a real
JupyterLab started on that settings directory, with no user settings at all,
reports the notification settings the snippet set (``fetchNews: "false"``: no
news and no prompt; JupyterLab asks only while it is "none").
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cblab.testing import JupyterLabServer

REPO = Path(__file__).resolve().parents[2]


def _overrides_snippet() -> str:
    text = (REPO / "Makefile").read_text()
    found = re.search(r"^define LAB_OVERRIDES\n(.*?)^endef$", text, re.S | re.M)
    assert found, "the Makefile's LAB_OVERRIDES block is missing"
    return found.group(1)


@pytest.mark.live
def test_make_lab_settings_turn_the_news_prompt_off(tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    code = "import sys; sys.prefix = sys.argv[1]\n" + _overrides_snippet()
    subprocess.run([sys.executable, "-c", code, str(prefix)], check=True)
    settings_dir = prefix / "share" / "jupyter" / "lab" / "settings"
    # A second run keeps what is there (merged, not replaced).
    data = json.loads((settings_dir / "overrides.json").read_text())
    data["@jupyterlab/apputils-extension:themes"] = {"theme": "JupyterLab Dark"}
    (settings_dir / "overrides.json").write_text(json.dumps(data))
    subprocess.run([sys.executable, "-c", code, str(prefix)], check=True)
    data = json.loads((settings_dir / "overrides.json").read_text())
    assert data["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    with JupyterLabServer(notebooks, user_settings={},
                          extra_args=[f"--LabApp.app_settings_dir={settings_dir}"]) as lab:
        plugin = lab.api("GET", "lab/api/settings/@jupyterlab/apputils-extension:notification")
    # What the page uses: the user's settings (none here) over the schema's defaults,
    # which JupyterLab takes from the overrides.
    defaults = {k: v.get("default") for k, v in plugin["schema"]["properties"].items()}
    composite = {**defaults, **(plugin.get("settings") or {})}
    assert composite["fetchNews"] == "false" and composite["checkForUpdates"] is False


def _venv_over_this_one(path: Path) -> Path:
    """A venv whose packages are this venv's (a .pth file): `make lab VENV=path` then
    runs for real without installing anything (its stamp says the packages are in)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    purelib = subprocess.run(
        [str(path / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    import sysconfig

    Path(purelib, "this-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (path / ".stamp").touch()  # newer than pyproject.toml: make lab installs nothing
    return path


def test_make_lab_installs_only_what_notebooks_need() -> None:
    """A fresh clone: `make lab` installs the lab, redis, dask and otel extras (not test
    or bench: 07 uses redis, 04 dask, 06's spans button OpenTelemetry), quietly into a
    log, and checks for redis-server (07 starts one)."""
    plan = subprocess.run(["make", "-n", "lab", "VENV=/nonexistent-cblab-venv"], cwd=REPO,
                          check=True, capture_output=True, text=True).stdout
    installs = re.findall(r"pip install -e '\.\[([^\]]*)\]'", plan)
    assert installs == ["lab,redis,dask,otel"], plan
    assert "lab-install.log 2>&1" in plan
    assert "command -v redis-server" in plan


@pytest.mark.live
def test_make_lab_prints_its_url_last_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import urllib.request

    from tests.helpers import eventually_sync

    venv = _venv_over_this_one(tmp_path / "venv")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "make.out"
    with open(out, "wb") as sink:
        make = subprocess.Popen(["make", "-s", "lab", f"VENV={venv}", f"LAB_PORT={port}"],
                                cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        eventually_sync(lambda: "JupyterLab is ready" in out.read_text(), timeout=120)
        lines = [line.strip() for line in out.read_text().splitlines() if line.strip()]
        url = lines[-2].split("ready: ", 1)[1]
        assert "Ctrl-C" in lines[-1] and len(lines) == 2, lines  # nothing else, URL last
        token = url.split("token=", 1)[1]
        status = f"http://127.0.0.1:{port}/api/status?token={token}"
        with urllib.request.urlopen(status, timeout=10) as response:
            assert response.status == 200
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        make.wait(timeout=60)

    def closed() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    eventually_sync(closed, timeout=30)
