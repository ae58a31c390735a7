"""`cblab report RUN... [-o report.html]`: an HTML report from recorded runs.

Exit status: 0 written (also when PNGs were asked for but could not be made:
a note says why), 2 bad input (nothing written), 1 the report could not be
written (disk, permissions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["main"]

PROG = "cblab report"

#: The time a report covers: its figures sample every second or so, so a run's span
#: sizes the work (a day: about 250 MB and a 4 MB page; a row at t = 1e12 asked
#: for 14.6 TiB).
MAX_SPAN_S = 86_400.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Build an HTML report (KPIs, breaker state, latency, backend load) "
        "from one or more recorded run directories; several runs are compared side by side.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="a recorded run directory")
    parser.add_argument(
        "-o", "--output", default="report.html", metavar="FILE",
        help="the HTML file to write (default: report.html); the runs' data go to FILE_data/",
    )  # fmt: skip
    parser.add_argument(
        "--cdn", action="store_true",
        help="load plotly.js from its CDN (small file, needs the network) instead of inlining it",
    )  # fmt: skip
    parser.add_argument("--title", help="the report's title")
    parser.add_argument(
        "--png", metavar="DIR", help="also save every figure as a PNG in DIR (kaleido + Chromium)"
    )
    parser.add_argument(
        "--no-data", action="store_true", help="do not copy the runs' data next to the report"
    )
    parser.add_argument(
        "--max-span", type=float, default=MAX_SPAN_S, metavar="S",
        help="refuse runs whose events span more than S seconds (default: %(default)g, a day)",
    )
    return parser


def _span_problem(run: Any, path: str, max_span: float) -> str | None:
    """Why a run's times cannot be reported (None if they can): the figures sample
    the whole span, so it is checked before any figure is built."""
    import numpy as np
    import pandas as pd

    t = pd.to_numeric(run.events["t"], errors="coerce").to_numpy(dtype="float64")
    if len(t) == 0:
        return None
    if not np.isfinite(t).all():
        return f"{path}: events.csv has a time t that is not a finite number"
    low, high = min(float(t.min()), 0.0), max(float(t.max()), 0.0)
    if high - low > max_span:
        return (f"{path}: events span {high - low:.6g} s (t from {low:.6g} to {high:.6g}), "
                f"more than a report covers ({max_span:g} s; raise it with --max-span S)")
    return None


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors are 2, --help is 0
        return int(exc.code or 0)

    from cblab.runs import RunError, load_run

    from .files import write_report
    from .html import ReportError

    if not (0 < args.max_span <= 365 * 86_400.0):
        _error(f"--max-span must be > 0 and at most a year (31536000 s), got {args.max_span:g}")
        return 2
    runs = []
    for path in args.runs:
        try:
            runs.append(load_run(path))
        except RunError as exc:
            _error(str(exc))
            return 2
        problem = _span_problem(runs[-1], path, args.max_span)
        if problem:
            _error(problem)
            return 2
    out = Path(args.output)
    try:
        files = write_report(
            runs,
            out,
            plotlyjs="cdn" if args.cdn else "inline",
            title=args.title,
            data=not args.no_data,
            png_dir=args.png,
        )
    except ReportError as exc:
        _error(str(exc))
        return 2
    except OSError as exc:
        _error(f"cannot write {out}: {exc.strerror or exc}")
        return 1
    size_mb = files.html.stat().st_size / 1e6
    print(f"wrote {files.html} ({size_mb:.1f} MB, {len(runs)} run{'s' * (len(runs) != 1)})")
    if files.data_dir is not None:
        print(f"wrote {files.data_dir}/ (the runs' events.csv and run.json)")
    if files.pngs:
        print(f"wrote {len(files.pngs)} PNG files to {args.png}/")
    if files.png_note:
        print(
            f"{PROG}: note: {files.png_note}; the HTML report was written anyway", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
