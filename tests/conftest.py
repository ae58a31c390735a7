"""Shared pytest setup for the whole suite. Keep it small: fixtures live near their tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Rich tracebacks make every tool exception slow; servers started by tests inherit this.
os.environ["FASTMCP_ENABLE_RICH_TRACEBACKS"] = "false"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in headless Chromium (slow; needs /usr/bin/chromium)"
    )
    config.addinivalue_line(
        "markers", "live: starts real servers/kernels on loopback and runs a live loop"
    )


@pytest.fixture(scope="session")
def artifacts_dir(pytestconfig: pytest.Config) -> Path:
    """`artifacts/` at the repo root (created): screenshots, logs, executed notebooks."""
    path = pytestconfig.rootpath / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path
