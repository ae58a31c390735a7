"""Figure builders shared by the notebooks, the live lab and the reports.

One function per figure: an event frame (`cblab.schema.EVENT_COLUMNS`) in, a
`plotly.graph_objects.Figure` out. Pure, fast, and fine with an empty frame.
The arrays behind each figure come from `cblab.plots.traces`, so a live
`FigureWidget` can be refreshed in place with `set_trace_data`.
"""

from .figures import (
    backend_load,
    latency_distribution,
    latency_scatter,
    state_timeline,
    success_rate,
)
from .style import OUTCOME_COLORS, STATE_COLORS, VARIANT_COLORS, empty_figure, variant_colors
from .tables import (
    KPI_SPECS,
    KpiSpec,
    compare_kpis,
    comparison_table,
    format_kpi,
    kpi_spec,
    kpi_table,
)
from .traces import (
    backend_rate_series,
    combine_events,
    latency_ecdf,
    latency_groups,
    latency_points,
    phase_spans,
    set_trace_data,
    state_bands,
    success_rate_series,
)

__all__ = [
    "KPI_SPECS",
    "OUTCOME_COLORS",
    "STATE_COLORS",
    "VARIANT_COLORS",
    "KpiSpec",
    "backend_load",
    "backend_rate_series",
    "combine_events",
    "compare_kpis",
    "comparison_table",
    "empty_figure",
    "format_kpi",
    "kpi_spec",
    "kpi_table",
    "latency_distribution",
    "latency_ecdf",
    "latency_groups",
    "latency_points",
    "latency_scatter",
    "phase_spans",
    "set_trace_data",
    "state_bands",
    "state_timeline",
    "success_rate",
    "success_rate_series",
    "variant_colors",
]
