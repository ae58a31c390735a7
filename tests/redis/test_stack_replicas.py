"""`Stack(replicas=3, shared_state=True)`: three demo-server processes share their
breakers through a real redis-server the Stack started."""

from __future__ import annotations

import time

import pytest

from cblab.load import LoadGenerator
from cblab.stack import Stack

from .helpers import eventually

FAST = {"failure_threshold": 3, "timeout": 60}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # --store-timeout 1: room for a loaded CI machine (the deadline has its own tests)
    with Stack({"shared": {"args": ["--store-timeout", "1"]}}, replicas=3, shared_state=True,
               github=FAST, database=FAST,
               deadline=0.5, log_dir=tmp_path_factory.mktemp("replica-logs")) as stack:
        yield stack


def received(stack: Stack) -> int:
    return int(stack.backend.stats()["users"]["received"])


async def test_replicas_share_one_breaker(stack):
    assert stack.replicas("shared") == ["shared@r0", "shared@r1", "shared@r2"]
    assert stack.redis_url and stack.redis_url.startswith("redis://127.0.0.1:")
    stack.backend.set_faults("users", error_rate=1.0)  # every request answered 5xx
    stack.backend.reset_stats()
    gen = LoadGenerator(stack.mcp_urls("shared"), "github_user", rate=40,
                        arrivals="constant", keep_all=True)
    await gen.run(count=30)
    assert gen.per_target == [10, 10, 10]
    # a local breaker per replica would let 3 x 3 failing calls through;
    # shared, the third failure trips all three (plus calls already in flight)
    assert 3 <= received(stack) <= 3 + 3 - 1
    for name in stack.replicas("shared"):
        server = stack.server(name)
        assert server.status()["github"]["state"] == "open"
        rows = server.events()["events"]
        assert {r["variant"] for r in rows} == {name}  # every row says which replica
        assert f'cblab_shared_state_available{{replica="{name}"}} 1' in server.metrics()
        assert server.health()["shared_state"]["available"] is True


async def test_redis_down_is_visible_then_replicas_rejoin(stack):
    r0 = stack.server("shared@r0")
    stack.redis.kill()
    gauge = 'cblab_shared_state_available{replica="shared@r0"}'
    await eventually(lambda: f"{gauge} 0" in r0.metrics(), timeout=15, every=0.1)
    reasons = [r["reason"] for r in r0.events()["events"] if r["kind"] == "state"]
    assert any(r and r.startswith("shared state unavailable") for r in reasons)
    stack.redis.start()
    started = time.monotonic()
    await eventually(lambda: f"{gauge} 1" in r0.metrics(), timeout=15, every=0.1)
    assert time.monotonic() - started < 15
    reasons = [r["reason"] for r in r0.events()["events"] if r["kind"] == "state"]
    assert "shared state back: re-joined" in reasons


@pytest.mark.parametrize(("url", "message"), [
    ("redis://127.0.0.1:{port}/0", "cannot reach Redis"),
    ("http://127.0.0.1:{port}", "redis://"),
])
def test_serve_with_a_bad_shared_state_url_fails_at_startup(url, message, capsys):
    from cblab.server.cli import main
    from cblab.stores.server import free_port

    code = main(["--port", "0", "--shared-state", url.format(port=free_port())])
    assert code == 2
    err = capsys.readouterr().err
    assert "--shared-state: " in err and message in err
    assert "Traceback" not in err


def test_serve_refuses_a_bad_namespace_and_unprotected_sharing(capsys, redis_url):
    from cblab.server.cli import main

    assert main(["--port", "0", "--shared-state", redis_url,
                 "--shared-namespace", "a b"]) == 2
    assert "namespace must be" in capsys.readouterr().err
    assert main(["--port", "0", "--shared-state", redis_url, "--unprotected"]) == 2
    assert "cannot share breaker state" in capsys.readouterr().err
