"""The docs page "Observe it in production" runs as written: the Python example
prints the span table the README shows, and the shell lines check the shipped rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "how-to" / "observe-in-production.md"


def section() -> str:
    return PAGE.read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), re.S)


def test_the_example_prints_the_span_table_shown(tmp_path: Path) -> None:
    (code,) = blocks("python")
    (shown,) = blocks("text")
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    assert printed == shown.strip().splitlines()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: make system-deps")
def test_the_shell_lines_check_the_rules(tmp_path: Path) -> None:
    (sh,) = blocks("sh")
    commands = "set -e\n" + "\n".join(
        line for line in sh.splitlines() if line and not line.startswith("#"))
    commands = commands.replace("python ", f"{sys.executable} ", 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", commands], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 12 rules found" in done.stdout
    assert done.stdout.rstrip().endswith("SUCCESS")


def test_the_readme_sends_operators_to_the_page() -> None:
    assert "(docs/how-to/observe-in-production.md)" in (ROOT / "README.md").read_text()
