"""The package's public surface: every name in `__all__` loads, and importing the
package alone loads neither fastmcp nor httpx (names load on first use)."""

from __future__ import annotations

import subprocess
import sys

import cblab.integrations as integrations


def test_all_names_load() -> None:
    assert sorted(integrations.__all__) == sorted(integrations._LAZY)
    for name in integrations.__all__:
        assert getattr(integrations, name) is not None


def test_importing_the_package_loads_no_dependency() -> None:
    code = ("import sys, cblab.integrations\n"
            "print(sorted(m for m in ('fastmcp', 'httpx', 'httpx2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
