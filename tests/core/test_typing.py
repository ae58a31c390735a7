"""The core passes `mypy --strict`, and its tagged unions narrow for a type checker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cblab

ROOT = Path(cblab.__file__).resolve().parents[1]

USER_CODE = """
from typing import assert_type
from cblab import CallRecord, CircuitBreaker, Event, Permit, Rejection, StateChange

def use(breaker: CircuitBreaker) -> float:
    permit = breaker.admit()
    if not permit.admitted:
        assert_type(permit, Rejection)
        return permit.retry_after
    assert_type(permit, Permit)
    breaker.record(permit, "success")
    return 0.0

def describe(event: Event) -> str:
    if event.kind == "call":
        assert_type(event, CallRecord)
        return event.outcome
    assert_type(event, StateChange)
    return event.reason
"""


def test_core_is_strictly_typed_and_unions_narrow(tmp_path):
    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    core = sorted(str(p) for p in (ROOT / "cblab").glob("_*.py"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            *core,
            str(user),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (ROOT / "cblab" / "py.typed").exists()  # so users' type checkers read these hints
