"""Events -> pandas -> KPIs, for live and simulated runs alike.

    from cblab.analysis import kpis, phase_kpis, compare
    table = kpis(frame, "outage-and-recovery")       # one row per run
    compare(protected_run, unprotected_run)           # side by side

The KPI definitions are in `cblab.analysis.kpis`' docstring; which phases are
faults, and which scenario a recorded run played, in `cblab.analysis.scenarios`.
Reports and the live lab show these figures; they define none of their own.
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
from .glossary import GLOSSARY, glossary_markdown
from .kpis import (
    BREAKER_KPIS,
    DEFAULT_FLAP_WINDOW_S,
    FAULT_KPIS,
    GROUP_COLUMNS,
    KPI_COLUMNS,
    PROBE_FAILURE,
    TRIP,
    call_succeeded,
    episodes,
    false_trips,
    kpis,
    missing_reasons,
    phase_kpis,
    run_kpis,
    state_intervals,
    succeeded,
)
from .scenarios import (
    Window,
    as_scenario,
    baseline_phase,
    fault_phase_names,
    phase_labels,
    phase_windows,
    played_scenario,
)
from .waits import BREAKER_SOURCES, CALLER_SOURCES, refusal_waits

__all__ = [
    "BREAKER_KPIS",
    "BREAKER_SOURCES",
    "CALLER_SOURCES",
    "DEFAULT_FLAP_WINDOW_S",
    "EVENT_DTYPES",
    "FAULT_KPIS",
    "GLOSSARY",
    "GROUP_COLUMNS",
    "KPI_COLUMNS",
    "PROBE_FAILURE",
    "REQUIRED_COLUMNS",
    "TRIP",
    "AnalysisError",
    "Window",
    "as_scenario",
    "baseline_phase",
    "call_succeeded",
    "compare",
    "compare_variants",
    "episodes",
    "events_frame",
    "false_trips",
    "fault_phase_names",
    "glossary_markdown",
    "kpis",
    "missing_reasons",
    "phase_kpis",
    "phase_labels",
    "phase_windows",
    "played_scenario",
    "read_events",
    "refusal_waits",
    "run_kpis",
    "state_intervals",
    "succeeded",
    "write_events",
]
