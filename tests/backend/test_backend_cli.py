"""`python -m cblab.backend` as a real subprocess, and `main()` errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cblab.backend.cli import main
from tests.helpers import eventually_sync


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 30.0) -> dict:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"backend exited early: {process.communicate()}")
        return path.exists()

    eventually_sync(ready, timeout, "the backend's ready file")
    return json.loads(path.read_text())


def test_subprocess_ready_file_serves_and_exits_on_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {**os.environ, "CBLAB_BACKEND_TOKEN": ""}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cblab.backend",
            "--ready-file",
            str(ready),
            "--seed",
            "3",
            "--token",
            "T0K",
            "--scenario",
            "hang",
            "--time-scale",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = wait_for_file(ready, process)
        assert set(info) == {"users", "orders", "control", "pid"}
        assert info["pid"] == process.pid
        assert not list(tmp_path.glob(".*.tmp"))  # written atomically
        with httpx.Client(timeout=5, verify=False) as http:  # plain HTTP: no CA bundle
            user = http.get(f"{info['users']}/users/octocat")
            assert user.status_code == 200 and user.json()["login"] == "octocat"
            assert http.get(f"{info['orders']}/orders/1001").status_code == 200
            assert http.get(f"{info['control']}/faults").status_code == 401
            status = http.get(
                f"{info['control']}/scenario", headers={"Authorization": "Bearer T0K"}
            ).json()
            assert status["name"] == "hang" and status["phase_name"] == "healthy"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    [line] = out.strip().splitlines()
    assert info["users"] in line and info["control"] in line
    assert not ready.exists()  # removed on exit


def test_bad_scenario_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "no-such-thing"]) == 1
    err = capsys.readouterr().err
    assert "unknown scenario 'no-such-thing'" in err and "Traceback" not in err


def test_port_in_use_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--control-port", str(port)]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_time_scale_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--time-scale", "0"]) == 2
    assert "--time-scale" in capsys.readouterr().err


def test_top_level_command_dispatches_to_the_backend(capsys: pytest.CaptureFixture[str]) -> None:
    from cblab.cli import main as cblab_main

    assert cblab_main(["backend", "--time-scale", "-1"]) == 2
    assert "--time-scale" in capsys.readouterr().err
