"""Writing a report to disk: the page, a copy of every run's data next to it, and
optionally PNGs. Every write is atomic: a failure never leaves a partial report
in place of a good one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from cblab.runs import EVENTS_FILE, META_FILE, Run, replace_dir

from .figures import run_dir_name
from .html import PlotlyJs, ReportError, build_report
from .png import PngUnavailable, export_pngs

__all__ = ["DATA_MARKER", "ReportFiles", "data_dir_for", "write_report"]

DATA_MARKER = "ABOUT.txt"


@dataclass
class ReportFiles:
    """What `write_report` wrote."""

    html: Path
    data_dir: Path | None
    pngs: list[Path] = field(default_factory=list)
    png_note: str | None = None  # why PNGs were not written, when asked for and impossible


def _write_run_copy(run: Run, target: Path) -> None:
    target.mkdir()
    src = run.path
    if src is not None and (src / EVENTS_FILE).is_file() and (src / META_FILE).is_file():
        shutil.copyfile(src / EVENTS_FILE, target / EVENTS_FILE)
        shutil.copyfile(src / META_FILE, target / META_FILE)
        return
    run.events.to_csv(target / EVENTS_FILE, index=False, lineterminator="\n")
    (target / META_FILE).write_text(
        json.dumps(run.meta.to_dict(), indent=2, default=str) + "\n", encoding="utf-8"
    )


def _write_temp(path: Path, text: str) -> Path:
    """`text` in a complete, synced temporary file next to `path` (renamed in later)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def data_dir_for(out_path: Path) -> Path:
    """Where `write_report` puts the runs' data: `<stem>_data/` next to the report."""
    return out_path.with_name(f"{out_path.stem}_data")


def write_report(
    runs: Sequence[Run],
    out_path: str | os.PathLike[str],
    *,
    plotlyjs: PlotlyJs = "inline",
    title: str | None = None,
    data: bool = True,
    png_dir: str | os.PathLike[str] | None = None,
) -> ReportFiles:
    """Build the report and write it to `out_path`, atomically.

    With `data=True` each run's events.csv and run.json are copied into
    `<stem>_data/NN-<name>/` and linked from the page. With `png_dir`, every
    figure is also saved as a PNG there (kaleido + Chromium); if that is not
    possible the HTML is still written and `ReportFiles.png_note` says why.
    """
    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise ReportError(f"{out} is a directory; give the report's file name")
    runs = list(runs)
    data_dir = data_dir_for(out) if data else None
    dir_names = [run_dir_name(i, run) for i, run in enumerate(runs, start=1)]
    hrefs = [f"{quote(data_dir.name)}/{quote(name)}" for name in dir_names] if data_dir else None
    text = build_report(runs, plotlyjs=plotlyjs, title=title, data_dirs=hrefs)
    if data_dir is not None and data_dir.exists() and not (data_dir / DATA_MARKER).is_file():
        raise ReportError(
            f"{data_dir} exists and was not written by cblab report; not replacing it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Order: the page complete in a temp file, then the data swapped in, then the page
    # renamed over the old one. A failure before the last step changes nothing.
    page = _write_temp(out, text)
    try:
        if data_dir is not None:
            tmp = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.", suffix=".tmp", dir=out.parent))
            try:
                (tmp / DATA_MARKER).write_text(
                    f"The recorded runs behind {out.name}, written by cblab report.\n"
                    "Each directory is a run: `cblab report DIR...` rebuilds a report from them.\n",
                    encoding="utf-8",
                )
                for run, name in zip(runs, dir_names, strict=True):
                    _write_run_copy(run, tmp / name)
                os.chmod(tmp, 0o755)
                replace_dir(tmp, data_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        os.replace(page, out)
    except BaseException:
        page.unlink(missing_ok=True)
        raise
    files = ReportFiles(html=out, data_dir=data_dir)
    if png_dir is not None:
        try:
            files.pngs = export_pngs(runs, png_dir)
        except PngUnavailable as exc:
            files.png_note = str(exc)
    return files
