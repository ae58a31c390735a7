"""`cblab tune`: from your own recorded traffic to a breaker configuration, with evidence.

    fit the run  ->  stress variants of the fitted profile  ->  sweep  ->  robust pick + CIs

`variants.stress_variants` builds the scenarios (the observed outage, longer, harsher,
flapping), `pick.robust_pick` scores a `cblab.sim.sweep.sweep` table against an
`Objective`, and `admin` sends the pick to a running server's admin API.
"""

from __future__ import annotations

from .loop import TuneResult, repick, tune
from .pick import Objective, PointScore, TuneError, robust_pick, score_points
from .variants import VARIANTS, outage_phases, stress_variants

__all__ = ["VARIANTS", "Objective", "PointScore", "TuneError", "TuneResult", "outage_phases",
           "repick", "robust_pick", "score_points", "stress_variants", "tune"]
