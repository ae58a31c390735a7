"""Tables for people: a KPI frame shown as the HTML report shows it.

    from cblab.lab import show_table
    show_table(compare_variants(events, "hang"))

Percentages as %, latencies in ms (seconds converted), durations in s, counts as
whole numbers; a missing figure reads "n/a: <reason>" when the frame says why
(``attrs["unavailable"]``, as `cblab.analysis` sets it) and "never" for a recovery
that never came. KPI names may be the rows or the columns; the side with more
known KPI names wins. Returns a pandas Styler of the texts (for reading; keep the
frame itself for computing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..plots.tables import KPI_SPECS, NOT_AVAILABLE, format_kpi, kpi_spec, unavailable_kpis

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

__all__ = ["TABLE_STYLES", "format_figure", "format_value", "readable_table", "show_table"]


def _missing(value: Any) -> bool:
    import pandas as pd

    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_figure(name: str, value: Any, reason: str | None = None) -> str:
    """One figure as text: see the module docstring."""
    lowered = str(name).lower()
    if _missing(value):
        if reason:
            return f"{NOT_AVAILABLE}: {reason}"
        return "never" if "recover" in lowered else NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
    if lowered.endswith("_pct"):
        return f"{float(value):.1f} %"
    if "latency" in lowered and lowered.endswith("_s"):
        value = float(value) * 1000.0  # latencies read in ms
        return f"{value:,.0f} ms" if abs(value) >= 100 else f"{value:.1f} ms"
    spec = kpi_spec(str(name))
    fraction = "availability" in lowered or lowered.endswith(("rate", "share")) \
        or lowered.startswith("share")
    if spec.fmt == "float" and fraction and 0.0 <= float(value) <= 1.0:
        return f"{float(value) * 100:.1f} %"
    if spec.fmt == "float" and float(value).is_integer():
        return f"{int(value):,d}"
    return format_kpi(str(name), value, spec)


def _known(labels: Any) -> int:
    return sum(1 for label in labels if str(label) in KPI_SPECS or _looks_like_kpi(str(label)))


def _looks_like_kpi(name: str) -> bool:
    return any(part in name.lower() for part in
               ("latency", "rate", "availability", "recover", "trips", "share", "_s", "calls"))


def show_table(frame: pd.DataFrame) -> Styler:
    """`frame` formatted for reading (see the module docstring)."""
    rows_are_kpis = _known(frame.index) > _known(frame.columns)
    reasons = unavailable_kpis(frame)

    def reason_for(row: Any, column: Any) -> str | None:
        kpi, who = (row, column) if rows_are_kpis else (column, row)
        found = reasons.get((str(who), str(kpi))) or reasons.get((str(kpi), str(who)))
        if found is None and "recover" in str(kpi) and _trips(who) == 0:
            found = "the breaker never opened"
        return found

    def _trips(who: Any) -> Any:
        try:
            return frame.loc["trips", who] if rows_are_kpis else frame.loc[who, "trips"]
        except KeyError:
            return None

    def ratio(label: Any) -> bool:  # a "b / a" column or row holds ratios, not KPIs
        return " / " in str(label)

    text = frame.copy().astype(object)
    for row in frame.index:
        for column in frame.columns:
            name, value = (row if rows_are_kpis else column), frame.loc[row, column]
            if ratio(column if rows_are_kpis else row):
                text.loc[row, column] = "–" if _missing(value) else f"× {float(value):.2f}"
                continue
            text.loc[row, column] = format_figure(str(name), value, reason_for(row, column))
    # latencies read in ms: a label must not say seconds (latency_p50_s -> latency_p50_ms)
    text = text.rename(**{"index" if rows_are_kpis else "columns": _ms_label})
    return text.style.set_properties(**{"text-align": "right"})


def _ms_label(label: Any) -> Any:
    name = str(label)
    if "latency" in name.lower() and name.endswith("_s"):
        return f"{name.removesuffix('_s')}_ms"
    return label


#: A table that reads well beside the notebook's text: compact, no sideways overflow
#: (headers wrap), numbers right-aligned.
TABLE_STYLES: list[dict[str, Any]] = [
    {"selector": "", "props": [("border-collapse", "collapse"), ("font-size", "13px"),
                               ("max-width", "100%"), ("margin", "4px 0 10px 0")]},
    {"selector": "caption", "props": [("caption-side", "top"), ("text-align", "left"),
                                      ("font-weight", "600"), ("padding-bottom", "4px")]},
    {"selector": "th", "props": [("white-space", "normal"), ("padding", "4px 10px"),
                                 ("text-align", "right"), ("border-bottom", "1px solid #9ca3af"),
                                 ("font-weight", "600"), ("max-width", "14em")]},
    {"selector": "td", "props": [("padding", "3px 10px"), ("text-align", "right"),
                                 ("border-bottom", "1px solid #e5e7eb")]},
    {"selector": "th.row_heading", "props": [("text-align", "left")]},
]


def format_value(value: Any, missing: str = "–") -> str:
    """One cell for reading: whole numbers with thousands separators, other numbers to
    3 significant figures (no exponent below a billion), texts as they are."""
    if _missing(value):
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return f"{int(number):,d}"
        if abs(number) >= 1000:
            return f"{number:,.0f}"
        return f"{number:.3g}" if abs(number) >= 1e-3 else f"{number:.1e}"
    if isinstance(value, tuple | list):
        return " – ".join(format_value(v, missing) for v in value)
    return str(value)


def readable_table(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    index: bool = False,
    caption: str | None = None,
    missing: str = "–",
) -> Styler:
    """A few columns of `frame`, for a person: `columns` picks the columns to show, in
    order, each with its label (say the unit there: "first trip (s)"); every value is
    rounded (`format_value`) unless `formats` gives a column (by its name in `frame`)
    its own formatter. The index is hidden unless `index`. Returns a Styler: keep
    `frame` for computing."""
    import pandas as pd

    picked = frame if columns is None else frame.loc[:, list(columns)]
    formats = formats or {}
    text = picked.copy().astype(object)
    for column in picked.columns:
        fmt = formats.get(str(column)) or (lambda v: format_value(v, missing))
        text[column] = [fmt(v) if not _missing(v) or column in formats else missing
                        for v in picked[column].tolist()]
    if columns is not None:
        text = text.rename(columns=dict(columns))
    styler = text.style.set_table_styles(TABLE_STYLES)
    words = [label for label, column in zip(text.columns, picked.columns, strict=True)
             if not pd.api.types.is_numeric_dtype(picked[column])]
    if words:  # texts read from the left
        styler = styler.set_properties(subset=words, **{"text-align": "left"})
    if not index:
        styler = styler.hide(axis="index")
    if caption:
        styler = styler.set_caption(caption)
    return styler
