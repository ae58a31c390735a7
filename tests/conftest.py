"""Shared pytest setup for the whole suite. Keep it small: fixtures live near their tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Rich tracebacks make every tool exception slow; servers started by tests inherit this.
os.environ["FASTMCP_ENABLE_RICH_TRACEBACKS"] = "false"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives headless Chromium (slow). Never skipped: without "
        "/usr/bin/chromium (`make system-deps`) these tests fail"
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


# tryfirst: pytest-xdist reads the `xdist_group` marks in its own
# pytest_collection_modifyitems (it suffixes each node id with its group); marks added
# after it would be ignored.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    browser_modules = set()
    for item in items:  # every test that drives Chromium: the fixture, or its own launch
        uses_fixture = "chromium" in getattr(item, "fixturenames", ())
        if uses_fixture or item.get_closest_marker("browser") is not None:
            if uses_fixture:
                item.add_marker(pytest.mark.browser)
            # A notebook walk starts JupyterLab, a kernel, the live stack and Chromium on
            # 2 shared cores. Full-suite runs saw walks wait 180 s for their first chart
            # and pass at once alone, while the browser group was silently ignored (two
            # or three browsers at once). One rerun, reported as such; a second failure fails.
            item.add_marker(pytest.mark.flaky(reruns=1))
            browser_modules.add(item.nodeid.split("::")[0])
    # Under pytest-xdist (`make test` runs `--dist loadgroup`): a module's tests stay on
    # one worker (its module fixtures start once), and the modules that drive Chromium
    # share one worker, so two browsers and their kernels never compete for 2 cores.
    for item in items:
        module = item.nodeid.split("::")[0]
        group = "browser" if module in browser_modules else module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)  # only with pytest-xdist loaded
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under `--dist loadgroup`, xdist's scheduler reads each test's group from a suffix
    of its node id. Without it the browser tests run side by side and starve each other
    on 2 cores: stop the run with the reason rather than let that pass quietly."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    ungrouped = [nodeid for nodeid in ids if "@" not in nodeid]
    if ungrouped:
        pytest.exit(
            f"pytest-xdist did not group {len(ungrouped)} tests (e.g. {ungrouped[0]}): "
            "this pytest and pytest-xdist disagree on node ids (see pyproject's pin)",
            returncode=3)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """The system Chromium through playwright, one per test module. One policy for
    every browser test: never skipped; a missing Chromium fails with how to get it."""
    from playwright.sync_api import sync_playwright

    from cblab.testing import chromium_path, launch_chromium

    try:
        chromium_path()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            yield browser
        finally:
            browser.close()
