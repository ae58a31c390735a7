"""Every Python example on the docs pages "Protect your server" and "Protect your client"
runs as written, in a fresh interpreter, and prints what the page promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = {  # the docs page -> its title (the example names below use the title)
    "docs/how-to/protect-your-server.md": "Protect your own MCP server",
    "docs/how-to/protect-your-client.md": "Protect your MCP client",
}


def examples() -> list[tuple[str, str]]:
    found = []
    for page, title in PAGES.items():
        text = (ROOT / page).read_text()
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            found.append((f"{title} #{i + 1}", code))
    return found


EXPECTED = {
    "Protect your own MCP server #1": ["healthy: octocat", "'error': 'dependency_unavailable'",
                                       "ping still works: pong"],
    "Protect your own MCP server #2": ["pack for: sunny in Oslo", "while down: dependency_unavailable",
                                       "after the restart: pack for: sunny in Oslo"],
    "Protect your own MCP server #3": ["503", "refused without a request:"],
    "Protect your MCP client #1": ["sunny in Oslo", "refused without touching the network:",
                                   "\nopen\n", "back: sunny in Oslo", "\nclosed 1\n"],
    "Protect your MCP client #2": ["loaded 4 12.5"],
    "Protect your MCP client #3": ["sunny in Oslo\nsunny in Oslo\n", "attempts: 3 for calls: 2",
                                   "sunny in Oslo from the cached"],
    "Protect your MCP client #4": ["tenacity: failed after 3 attempts; breaker open",
                                   "stamina: refused, not retried: search-api - attempts sent: 3"],
}


def test_the_sections_have_their_examples() -> None:
    assert [name for name, _ in examples()] == list(EXPECTED)


RUNNER = """
import runpy, sys
for path in sys.argv[1:]:
    print(f"=== {path}", flush=True)
    runpy.run_path(path, run_name="__main__")
"""


def test_readme_examples_run(tmp_path: Path) -> None:
    """All examples in one fresh interpreter, one after the other (each imports fastmcp
    afresh would cost seconds apiece); each must print what it promises."""
    paths = []
    for i, (_, code) in enumerate(examples()):
        path = tmp_path / f"example_{i}.py"
        path.write_text(code)
        paths.append(str(path))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    done = subprocess.run([sys.executable, "-c", RUNNER, *paths], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    outputs = done.stdout.split("=== ")[1:]
    assert len(outputs) == len(paths), done.stdout
    for (name, _), output in zip(examples(), outputs, strict=True):
        for expected in EXPECTED[name]:
            assert expected in output, (name, expected, output)
