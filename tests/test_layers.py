"""Layering: every cblab package imports only the layers below it.

`LAYERS` is the layer diagram of DESIGN.md (and the README's architecture
section) as ranks. A module may import its own package and any package of a
*lower* rank; packages of the same rank stay independent of each other. Every
import counts, including lazy ones inside functions: a lazy import still couples
the code. Entry points (`cblab/cli.py` and every package's `cli.py` /
`__main__.py`, and `python -m cblab.stack.child`) compose layers, so they sit above them
all. The core (`cblab/__init__.py`
and `cblab/_*.py`) is checked more strictly in tests/core: standard library only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cblab

ROOT = Path(cblab.__file__).resolve().parent

#: package (a subpackage, or a top-level module's name) -> rank.
LAYERS: dict[str, float] = {
    "core": 0,            # breaker, config, policies, events, registry, clock, store interface
    "stores": 1,          # breaker state stores (Redis)
    "faults": 2,          # fault profiles, plan_request, scenarios: pure data + RNG
    "codes": 2,           # error codes and the refusal shape
    "demo": 2,            # the demo's wiring: tool -> breaker -> service
    "schema": 2,          # the event row schema
    "strict_json": 1.5,   # bounded JSON parsing (bodies, input files): standard library only
    "integrations": 3,    # FastMCP middleware, httpx transport, MCP client guard
    "backend": 4,         # the fault-injecting HTTP services
    "server": 5,          # the demo MCP server
    "load": 5,            # the open-loop load generator
    "sim": 5,             # the simulator (+ sweep executors)
    "proxy": 5.5,         # the fault-injecting MCP proxy: runs on the server's ServerRunner
    "stack": 6,           # starts backend and server processes for notebooks and tests
    "analysis": 7,        # events -> frames -> KPIs
    "runs": 7.5,          # saved runs (events + metadata), read back with analysis
    "plots": 8,           # figure builders
    "report": 8.5,        # HTML/CSV reports from the figures
    "lab": 9,             # notebook widgets over a live session
    "tune": 9.5,          # cblab tune: fit -> stress variants -> sweep -> robust pick
    "testing": 10,        # the JupyterLab/chromium test harness
    "notebooks": 10,      # `cblab notebooks DIR`: copies the shipped notebooks out
    "examples": 10,       # example MCP servers to put behind the proxy (import no cblab)
    "entry": 11,          # command-line entry points
}

#: Known exceptions: (file, layer it imports) -> why it is tolerated for now.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("cblab/sim/sweep.py", "analysis"): "a sweep scores every run with analysis.run_kpis",
}

ENTRY_POINTS = {"cli.py", "__main__.py"}
#: Other modules that are a process's entry point (`python -m ...`).
ENTRY_MODULES = {"stack/child.py"}


def layer_of_file(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.name in ENTRY_POINTS or rel.as_posix() in ENTRY_MODULES:
        return "entry"
    if len(rel.parts) == 1:
        return "core" if rel.stem == "__init__" or rel.stem.startswith("_") else rel.stem
    return rel.parts[0]


def layer_of_module(module: str) -> str | None:
    """The layer of an imported module name (None: not part of cblab)."""
    parts = module.split(".")
    if parts[0] != "cblab":
        return None
    if len(parts) == 1 or parts[1].startswith("_"):
        return "core"
    if parts[-1] in {"cli", "__main__"}:
        return "entry"
    return parts[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import statement in `path`."""
    package = ".".join(("cblab", *path.relative_to(ROOT).parts[:-1]))
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module in {"cblab", package}:
                # `from cblab import sim` imports a package; `from cblab import Outcome` the core
                for alias in node.names:
                    sub = ROOT.joinpath(*module.split(".")[1:], alias.name)
                    is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                    found.append((node.lineno, f"{module}.{alias.name}" if is_module else module))
            else:
                found.append((node.lineno, module))
    return found


def upward_imports() -> list[str]:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        source = layer_of_file(path)
        shown = path.relative_to(ROOT.parent).as_posix()
        for line, module in imports_of(path):
            target = layer_of_module(module)
            if target is None or target == source or (shown, target) in EXCEPTIONS:
                continue
            if LAYERS.get(target, 99) >= LAYERS[source]:
                wrong.append(f"{shown}:{line} ({source}) imports {module} ({target})")
    return wrong


def test_every_package_has_a_layer() -> None:
    names = {layer_of_file(path) for path in ROOT.rglob("*.py")}
    missing = sorted(names - set(LAYERS))
    assert not missing, f"give these a rank in LAYERS (and in DESIGN.md's diagram): {missing}"


def test_imports_point_downward() -> None:
    wrong = upward_imports()
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_the_exceptions_are_still_needed() -> None:
    for (file, target), why in EXCEPTIONS.items():
        path = ROOT.parent / file
        assert path.is_file(), f"{file} is gone: drop its exception ({why})"
        targets = {layer_of_module(module) for _, module in imports_of(path)}
        assert target in targets, f"{file} no longer imports {target}: drop its exception"


def test_the_checker_sees_upward_imports(tmp_path: Path, monkeypatch) -> None:
    """The checker itself: a fake lower-layer module importing upward is reported."""
    fake_root = tmp_path / "cblab"
    (fake_root / "faults").mkdir(parents=True)
    (fake_root / "sim").mkdir()
    (fake_root / "__init__.py").write_text("")
    (fake_root / "sim" / "__init__.py").write_text("")
    (fake_root / "faults" / "__init__.py").write_text("from cblab import sim\n")
    (fake_root / "faults" / "profile.py").write_text(
        "def f():\n    from ..backend.app import Backend\n    from cblab import Outcome\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    wrong = upward_imports()
    assert any("faults/__init__.py:1 (faults) imports cblab.sim (sim)" in w for w in wrong), wrong
    assert any("faults/profile.py:2 (faults) imports cblab.backend.app (backend)" in w
               for w in wrong), wrong
    assert len(wrong) == 2, wrong  # `from cblab import Outcome` is the core: allowed


def loaded_after(statement: str) -> set[str]:
    """The cblab modules a fresh interpreter has loaded after running `statement`."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(m for m in sys.modules if m.startswith('cblab')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_the_simulator_does_not_load_the_http_backend() -> None:
    loaded = loaded_after("import cblab.sim")
    assert "cblab.faults" in loaded
    assert not {m for m in loaded if m.startswith("cblab.backend")}, sorted(loaded)


def test_analysis_does_not_load_the_simulator() -> None:
    loaded = loaded_after("import cblab.analysis")
    assert not {m for m in loaded if m.startswith(("cblab.sim", "cblab.backend"))}, sorted(loaded)
