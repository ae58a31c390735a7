"""Every fenced Python example on the docs site and in the README runs as printed.

Pages whose examples print something a reader is promised have a test of their own
that checks the output (`DEDICATED`); every other page's examples run here, in order,
in one fresh interpreter per page (later blocks may use earlier ones' names, as a
reader would), with top-level ``await`` allowed as in a notebook or ``python -m asyncio``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: page -> the test that runs its examples and checks what they print
DEDICATED = {
    "how-to/protect-your-server.md": "tests/integrations/test_readme.py",
    "how-to/protect-your-client.md": "tests/integrations/test_readme.py",
    "how-to/observe-in-production.md": "tests/observability/test_readme.py",
    "how-to/replicas.md": "tests/redis/test_docs_example.py",  # needs a redis-server
}

#: what a page says its examples print
PROMISED = {"../README.md": ["open, retry in 30 s\n",
                            "{'login': 'octocat'} {'login': 'octocat'} closed\n"]}

RUNNER = """
import ast, asyncio, sys
namespace = {"__name__": "__main__"}
for path in sys.argv[1:]:
    print(f"=== {path}", flush=True)
    source = open(path, encoding="utf-8").read()
    code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
"""


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def pages_with_examples() -> list[str]:
    pages = [p.relative_to(DOCS).as_posix() for p in sorted(DOCS.rglob("*.md"))
             if "hooks" not in p.parts and python_blocks(p)]
    return [p for p in pages if p not in DEDICATED] + ["../README.md"]


def test_dedicated_pages_exist_and_have_examples() -> None:
    for page, test in DEDICATED.items():
        assert python_blocks(DOCS / page), f"{page} has no Python example"
        assert (ROOT / test).exists(), test


@pytest.mark.parametrize("page", pages_with_examples())
def test_the_page_examples_run(page: str, tmp_path: Path) -> None:
    paths = []
    for i, code in enumerate(python_blocks(DOCS / page)):
        path = tmp_path / f"example_{i}.py"
        path.write_text(code, encoding="utf-8")
        paths.append(str(path))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    done = subprocess.run([sys.executable, "-c", RUNNER, *paths], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    for text in PROMISED.get(page, []):
        assert text in done.stdout, (page, text, done.stdout[-2000:])


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert len(local) > 10
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []
