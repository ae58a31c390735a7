"""Benchmark runner: ``python -m benchmarks [NAME ...] [--list]``.

Discovers ``benchmarks/bench_*.py`` modules, each exposing ``main()``, and runs them in
name order, or only those named on the command line or in ``$BENCH`` (separated by
spaces or commas; ``bench_`` prefix and ``.py`` suffix optional). Benchmarks print
their own results; the runner adds a header and the wall time of each. A benchmark
that raises or returns a non-zero int makes the run exit 1, after the others ran.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time
import traceback
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PREFIX = "bench_"


def discover() -> list[str]:
    """Module names (``bench_*``) found next to this file, sorted."""
    return sorted(p.stem for p in PACKAGE_DIR.glob(f"{PREFIX}*.py") if p.is_file())


def _normalise(name: str) -> str:
    name = Path(name).name.removesuffix(".py")
    return name if name.startswith(PREFIX) else PREFIX + name


def select(requested: list[str], available: list[str]) -> list[str]:
    """The modules to run, in discovery order; raises ValueError naming unknown ones."""
    if not requested:
        return list(available)
    wanted = [_normalise(n) for n in requested]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ValueError(
            f"unknown benchmark(s): {', '.join(unknown)}; "
            f"available: {', '.join(available) or '(none)'}"
        )
    return [n for n in available if n in wanted]


def run_one(name: str) -> bool:
    """Import ``benchmarks.<name>`` and call its ``main()``; True when it succeeded."""
    print(f"=== {name} ===", flush=True)
    start = time.perf_counter()
    saved_argv = sys.argv
    sys.argv = [f"benchmarks.{name}"]  # a main() that parses argv sees no runner args
    ok = True
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        entry = getattr(module, "main", None)
        if not callable(entry):
            raise TypeError(f"benchmarks/{name}.py has no callable main()")
        result = entry()
        if isinstance(result, int) and not isinstance(result, bool) and result != 0:
            print(f"{name}: main() returned {result}", file=sys.stderr)
            ok = False
    except SystemExit as e:  # a main() that calls sys.exit / argparse errors
        if e.code not in (0, None):
            print(f"{name}: exited with {e.code}", file=sys.stderr)
            ok = False
    except Exception:
        traceback.print_exc()
        ok = False
    finally:
        sys.argv = saved_argv
        sys.stdout.flush()
    elapsed = time.perf_counter() - start
    print(f"--- {name}: {'ok' if ok else 'FAILED'} in {elapsed:.1f} s\n", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: $BENCH, or all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    available = discover()
    if args.list:
        print("\n".join(available) if available else "(no benchmarks)")
        return 0
    requested = args.names or [n for n in re.split(r"[\s,]+", os.environ.get("BENCH", "")) if n]
    try:
        names = select(requested, available)
    except ValueError as e:
        print(f"benchmarks: {e}", file=sys.stderr)
        return 2
    if not names:
        print("benchmarks: no benchmarks/bench_*.py found")
        return 0

    # `python -m benchmarks` from the repo root puts it on sys.path; be explicit anyway.
    root = str(PACKAGE_DIR.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    failed = [n for n in names if not run_one(n)]
    total = len(names)
    print(
        f"{total - len(failed)} of {total} benchmark(s) ok"
        + (f"; failed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
