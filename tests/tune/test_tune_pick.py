"""`cblab tune` on crafted traffic: the fit recovers the generating profile, and the pick
is the brute-force optimum (every run simulated here, scored with plain statistics)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from cblab import CircuitBreakerConfig
from cblab.analysis.kpis import run_kpis
from cblab.faults.fit import fit_run
from cblab.sim import simulate
from cblab.sim.sweep import read_sweep
from cblab.tune import stress_variants
from cblab.tune.cli import main
from tests.tune.traffic import PROFILE, crafted_rows, write_rows

GRID = {"failure_threshold": [3, 20], "timeout": [5.0, 60.0]}
SEEDS = 3
ARGS = ["--workers", "1", "--seeds", str(SEEDS),
        "--param", "failure_threshold=3,20", "--param", "timeout=5,60"]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows(tmp_path_factory.mktemp("tune") / "traffic.json", crafted_rows())


def _brute_force(rows: list[dict], objective) -> tuple[dict, float]:
    """Every (point, variant, seed) simulated; the point whose worst variant mean is best."""
    variants = stress_variants(fit_run(rows).scenario("traffic"))
    best: tuple[dict, float] | None = None
    for ft in GRID["failure_threshold"]:
        for timeout in GRID["timeout"]:
            config = {"failure_threshold": ft, "timeout": timeout}
            worst = min(statistics.fmean(objective(run_kpis(simulate(v, config, seed=s)))
                                         for s in range(SEEDS)) for v in variants)
            if best is None or worst > best[1]:
                best = (config, worst)
    assert best is not None
    return best


def test_the_fit_recovers_the_generating_profile():
    fit = fit_run(crafted_rows())
    assert [p.name for p in fit.phases] == [p[0] for p in PROFILE]
    for phase, (_, seconds, rate, error_rate, _) in zip(fit.phases, PROFILE, strict=True):
        low, high = phase.error_interval
        assert low <= error_rate <= high, (phase.name, phase.error_interval)
        assert abs(phase.rate_per_s - rate) / rate < 0.15
        assert abs(phase.duration_s - seconds) < 1.0


def test_the_pick_is_the_brute_force_optimum(traffic: Path, tmp_path: Path, capsys):
    out = tmp_path / "config.json"
    table = tmp_path / "runs.csv"
    assert main([str(traffic), *ARGS, "-o", str(out), "--table", str(table)]) == 0
    printed = capsys.readouterr().out
    assert len(read_sweep(table)) == 4 * 4 * SEEDS  # settings x variants x seeds
    setting, worst = _brute_force(json.loads(traffic.read_text()),
                                  lambda k: float(k["availability"]))
    picked = json.loads(out.read_text())
    assert {k: picked[k] for k in setting} == setting
    assert f"worst case: {worst:.2%}" in printed
    # what it buys is against the library's default config unless --current says otherwise
    assert "current {'failure_threshold': 5, 'timeout': 30.0}" in printed
    # the file is a whole config: the library and `cblab serve --github-config` take it
    assert CircuitBreakerConfig.from_dict(dict(picked)).failure_threshold == setting[
        "failure_threshold"]
    from cblab.server.cli import breaker_configs, build_parser

    served = breaker_configs(build_parser().parse_args(["--github-config", out.read_text()]))
    assert served["github"].timeout == setting["timeout"]


def test_a_cost_objective_picks_the_cheapest_worst_case(traffic: Path, tmp_path: Path, capsys):
    out = tmp_path / "config.json"
    weights = {"failed": 1.0, "wasted": 10.0, "rejected": 0.5}
    assert main([str(traffic), *ARGS, "-o", str(out), "--objective", "cost",
                 "--cost-failed", "1", "--cost-wasted", "10", "--cost-refused", "0.5"]) == 0

    def minus_cost(k: dict) -> float:  # the brute force maximises; cost is minimised
        spent = sum(w * float(k[name]) for name, w in weights.items())
        return -1000.0 * spent / max(float(k["requested"]), 1.0)

    setting, _ = _brute_force(json.loads(traffic.read_text()), minus_cost)
    picked = json.loads(out.read_text())
    assert {k: picked[k] for k in setting} == setting


def test_current_config_is_compared_and_kept_under_the_pick(traffic: Path, tmp_path: Path,
                                                            capsys):
    current = tmp_path / "today.json"
    current.write_text(json.dumps({"failure_threshold": 8, "timeout": 12, "success_threshold": 3}))
    out = tmp_path / "config.json"
    assert main([str(traffic), *ARGS, "--current", str(current), "-o", str(out)]) == 0
    assert "current {'failure_threshold': 8, 'timeout': 12}" in capsys.readouterr().out
    assert json.loads(out.read_text())["success_threshold"] == 3  # not a grid key: kept


def test_max_wasted_no_setting_can_meet_is_refused_in_one_line(traffic: Path, capsys):
    assert main([str(traffic), *ARGS, "--max-wasted", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cblab tune: no setting keeps wasted calls at most 0")
    assert "\n" not in err
