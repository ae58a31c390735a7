"""The breaker's state diagram as SVG, with the current state and last move highlighted.

Pure string building (no widgets), so it renders in an `ipywidgets.HTML`, in
`IPython.display.SVG` and in an HTML report alike.
"""

from __future__ import annotations

from html import escape

from ..plots.style import STATE_COLORS

__all__ = ["STATE_COLORS", "STATE_LABELS", "state_diagram_svg"]

STATE_LABELS = {"closed": "CLOSED", "open": "OPEN", "half_open": "HALF-OPEN"}

_NODES = {"closed": (110, 80), "open": (450, 80), "half_open": (280, 250)}
_RX, _RY = 78, 34

# (from, to): (path, label position, label lines)
_EDGES: dict[tuple[str, str], tuple[str, tuple[int, int], tuple[str, ...]]] = {
    ("closed", "open"): ("M 190 70 L 370 70", (280, 40), ("failures reach", "failure_threshold")),
    ("open", "half_open"): ("M 440 116 Q 420 200 350 238", (470, 190), ("timeout", "elapsed")),
    ("half_open", "closed"): ("M 210 238 Q 140 200 120 116", (84, 190),
                              ("success_threshold", "trials succeed")),
    ("half_open", "open"): ("M 300 214 Q 340 130 395 110", (330, 150), ("a trial", "fails")),
}


def state_diagram_svg(
    state: str,
    *,
    last_move: tuple[str, str] | None = None,
    config: dict[str, object] | None = None,
    width: int = 560,
) -> str:
    """SVG of CLOSED → OPEN → HALF-OPEN → CLOSED/OPEN with `state` filled in.

    `last_move` (from, to) draws that arrow bold; `config` (field -> value) puts the
    numbers on the labels, e.g. ``{"failure_threshold": 5, "timeout": 30}``.
    """
    if state not in _NODES:
        raise ValueError(f"state must be one of {sorted(_NODES)}, got {state!r}")
    config = config or {}
    height = round(width * 300 / 560)
    out = [
        f'<svg class="cblab-state-diagram" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 560 300" width="{width}" height="{height}" '
        'font-family="Helvetica, Arial, sans-serif" role="img" '
        f'aria-label="breaker state diagram, current state {STATE_LABELS[state]}">',
        "<defs>",
    ]
    for name, colour in (("plain", "#9aa0a6"), ("hot", "#202124")):
        out.append(
            f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    for (src, dst), (path, (lx, ly), lines) in _EDGES.items():
        hot = last_move == (src, dst)
        colour, stroke = ("#202124", 3.5) if hot else ("#9aa0a6", 1.6)
        out.append(
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="{stroke}" '
            f'marker-end="url(#arrow-{"hot" if hot else "plain"})"/>'
        )
        labels = [_with_value(line, config) for line in lines]
        weight = "bold" if hot else "normal"
        for i, text in enumerate(labels):
            out.append(
                f'<text x="{lx}" y="{ly + 14 * i}" text-anchor="middle" font-size="12" '
                f'font-weight="{weight}" fill="#3c4043">{escape(text)}</text>'
            )
    for name, (cx, cy) in _NODES.items():
        current = name == state
        colour = STATE_COLORS[name]
        fill = colour if current else "#ffffff"
        text = "#ffffff" if current else colour
        stroke = 4 if current else 2
        out.append(
            f'<ellipse cx="{cx}" cy="{cy}" rx="{_RX}" ry="{_RY}" fill="{fill}" '
            f'stroke="{colour}" stroke-width="{stroke}"/>'
            f'<text x="{cx}" y="{cy + 6}" text-anchor="middle" font-size="18" '
            f'font-weight="bold" fill="{text}">{STATE_LABELS[name]}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _with_value(line: str, config: dict[str, object]) -> str:
    value = config.get(line)
    if isinstance(value, (int, float)):
        unit = " s" if line == "timeout" else ""
        return f"{line} ({value:g}{unit})"
    return line
