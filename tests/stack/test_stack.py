"""`Stack`: real backend and server processes on loopback, driven through its clients."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cblab import ConfigError
from cblab.load import LoadGenerator
from cblab.stack import ControlError, Stack, StackError
from tests.helpers import eventually, eventually_sync

FAST = {"failure_threshold": 3, "timeout": 0.3}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    with Stack(("protected", "unprotected"), seed=7, github=FAST, database=FAST,
               deadline=0.5, log_dir=tmp_path_factory.mktemp("stack-logs")) as stack:
        yield stack


@pytest.fixture
def clean(stack: Stack) -> Stack:
    stack.reset()
    for variant in stack.variants:
        for breaker in ("github", "database"):
            stack.server(variant).replace_breaker_config(breaker, FAST)
        stack.server(variant).reset()
    return stack


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until(predicate, timeout: float, what: str) -> None:
    eventually_sync(predicate, timeout, what)


def test_urls_health_and_backend(clean: Stack) -> None:
    stack = clean
    assert stack.variants == ["protected", "unprotected"]
    user = httpx.get(stack.backend_url("users") + "/users/octocat", trust_env=False)
    assert user.status_code == 200 and user.json()["login"] == "octocat"
    assert stack.control_url.startswith("http://127.0.0.1:")
    for variant in stack.variants:
        health = stack.server(variant).health()
        assert health["variant"] == variant
        assert health["protected"] is (variant == "protected")
        assert stack.mcp_url(variant) == stack.server_url(variant) + "/mcp"
    assert stack.backend.stats()["users"]["received"] == 1
    with pytest.raises(KeyError, match="no server variant"):
        stack.server("nope")
    # the control API wants the stack's token
    anonymous = httpx.get(stack.control_url + "/stats", trust_env=False)
    assert anonymous.status_code == 401


def test_server_control_helpers(clean: Stack) -> None:
    server = clean.server("protected")
    status = server.configure_breaker("github", failure_threshold=2)
    assert status["config"]["failure_threshold"] == 2
    assert server.force("github", "force_open")["mode"] == "forced_open"
    assert server.status()["github"]["state"] == "open"
    with pytest.raises(ControlError) as info:
        server.configure_breaker("github", half_open_max_calls=0)
    assert info.value.status == 422 and "half_open_max_calls" in str(info.value)
    with pytest.raises(ControlError) as info:
        clean.backend.set_faults("users", error_rate=2)
    assert info.value.status == 422 and "error_rate" in str(info.value)
    assert "cblab_circuitbreaker_state" in server.metrics()
    events = server.events(after=0)
    assert [r["seq"] for r in events["events"]] == list(range(1, events["last_seq"] + 1))
    clean.server("protected").reset()
    assert server.status()["github"]["mode"] == "normal"


async def test_outage_through_both_variants(clean: Stack) -> None:
    stack = clean
    cursors = {v: (await stack.server(v).aevents())["last_seq"] for v in stack.variants}
    await stack.backend.aset_faults("users", mode="down")
    gens = {
        v: LoadGenerator(stack.mcp_url(v), "github_user", rate=25, arrivals="constant",
                         seed=1, variant=v, keep_all=True, deadline=5.0)
        for v in stack.variants
    }
    await asyncio.gather(*(gen.run(count=20) for gen in gens.values()))

    for variant, gen in gens.items():
        # every request sent has exactly one outcome ...
        rows = gen.records()
        assert sorted(r["seq"] for r in rows) == list(range(1, 21))
        assert sum(gen.counts.values()) == 20
        # ... and the server logged each one, in one gap-free sequence
        reply = await stack.server(variant).aevents(after=cursors[variant])
        seqs = [r["seq"] for r in reply["events"]]
        assert seqs == list(range(cursors[variant] + 1, reply["last_seq"] + 1))
        assert reply["missed"] == 0
        calls = [r for r in reply["events"] if r["kind"] == "call"]
        assert len(calls) == 20
        assert sorted(r["outcome"] for r in calls) == sorted(r["outcome"] for r in rows)

    assert gens["protected"].counts["rejected"] > 0
    assert "rejected" not in gens["unprotected"].counts
    assert gens["unprotected"].counts["failure"] == 20

    # recovery: healthy backend, the protected breaker closes again through trial calls
    await stack.backend.aset_faults("users", mode="up")
    async with stack.server("protected").client() as client:

        async def closed_after_a_trial() -> bool:
            if (await stack.server("protected").astatus())["github"]["state"] == "closed":
                return True
            await client.call_tool("github_user", {"username": "octocat"}, raise_on_error=False)
            return False

        await eventually(closed_after_a_trial, what="the breaker to close again", every=0.05)


def test_bad_breaker_settings_fail_before_anything_starts() -> None:
    with pytest.raises(ConfigError, match="variant 'broken', github breaker: failure_threshold"):
        Stack({"broken": {"github": {"failure_threshold": 0}}})
    with pytest.raises(ValueError, match="unknown option"):
        Stack({"x": {"protect": True}})


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    stack = Stack({"broken": {"args": ["--no-such-flag"]}}, log_dir=tmp_path)
    with pytest.raises(StackError) as info:
        stack.start()
    message = str(info.value)
    assert "broken exited with status 2 while starting" in message
    assert "unrecognized arguments: --no-such-flag" in message
    assert not stack.running
    assert stack.pid("backend") is None
    stack.stop()  # stopping again is harmless
    stack.stop()


async def test_astop_is_harmless_when_stopped(tmp_path: Path) -> None:
    stack = Stack(("protected",), log_dir=tmp_path)
    await stack.astop()
    with pytest.raises(RuntimeError, match="not running"):
        stack.backend  # noqa: B018


def test_children_die_with_their_parent(tmp_path: Path) -> None:
    """A SIGKILLed parent (a Jupyter kernel restart) leaves no processes behind."""
    script = (  # a kernel-like parent: a running loop, the stack started with `async with`
        "import asyncio, json, sys\n"
        "from cblab.stack import Stack\n"
        "async def main():\n"
        "    async with Stack(('protected',), log_dir=sys.argv[1]) as s:\n"
        "        assert (await s.server('protected').ahealth())['status'] == 'ok'\n"
        "        print(json.dumps([s.pid('backend'), s.pid('protected')]), flush=True)\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready, _, _ = select.select([parent.stdout], [], [], 60)
        assert ready, "the parent never reported its stack"
        line = parent.stdout.readline().decode()
        pids = json.loads(line)
        assert all(alive(pid) for pid in pids)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_until(lambda: not any(alive(pid) for pid in pids), 10, "orphans to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
