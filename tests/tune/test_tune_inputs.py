"""Bad input to `cblab tune`: one line naming the problem, exit 2, before the sweep."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from cblab.cli import main as cblab_main
from cblab.tune.cli import main
from tests.tune.traffic import PROFILE, crafted_rows, write_rows

FAST = ["--workers", "1", "--seeds", "1", "--param", "failure_threshold=3",
        "--param", "timeout=5"]


def _run(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and err.startswith("cblab tune: ")
    return err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "traffic.json", crafted_rows())


def test_an_empty_run_is_refused(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert _run([str(empty), *FAST], capsys) == f"cblab tune: {empty}: no rows"


def test_too_few_calls_are_refused(tmp_path: Path, capsys) -> None:
    few = write_rows(tmp_path / "few.json", crafted_rows()[:5])
    assert "need at least 20 calls" in _run([str(few), *FAST], capsys)


def test_traffic_without_an_outage_is_refused(tmp_path: Path, capsys) -> None:
    calm = write_rows(tmp_path / "calm.json", crafted_rows(profile=(PROFILE[0],)))
    assert "has no outage" in _run([str(calm), *FAST], capsys)


def test_an_unreachable_server_is_refused(traffic: Path, capsys) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    err = _run([str(traffic), *FAST, "--apply", url, "--token", "t"], capsys)
    assert err.startswith(f"cblab tune: cannot reach {url}/admin/breakers/github")


@pytest.mark.parametrize(("extra", "expected"), [
    (["--param", "threshold=3"], "--param threshold: not a breaker setting"),
    (["--param", "rate=5,10"], "--param rate: not a breaker setting"),
    (["--param", "timeout=soon"], "--param timeout: 'soon' is not a number"),
    (["--apply", "127.0.0.1:8000", "--token", "t"], "--apply needs the server's base URL"),
    (["--variants", "worse"], "unknown variant(s) worse"),
    (["--max-runs", "2"], "max_runs"),
    (["--cost-wasted", "-1"], "argument --cost-wasted: must be a number >= 0"),
    (["--deadline", "0"], "--deadline must be seconds > 0"),
    (["--table", "runs.txt"], "--table must end in .parquet or .csv"),
    (["--phase", "outage=20:10"], "--phase must be NAME=START:END"),
])
def test_bad_flags_name_the_problem(traffic: Path, capsys, extra, expected) -> None:
    assert expected in _run([str(traffic), *FAST, *extra], capsys)


def test_a_bad_current_config_names_the_field(traffic: Path, tmp_path: Path, capsys) -> None:
    current = tmp_path / "today.json"
    current.write_text(json.dumps({"failure_threshold": 0}))
    err = _run([str(traffic), *FAST, "--current", str(current)], capsys)
    assert err.startswith(f"cblab tune: --current {current}: ") and "failure_threshold" in err


def test_the_command_is_registered(capsys) -> None:
    assert cblab_main(["tune", "--help"]) == 0
    assert "--max-wasted" in capsys.readouterr().out
