"""Helpers for the Redis tests: replicas in-process and in other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from cblab.stores.scripts import keys_for
from tests.helpers import eventually, eventually_sync  # noqa: F401  (eventually: re-exported)

ROOT = Path(__file__).resolve().parents[2]


def shared_hash(url: str, namespace: str, name: str) -> dict[str, str]:
    """The breaker's shared record as Redis holds it (read with a plain client)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return client.hgetall(keys_for(namespace, name)[0])
    finally:
        client.close()


def spawn_replica(spec: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.redis.replica", json.dumps(spec)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def start_together(url: str, namespace: str, processes: list[subprocess.Popen[str]],
                   timeout: float = 60) -> None:
    """Wait until every replica process is ready, then let them all go at once."""
    client = redis.Redis.from_url(url)
    try:
        def all_ready() -> bool:
            for process in processes:
                if process.poll() is not None:
                    raise AssertionError(f"a replica exited early: {process.stderr.read()[-2000:]}")
            return int(client.get(f"{namespace}:ready") or 0) >= len(processes)

        eventually_sync(all_ready, timeout, "every replica to be ready", every=0.01)
        client.set(f"{namespace}:go", 1)
    finally:
        client.close()


def results(processes: list[subprocess.Popen[str]], timeout: float = 60) -> list[dict[str, Any]]:
    out = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        assert process.returncode == 0, stderr[-2000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out
