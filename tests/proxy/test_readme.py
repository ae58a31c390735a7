"""The docs page "Bring your own MCP server" runs as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "bring-your-own-server.md"


def test_the_python_example_runs() -> None:
    section = PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    runnable = [b for b in blocks if "asyncio.run(main())" in b]
    assert len(runnable) == 1
    done = subprocess.run([sys.executable, "-c", runnable[0]], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert "['get_forecast', 'list_cities']" in done.stdout
    assert "True {'error': 'injected_fault', 'status': 500}" in done.stdout
    assert "connected" in done.stdout.splitlines()
