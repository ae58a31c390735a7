"""The widget layer: ipywidgets panels and live plotly charts for the notebooks.

Models (plain Python, no widgets) and the panels that wire widgets to them:

============================  ==============================  ==========================
model                         panel                           notebook
============================  ==============================  ==========================
`BreakerStepper`              `StateMachinePanel`             02-state-machine
`compare_policies`            (a figure)                      02-state-machine
`LabSession` (+ `LiveFeed`)    `LiveLab`                       01-why, 03-live-lab, 04
`tuning` (sweeps)             (figures)                       04-tuning
`patterns` (retries, bulkhead) (figures)                      05-related-patterns
`traced_calls` (otel extra)    `SpansView` (`spans_view.py`)   06-reports
============================  ==============================  ==========================

Widget modules (`LiveLab`, `StateMachinePanel`) are imported lazily, so the models
import without ipywidgets. `LabSession` (`session.py`) runs a live lab without
widgets (tests, scripts) on the lab's own event loop (`loop.py`), against a
`LabTarget` (`target.py`); `controls.py` is the table of live controls,
`pacing.py` paces chart updates by the browser, `record.py` saves live runs
(`cblab record`, Export report).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .compare import (
    PolicyComparison,
    compare_policies,
    default_policies,
    expected_calls_until_trip,
    trip_time_table,
)
from .diagram import state_diagram_svg
from .feed import LiveFeed
from .links import file_url, report_link_html
from .params import LabParams, ParamError
from .patterns import (
    BulkheadSpec,
    PatternRun,
    RetrySpec,
    compare_bulkheads,
    compare_retries,
    simulate_bulkhead,
    simulate_retries,
)
from .stepper import BreakerStepper, Step
from .tables import readable_table, show_table

if TYPE_CHECKING:
    from .live import LiveLab
    from .session import LabSession
    from .state_machine import StateMachinePanel

__all__ = [
    "BreakerStepper",
    "BulkheadSpec",
    "LabParams",
    "LabSession",
    "LiveFeed",
    "LiveLab",
    "ParamError",
    "PatternRun",
    "PolicyComparison",
    "RetrySpec",
    "StateMachinePanel",
    "Step",
    "compare_bulkheads",
    "compare_policies",
    "compare_retries",
    "default_policies",
    "expected_calls_until_trip",
    "file_url",
    "readable_table",
    "report_link_html",
    "show_table",
    "simulate_bulkhead",
    "simulate_retries",
    "state_diagram_svg",
    "trip_time_table",
]

_LAZY = {"LiveLab": ".live", "LabSession": ".session", "StateMachinePanel": ".state_machine"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
