"""Run the real `cblab` command in a subprocess, fenced: memory and time are capped, so
a command that would take the machine (the bug these tests guard against) fails
the test instead."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

__all__ = ["CBLAB", "run_cblab"]

CBLAB = str(Path(sys.executable).with_name("cblab"))

#: Address space for the child: imports (pandas, numpy) fit easily, 21 GB does not.
MEMORY_CAP_BYTES = 3 * 2**30


def _fence() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def run_cblab(*args: str, cwd: Path, timeout: float = 120,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`cblab ARGS...` in `cwd` with this checkout first on the path."""
    child_env = {**os.environ, **(env or {})}
    return subprocess.run([CBLAB, *args], cwd=cwd, env=child_env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_fence, check=False)
