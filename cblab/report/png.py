"""Static images of the report's figures (PNG through kaleido and a Chromium)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cblab.runs import Run

from .figures import report_figures
from .html import ReportError

__all__ = ["PngUnavailable", "export_pngs"]


class PngUnavailable(RuntimeError):
    """PNG export is not possible here (no kaleido, or no Chromium for it)."""


def export_pngs(
    runs: Sequence[Run],
    out_dir: str | os.PathLike[str],
    *,
    width: int = 1100,
    scale: float = 1.0,
    only: Sequence[str] | None = None,
) -> list[Path]:
    """Write every report figure as `<out_dir>/<figure id>.png`; return the paths.

    `only`: figure ids to write (e.g. ``["run-1-state_timeline"]``), default all.

    Uses kaleido, which drives a Chromium: the system one on PATH (Debian's
    `chromium`) or `$BROWSER_PATH`. Raises `PngUnavailable` (and writes nothing)
    when that does not work.
    """
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError as exc:
        raise PngUnavailable(f"PNG export needs kaleido ({exc}); pip install kaleido") from None
    figures = [f for section in report_figures(runs).values() for f in section]
    if only is not None:
        unknown = sorted(set(only) - {f.id for f in figures})
        if unknown:
            raise ReportError(f"no such figure(s): {', '.join(unknown)}")
        figures = [f for f in figures if f.id in set(only)]
    target = Path(out_dir)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".png.", dir=target))
    try:
        paths = [tmp / f"{f.id}.png" for f in figures]
        try:
            pio.write_images(
                [f.figure for f in figures],
                [str(p) for p in paths],
                format="png",
                width=width,
                scale=scale,
            )
        except Exception as exc:  # kaleido/choreographer raise many kinds
            browser = os.environ.get("BROWSER_PATH")
            hint = (
                f" (BROWSER_PATH={browser!r})"
                if browser
                else "; install chromium or set BROWSER_PATH=/usr/bin/chromium"
            )
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            shutil.rmtree(tmp, ignore_errors=True)
            if created:
                with contextlib.suppress(OSError):
                    target.rmdir()
            raise PngUnavailable(f"PNG export unavailable: {first}{hint}") from None
        final = []
        for path in paths:
            dest = target / path.name
            os.replace(path, dest)
            final.append(dest)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
