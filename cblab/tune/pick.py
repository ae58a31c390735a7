"""Score a sweep over stress variants against an objective and pick robustly.

Per grid point and variant, the objective's mean over seeds and its 95 % confidence
interval (Student's t); a point's *robust* score is its worst variant's mean. The
pick is the point with the best robust score among those meeting the constraint
(worst variant's mean wasted calls at most `max_wasted`); ties go to fewer wasted
calls, then to the earlier grid point.

Objectives:

- ``availability`` (higher is better): the share of requests that succeeded;
- ``cost`` (lower is better): per 1,000 requests, ``cost_failed`` x failed +
  ``cost_wasted`` x wasted (calls sent into the failing dependency) +
  ``cost_refused`` x refused (the breaker's fast refusals).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Objective", "PointScore", "TuneError", "mean_ci", "robust_pick", "score_points"]

# Student's t, two-sided 95 %, by degrees of freedom (1..30); 1.96 beyond.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


class TuneError(ValueError):
    """The tuning cannot go on (bad objective, no setting meets the constraint...)."""


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (nan for one value)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(n)


@dataclass(frozen=True)
class Objective:
    kind: str = "availability"  # or "cost"
    cost_failed: float = 1.0
    cost_wasted: float = 1.0
    cost_refused: float = 0.0
    max_wasted: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("availability", "cost"):
            raise TuneError(f"objective must be availability or cost, got {self.kind!r}")
        for name in ("cost_failed", "cost_wasted", "cost_refused"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise TuneError(f"{name} must be a number >= 0, got {value!r}")
        if self.max_wasted is not None and not (math.isfinite(self.max_wasted)
                                                and self.max_wasted >= 0):
            raise TuneError(f"max_wasted must be >= 0 calls, got {self.max_wasted!r}")

    @property
    def higher_is_better(self) -> bool:
        return self.kind == "availability"

    @property
    def label(self) -> str:
        return "availability" if self.kind == "availability" else "cost per 1k requests"

    def value(self, row: Mapping[str, Any]) -> float:
        """The objective for one simulated run (a sweep row)."""
        if self.kind == "availability":
            return float(row["availability"])
        requested = max(float(row["requested"]), 1.0)
        cost = (self.cost_failed * float(row["failed"]) + self.cost_wasted * float(row["wasted"])
                + self.cost_refused * float(row["rejected"]))
        return 1000.0 * cost / requested


@dataclass(frozen=True)
class PointScore:
    """One grid point over every variant: per variant (mean, CI half-width) of the
    objective and the mean wasted calls; the worst variant decides."""

    setting: dict[str, Any]
    per_variant: dict[str, tuple[float, float]]
    wasted: dict[str, float]
    higher_is_better: bool = field(default=True)

    @property
    def worst_variant(self) -> str:
        pick = min if self.higher_is_better else max
        return pick(self.per_variant, key=lambda v: self.per_variant[v][0])

    @property
    def robust(self) -> float:
        return self.per_variant[self.worst_variant][0]

    @property
    def worst_wasted(self) -> float:
        return max(self.wasted.values())


def score_points(table: pd.DataFrame, settings: Sequence[str], objective: Objective
                 ) -> list[PointScore]:
    """Every grid point of a sweep table (in the table's order), scored."""
    missing = [c for c in (*settings, "scenario", "seed") if c not in table]
    if missing:
        raise TuneError(f"the sweep table has no column(s) {', '.join(missing)}")
    values = [objective.value(row) for row in table.to_dict("records")]
    frame = table.assign(_objective=values)
    frame.attrs = {}  # pandas deep-copies attrs (the sweep's metadata) on every groupby
    out = []
    for key, group in frame.groupby(list(settings), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        per_variant: dict[str, tuple[float, float]] = {}
        wasted: dict[str, float] = {}
        for name, runs in group.groupby("scenario", sort=False):
            per_variant[str(name)] = mean_ci(list(runs["_objective"]))
            wasted[str(name)] = float(runs["wasted"].mean())
        setting = {k: (v.item() if hasattr(v, "item") else v)
                   for k, v in zip(settings, key, strict=True)}
        out.append(PointScore(setting, per_variant, wasted, objective.higher_is_better))
    return out


def robust_pick(points: Sequence[PointScore], objective: Objective) -> PointScore:
    """The point whose worst variant is best, among those meeting `max_wasted`."""
    allowed = [p for p in points if objective.max_wasted is None
               or p.worst_wasted <= objective.max_wasted]
    if not allowed:
        least = min(points, key=lambda p: p.worst_wasted)
        raise TuneError(f"no setting keeps wasted calls at most {objective.max_wasted:g} in every "
                        f"variant; the fewest is {least.worst_wasted:.1f} at {least.setting}")
    sign = -1.0 if objective.higher_is_better else 1.0
    return min(allowed, key=lambda p: (sign * p.robust, p.worst_wasted))
