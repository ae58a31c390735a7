"""Export a live run: the lab's recording -> `cblab.runs.save_run` -> `cblab.report`.

The recording holds the newest rows (bounded, see `LiveFeed`), on the lab's clock,
which starts at t = 0 with the lab and its scenario (the rule in `cblab.runs`).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .live import LiveLab

__all__ = ["export_live_run", "live_run_meta"]


def live_run_meta(lab: LiveLab, name: str) -> dict[str, Any]:
    applied = [{"t": round(t, 3), "control": c, "value": v} for t, c, v in lab.applied]
    return {
        "name": name,
        "kind": "live",
        "config": {lab.breaker: lab._config_dict()},
        # lab.scenario is already scaled to the durations it was played at
        "scenario": None
        if lab.scenario is None
        else {"name": lab.scenario.name, "spec": lab.scenario.to_dict()},
        "seed": lab.params.seed,
        "notes": (
            f"Live lab run: {', '.join(lab.variants)} against the {lab.service} "
            f"service through the {lab.tool} tool. Slider moves are in extra.applied."
        ),
        "extra": {
            "applied": applied,
            "rate": lab.params.rate,
            "tool": lab.tool,
            "service": lab.service,
            "first_chart_s": lab.first_chart_s,
        },
    }


def export_live_run(lab: LiveLab, directory: str | Path | None = None) -> Path:
    """Save `lab`'s recording as a run under `directory/runs/` and write
    `directory/<name>.html`; return the report's path. `directory` defaults to
    ``$CBLAB_REPORT_DIR``, else ``reports/`` in the working directory."""
    from ..report import write_report
    from ..runs import load_run, save_run

    frame = lab.feed.recorded_frame()
    if frame.empty:
        raise RuntimeError("nothing recorded yet: let the lab run for a few seconds first")
    # One clock for every source, t = 0 when the lab (and its scenario) started:
    # rows from before that (a server's warm-up) are not part of the run.
    frame = frame[frame["t"] >= 0].reset_index(drop=True)
    if lab.scenario is not None:
        from ..analysis import phase_labels

        frame["phase"] = phase_labels(frame["t"], lab.scenario)
    frame["seq"] = range(1, len(frame) + 1)  # rows come from several sources: renumber
    if directory is None:
        directory = os.environ.get("CBLAB_REPORT_DIR") or "reports"
    directory = Path(directory)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"live-{'-'.join(lab.variants)}-{stamp}"
    run_dir = save_run(directory / "runs" / name, frame, live_run_meta(lab, name))
    files = write_report(
        [load_run(run_dir)], directory / f"{name}.html", title=f"cblab live run {stamp}"
    )
    return Path(files.html)
