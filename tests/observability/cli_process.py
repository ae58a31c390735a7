"""A `cblab` command as a child process, and waiting (on the event loop) for its ready
file: async, because the child may call back into a server this loop serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..helpers import eventually

ROOT = Path(__file__).resolve().parents[2]


def cblab(*args: str, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    return subprocess.Popen([sys.executable, "-m", "cblab.cli", *args], env=env, text=True,
                            stdout=stdout, stderr=subprocess.PIPE)


async def ready(process: subprocess.Popen[str], path: Path, timeout: float = 120) -> Any:
    """The JSON `process` writes to its ready file `path` (AssertionError if it exits)."""
    def written() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[3]} exited: {process.communicate()[1][-2000:]}")
        return path.is_file() and path.stat().st_size > 0

    await eventually(written, timeout=timeout, what=f"{process.args[3]}'s ready file")
    return json.loads(path.read_text())
