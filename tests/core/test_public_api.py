"""The public surface is what `cblab` exports, and the write-up's code runs on it."""

import types
from datetime import timedelta

import pytest

import cblab
from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState, ManualClock


def test_all_lists_every_public_name_and_nothing_else():
    public = {name for name in dir(cblab) if not name.startswith("_")}
    # subpackages imported by earlier tests show up as attributes; they are not exports
    modules = {n for n in public if isinstance(getattr(cblab, n), types.ModuleType)}
    modules.add("annotations")
    assert set(cblab.__all__) - {"__version__"} == public - modules
    for name in cblab.__all__:
        assert getattr(cblab, name) is not None


def test_core_imports_only_the_standard_library():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import cblab\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'cblab'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_the_write_up_usage_section_runs_unchanged():
    """The write-up's github example, names and all, on cblab."""
    clock = ManualClock()
    github_breaker = CircuitBreaker(
        "github",
        CircuitBreakerConfig(
            failure_threshold=3,
            timeout=timedelta(seconds=60),
        ),
        clock=clock,
    )
    database_breaker = CircuitBreaker(
        "database",
        CircuitBreakerConfig(
            failure_threshold=5,
            timeout=timedelta(seconds=30),
        ),
        clock=clock,
    )

    async def fetch_github_data(endpoint: str) -> dict:
        raise ConnectionError(f"GET {endpoint}: connection refused")

    async def github_user(username: str) -> dict:
        try:
            return await github_breaker.call(fetch_github_data, f"/users/{username}")
        except CircuitOpenError as exc:
            return {
                "error": "GitHub service temporarily unavailable",
                "retry_after": f"{exc.retry_after:.0f} seconds",
            }

    for _ in range(3):
        with pytest.raises(ConnectionError):
            await github_user("octocat")
    assert await github_user("octocat") == {
        "error": "GitHub service temporarily unavailable",
        "retry_after": "60 seconds",
    }

    breakers = [github_breaker, database_breaker]
    metrics = {
        "circuits": [b.get_status() for b in breakers],
        "summary": {
            "total": len(breakers),
            "open": sum(1 for b in breakers if b.state == CircuitState.OPEN),
            "closed": sum(1 for b in breakers if b.state == CircuitState.CLOSED),
            "half_open": sum(1 for b in breakers if b.state == CircuitState.HALF_OPEN),
        },
    }
    assert metrics["summary"] == {"total": 2, "open": 1, "closed": 1, "half_open": 0}
    assert metrics["circuits"][0]["state"] == "open"
