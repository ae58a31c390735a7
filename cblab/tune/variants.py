"""Stress variants of a fitted scenario: what if the outage you saw came back worse?

A breaker tuned on the one outage a recording happened to hold is tuned for that
outage only. These variants keep the fitted profiles and change the outage phases
(those whose calls mostly failed or timed out):

- ``observed``: the fitted scenario as it is;
- ``longer``: each outage phase lasts `longer` times as long;
- ``harsher``: in each outage phase, errors and calls that hang past the deadline
  each go halfway to every call (a slow outage ties up what a fast one does not);
- ``flapping``: each outage phase is cut into `cycles` bursts with healthy gaps
  between them (the profile of the run's first healthy phase), so a breaker that
  closes too eagerly trips again and again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from cblab.sim.run import DEFAULT_DEADLINE_S

__all__ = ["OUTAGE_SHARE", "VARIANTS", "outage_phases", "stress_variants"]

VARIANTS: tuple[str, ...] = ("observed", "longer", "harsher", "flapping")
#: A phase is an outage when at least this share of its calls failed or timed out.
OUTAGE_SHARE = 0.2


def _bad_share(profile: Mapping[str, Any]) -> float:
    if profile.get("mode") == "hang":
        return 1.0
    return float(profile.get("error_rate", 0.0)) + float(profile.get("slow_fraction", 0.0))


def outage_phases(scenario: Mapping[str, Any], service: str = "users") -> list[int]:
    """Indexes of the fault phases: those that say so (``"fault": true``, as a fitted
    scenario's do, by the rule analysis uses), else those where at least
    `OUTAGE_SHARE` of the calls went wrong."""
    phases = scenario["phases"]
    if any("fault" in phase for phase in phases):
        return [i for i, phase in enumerate(phases) if phase.get("fault") is True]
    return [i for i, phase in enumerate(phases)
            if _bad_share(phase.get("faults", {}).get(service, {})) >= OUTAGE_SHARE]


def _halfway(value: Any) -> float:
    return min(1.0, float(value) + (1.0 - float(value)) / 2)


def _harsher(profile: dict[str, Any], deadline_s: float) -> dict[str, Any]:
    """Errors and calls that hang past the deadline each halfway to all calls."""
    if profile.get("mode") == "hang":
        return profile
    profile["error_rate"] = _halfway(profile.get("error_rate", 0.0))
    profile["slow_fraction"] = _halfway(profile.get("slow_fraction", 0.0))
    profile["slow_ms"] = max(float(profile.get("slow_ms", 0.0)), 2000.0 * deadline_s)
    return profile


def stress_variants(scenario: Mapping[str, Any], *, service: str = "users",
                    names: Sequence[str] = VARIANTS, longer: float = 3.0,
                    cycles: int = 3, deadline_s: float = DEFAULT_DEADLINE_S
                    ) -> list[dict[str, Any]]:
    """One scenario dict per variant in `names`, each named ``<scenario>-<variant>``.

    ValueError when the scenario has no outage phase (nothing to stress) or a name
    is unknown.
    """
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    outages = outage_phases(scenario, service)
    if not outages:
        raise ValueError("the fitted run has no outage (no phase much worse than its "
                         "quietest one): nothing to tune a breaker against")
    phases = scenario["phases"]
    healthy = next((p for i, p in enumerate(phases) if i not in outages), None)
    out = []
    for name in names:
        new: list[dict[str, Any]] = []
        for i, phase in enumerate(phases):
            phase = copy.deepcopy(phase)
            if i not in outages or name == "observed":
                new.append(phase)
            elif name == "longer":
                phase["duration_s"] = float(phase["duration_s"]) * longer
                new.append(phase)
            elif name == "harsher":
                phase["faults"][service] = _harsher(dict(phase["faults"][service]),
                                                     deadline_s)
                new.append(phase)
            else:  # flapping
                burst = float(phase["duration_s"]) / cycles
                for k in range(cycles):
                    new.append({**copy.deepcopy(phase), "name": f"{phase['name']}-{k + 1}",
                                "duration_s": burst})
                    gap = copy.deepcopy(healthy) if healthy is not None else {
                        "faults": {service: {}}, "load": phase.get("load", {})}
                    gap.update(name=f"{phase['name']}-gap-{k + 1}", duration_s=max(burst / 2, 1.0))
                    new.append(gap)
        out.append({**{k: v for k, v in scenario.items() if k != "phases"},
                    "name": f"{scenario.get('name', 'fitted')}-{name}", "phases": new})
    return out
