"""Notebook 02's panel: buttons and sliders wired to a `BreakerStepper`.

The GUI only: every decision is the stepper's (a real breaker on a manual clock).

>>> panel = StateMachinePanel()   # doctest: +SKIP
>>> panel                         # displays the panel
>>> panel.click("fail")           # what a button press does, callable from code
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as W

from .. import CircuitBreakerConfig
from .diagram import STATE_COLORS, STATE_LABELS, state_diagram_svg
from .stepper import BreakerStepper, Step

__all__ = ["StateMachinePanel"]

_CSS = """
<style>
.cblab-panel { font-family: Helvetica, Arial, sans-serif; }
.cblab-counters table { border-collapse: collapse; font-size: 13px; }
.cblab-counters td { padding: 2px 10px; border-bottom: 1px solid #eee; }
.cblab-counters td.v { text-align: right; font-weight: bold; font-variant-numeric: tabular-nums; }
.cblab-log { font-size: 13px; line-height: 1.45; }
.cblab-error { color: #b00020; font-weight: bold; }
</style>
"""


class StateMachinePanel:
    """Buttons (call succeeds / fails / starts and stays in flight, time passes),
    sliders for the four settings, the state diagram and the counters."""

    def __init__(self, stepper: BreakerStepper | None = None, *, log_lines: int = 8) -> None:
        self.stepper = stepper or BreakerStepper(
            CircuitBreakerConfig(failure_threshold=3, success_threshold=2, timeout=10,
                                 half_open_max_calls=2)
        )
        self.log_lines = log_lines
        actions: dict[str, tuple[str, str, str, Callable[[], Step]]] = {
            "succeed": ("call succeeds", "success", "check", self.stepper.succeed),
            "fail": ("call fails", "danger", "times", self.stepper.fail),
            "begin": ("start slow call", "", "hourglass-start", self.stepper.begin),
            "finish_ok": ("slow call succeeds", "", "check-circle",
                          lambda: self.stepper.finish(True)),
            "finish_fail": ("slow call fails", "", "times-circle",
                            lambda: self.stepper.finish(False)),
            "advance": ("let time pass", "info", "clock-o",
                        lambda: self.stepper.advance(self.advance_by.value)),
            "reset": ("reset", "warning", "undo", self.stepper.reset),
        }
        self._actions = {name: act for name, (_, _, _, act) in actions.items()}
        self.buttons: dict[str, W.Button] = {}
        for name, (label, button_style, icon, _) in actions.items():
            button = W.Button(description=label, button_style=button_style, icon=icon,
                              layout=W.Layout(width="auto"))
            button.add_class(f"cblab-{name.replace('_', '-')}")
            button.on_click(lambda _b, name=name: self.click(name))
            self.buttons[name] = button
        self.advance_by = W.FloatSlider(value=5.0, min=0.5, max=60.0, step=0.5,
                                        description="by (s)", readout_format=".1f",
                                        layout=W.Layout(width="300px"))
        config = self.stepper.config
        style = {"description_width": "150px"}
        wide = W.Layout(width="440px")
        self.sliders: dict[str, W.ValueWidget] = {
            "failure_threshold": W.IntSlider(value=config.failure_threshold, min=1, max=10,
                                             description="failure_threshold", style=style, layout=wide),
            "timeout": W.FloatSlider(value=config.timeout, min=1.0, max=60.0, step=1.0,
                                     description="timeout (s)", style=style, layout=wide),
            "half_open_max_calls": W.IntSlider(value=config.half_open_max_calls, min=1, max=5,
                                               description="half_open_max_calls", style=style, layout=wide),
            "success_threshold": W.IntSlider(value=config.success_threshold, min=1, max=5,
                                             description="success_threshold", style=style, layout=wide),
        }
        for name, slider in self.sliders.items():
            slider.add_class(f"cblab-{name.replace('_', '-')}")
            slider.observe(self._on_slider, names="value")
        # Below the sliders, as wide as they are: beside them a refusal's long text
        # spread over their readouts.
        self.config_message = W.HTML(layout=W.Layout(width="440px", min_height="1.5em"))
        self.config_message.add_class("cblab-config-message")
        self.diagram = W.HTML()
        self.counters = W.HTML()
        self.counters.add_class("cblab-counters")
        self.log = W.HTML()
        self.log.add_class("cblab-log")
        self.widget = W.VBox([
            W.HTML(_CSS),
            W.HBox([self.buttons[n] for n in ("succeed", "fail", "begin", "finish_ok",
                                                "finish_fail")]),
            W.HBox([self.buttons["advance"], self.advance_by, self.buttons["reset"]]),
            W.HBox([self.diagram, self.counters]),
            W.HTML("<b>Settings</b> (applied at once; the failure count restarts)"),
            W.VBox([*self.sliders.values(), self.config_message]),
            self.log,
        ])
        self.widget.add_class("cblab-panel")
        self.widget.add_class("cblab-state-machine")
        self._render()

    # --- actions ---------------------------------------------------------------------

    def click(self, name: str) -> Step:
        """Do what button `name` does (succeed, fail, begin, finish_ok, finish_fail,
        advance, reset) and redraw."""
        try:
            action = self._actions[name]
        except KeyError:
            raise ValueError(f"no button {name!r}; buttons: {sorted(self._actions)}") from None
        step = action()
        self._render()
        return step

    def _on_slider(self, _change: dict[str, Any]) -> None:
        error = self.stepper.configure(**{n: s.value for n, s in self.sliders.items()})
        if error:
            self.config_message.value = (
                f'<span class="cblab-error">Not applied: {escape(error)}</span><br>'
                f"Still using the last valid settings."
            )
        else:
            self.config_message.value = '<span style="color:#2ca02c">✓ applied</span>'
        self._render()

    # --- drawing ---------------------------------------------------------------------

    def _render(self) -> None:
        stepper = self.stepper
        change = stepper.last_transition
        last_move = (change.from_state.value, change.to_state.value) if change else None
        config = stepper.config
        self.diagram.value = state_diagram_svg(
            stepper.state, last_move=last_move, width=520,
            config={"failure_threshold": config.failure_threshold, "timeout": config.timeout,
                    "success_threshold": config.success_threshold},
        )
        self.counters.value = _counters_table(stepper.counters())
        rows = []
        for step in list(stepper.steps)[-self.log_lines:][::-1]:
            colour = STATE_COLORS[step.state_after]
            rows.append(
                f'<div><span style="color:#888">t={step.at:g}s</span> '
                f'<span style="color:{colour};font-weight:bold">'
                f"[{STATE_LABELS[step.state_after]}]</span> {escape(step.message)}</div>"
            )
        self.log.value = "".join(rows) or "<i>Press a button.</i>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _counters_table(counters: dict[str, Any]) -> str:
    state = counters["state"]
    retry = counters["retry_after"]
    rows = [
        ("state", f'<span style="color:{STATE_COLORS[state]}">{STATE_LABELS[state]}</span>'),
        ("clock", f"{counters['clock']:g} s"),
    ]
    if "consecutive_failures" in counters:
        rows.append(("consecutive failures",
                     f"{counters['consecutive_failures']} / {counters['failure_threshold']}"))
    elif "failures_since_closed" in counters:
        rows.append(("failures since closed",
                     f"{counters['failures_since_closed']} / {counters['failure_threshold']}"))
    rows += [
        ("trial successes", f"{counters['trial_successes']} / {counters['success_threshold']}"),
        ("trials in flight", f"{counters['trials_in_flight']} / {counters['half_open_max_calls']}"),
        ("calls in flight", counters["in_flight"]),
        ("retry after", "—" if not retry else f"{retry:g} s"),
        ("calls admitted", counters["calls"]),
        ("rejected", counters["rejected"]),
        ("late outcomes", counters["late"]),
        ("trips", counters["trips"]),
        ("failed probes", counters["probe_failures"]),
    ]
    body = "".join(f'<tr><td>{k}</td><td class="v">{v}</td></tr>' for k, v in rows)
    return f"<table>{body}</table>"
