"""`cblab tune --apply`: the pick reaches a live demo server through its real admin API
(Streamable HTTP server on loopback, real HTTP); refused without a token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cblab.tune.cli import main
from tests.server.live import TOKEN, Live, start_live, stop_live
from tests.tune.traffic import crafted_rows, write_rows

ARGS = ["--workers", "1", "--seeds", "2", "--param", "failure_threshold=4,9",
        "--param", "timeout=7,40"]


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    server = await start_live()
    try:
        yield server
    finally:
        await stop_live(server)


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "traffic.json", crafted_rows())


async def test_apply_changes_the_live_breaker(live: Live, traffic: Path, tmp_path: Path,
                                              capsys) -> None:
    before = live.lab.registry["github"].config
    assert (before.failure_threshold, before.timeout) == (3, 0.2)  # tests.server.live's
    out = tmp_path / "config.json"
    code = await asyncio.to_thread(main, [str(traffic), *ARGS, "-o", str(out),
                                          "--apply", live.url, "--token", TOKEN])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    picked = json.loads(out.read_text())
    after = live.lab.registry["github"].config
    assert (after.failure_threshold, after.timeout) == (picked["failure_threshold"],
                                                        picked["timeout"])
    assert after.failure_threshold in (4, 9) and after.timeout in (7, 40)
    # the live config was the comparison ("current") since no --current was given
    assert "current {'failure_threshold': 3, 'timeout': 0.2}" in printed.out


async def test_apply_without_a_token_is_refused_before_any_work(
        live: Live, traffic: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("CBLAB_ADMIN_TOKEN", raising=False)
    code = await asyncio.to_thread(main, [str(traffic), *ARGS, "--apply", live.url])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == ("cblab tune: --apply needs the server's admin token: --token T or "
                   "$CBLAB_ADMIN_TOKEN")
    assert live.lab.registry["github"].config.failure_threshold == 3


async def test_apply_with_a_wrong_token_is_refused(live: Live, traffic: Path, capsys) -> None:
    code = await asyncio.to_thread(main, [str(traffic), *ARGS, "--apply", live.url,
                                          "--token", "not-the-token"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("cblab tune: GET ") and "answered 401" in err and "\n" not in err
    assert live.lab.registry["github"].config.failure_threshold == 3


async def test_current_is_read_from_a_live_server(live: Live, traffic: Path, capsys) -> None:
    code = await asyncio.to_thread(main, [str(traffic), *ARGS, "--current", live.url,
                                          "--token", TOKEN])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "current {'failure_threshold': 3, 'timeout': 0.2}" in printed.out
    assert live.lab.registry["github"].config.failure_threshold == 3  # read, not changed
