"""The "Share state across replicas" page's example runs against a real redis-server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "how-to" / "replicas.md"
RUNNER = """
import ast, asyncio, sys
namespace = {"__name__": "__main__"}
code = compile(open(sys.argv[1]).read(), sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, namespace)
if asyncio.iscoroutine(result):
    asyncio.run(result)
print(namespace["github"].state.value, namespace["registry"].get("orders").name)
"""


def test_the_replicas_example_shares_a_breaker_on_redis(redis_url: str, tmp_path: Path) -> None:
    (code,) = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-c", RUNNER, str(script)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "closed orders"
