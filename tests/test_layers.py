"""Layering: importing a package loads nothing above it."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    """The cblab modules a fresh interpreter has loaded after running `statement`."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(m for m in sys.modules if m.startswith('cblab')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_the_simulator_does_not_load_the_http_backend() -> None:
    loaded = loaded_after("import cblab.sim")
    assert "cblab.faults" in loaded
    assert not {m for m in loaded if m.startswith("cblab.backend")}, sorted(loaded)
