"""The shipped Prometheus rules: valid (`promtool check rules`) and doing what their
unit tests say (`promtool test rules`), from the installed package's files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cblab.integrations.ops import DASHBOARD, RULES

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: make system-deps (Debian's prometheus)")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_files_ship_inside_the_package() -> None:
    import cblab

    package = Path(cblab.__file__).parent
    for path in (RULES, DASHBOARD, RULES.with_suffix(".test.yml")):
        assert path.is_file(), path
        assert path.is_relative_to(package), path


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", RULES.with_suffix(".test.yml").name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_the_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    """The unit tests can fail: the open alert's `for: 5m` loosened to 10m breaks them."""
    text = RULES.read_text()
    assert text.count("for: 5m") == 2
    (tmp_path / RULES.name).write_text(text.replace("for: 5m", "for: 10m", 1))
    shutil.copy(RULES.with_suffix(".test.yml"), tmp_path)
    done = promtool("test", "rules", RULES.with_suffix(".test.yml").name, cwd=tmp_path)
    assert done.returncode != 0
    assert "CircuitBreakerOpen" in done.stdout + done.stderr
