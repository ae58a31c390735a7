"""Reports: recorded runs in, a self-contained HTML page (and optional PNGs) out.

    from cblab.report import load_run, write_report
    write_report([load_run("data/runs/a"), load_run("data/runs/b")], "report.html")

or from a shell: `cblab report data/runs/a data/runs/b -o report.html`.
"""

from cblab.runs import Run, RunError, RunMeta, load_run, save_run

from .figures import report_figures
from .files import ReportFiles, write_report
from .html import ReportError, build_report
from .kpis import run_kpis
from .png import PngUnavailable, export_pngs

__all__ = [
    "PngUnavailable",
    "ReportError",
    "ReportFiles",
    "Run",
    "RunError",
    "RunMeta",
    "build_report",
    "export_pngs",
    "load_run",
    "report_figures",
    "run_kpis",
    "save_run",
    "write_report",
]
