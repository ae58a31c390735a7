"""Events -> pandas -> KPIs, for live and simulated runs alike.

    from cblab.analysis import kpis, phase_kpis, compare
    table = kpis(frame, "outage-and-recovery")       # one row per run
    compare(protected_run, unprotected_run)           # side by side

The KPI definitions are in `cblab.analysis.kpis`' docstring.
"""

from .compare import compare, compare_variants
from .frames import (
    EVENT_DTYPES,
    REQUIRED_COLUMNS,
    AnalysisError,
    events_frame,
    read_events,
    write_events,
)
from .kpis import (
    DEFAULT_FLAP_WINDOW_S,
    GROUP_COLUMNS,
    KPI_COLUMNS,
    Window,
    episodes,
    fault_phase_names,
    kpis,
    phase_kpis,
    phase_windows,
    run_kpis,
    state_intervals,
)

__all__ = [
    "DEFAULT_FLAP_WINDOW_S",
    "EVENT_DTYPES",
    "GROUP_COLUMNS",
    "KPI_COLUMNS",
    "REQUIRED_COLUMNS",
    "AnalysisError",
    "Window",
    "compare",
    "compare_variants",
    "episodes",
    "events_frame",
    "fault_phase_names",
    "kpis",
    "phase_kpis",
    "phase_windows",
    "read_events",
    "run_kpis",
    "state_intervals",
    "write_events",
]
