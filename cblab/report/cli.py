"""`cblab report RUN... [-o report.html]`: an HTML report from recorded runs.

Exit status: 0 written (also when PNGs were asked for but could not be made:
a note says why), 2 bad input (nothing written), 1 the report could not be
written (disk, permissions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

PROG = "cblab report"


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
    return parser


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

    runs = []
    for path in args.runs:
        try:
            runs.append(load_run(path))
        except RunError as exc:
            _error(str(exc))
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
