"""Agents that retry, on virtual time: the retry storm an outage causes, and its defences.

    from cblab.sim.agents import Agent, simulate_agents
    run = simulate_agents("outage-and-recovery", Agent.model(retries=3), seed=1)
    retry_kpis(run.to_frame(), run.scenario, requests=run.requests)   # cblab.analysis.retries

In MCP the retrier is often not the developer: the model calls a failing tool
again, an agent framework retries it, a library does. An `Agent` says how a
failed or refused tool call is re-issued:

==============  ===========================================  ==========================
kind            after a failure                               after a refusal
==============  ===========================================  ==========================
``none``        gives up                                      gives up
``model``       calls again after `think_s` (the model's      the same: it does not read
                turn), up to `retries` times                  the refusal
``framework``   waits ``backoff * 2**n`` (no jitter: every    the same: a framework
                agent on the same schedule; ``jitter=True``:  retries every error
                a uniform draw below it), up to `retries`
``budgeted``    cblab's `RetryPolicy`: full jitter, a retry   gives up: a refusal is
                budget shared by the agents, and no retry     never retried
                once `max_streak` calls in a row failed
``patient``     calls again after `think_s`                   waits the refusal's
                                                              ``retry_after_s``, then
                                                              calls again
==============  ===========================================  ==========================

Every attempt is one call through the server's breaker (one event row), exactly
as a retried MCP tool call is live. The rest of the world is the simulator's
(`cblab.sim.model.Simulation`): the same backend model, arrivals and RNG
streams, so a seed reproduces a run and an agent-free run with the same seed
sees the same first attempts. Arrivals are requests (what the agents want);
attempts are what reaches the server.

The analysis of these runs (load on the dependency during the fault, time to
recover, calls wasted) is `cblab.analysis.retries`, shared with live runs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cblab import CircuitBreakerConfig
from cblab.faults.profile import plan_request
from cblab.faults.scenario import Scenario
from cblab.integrations.budget import RetryBudget, backoff_limit, full_jitter, streak_limit

from .bounds import DEFAULT_MAX_CALLS, WorkLimitError, check_limit, expected_calls
from .engine import gc_paused
from .model import (
    _QUEUED,
    ERROR_REFUSED,
    ERROR_REJECTED,
    FAILURE,
    FAST_FAIL_S,
    REJECTED,
    SUCCESS,
    Simulation,
    _Call,
    _plan_error,
)
from .run import DEFAULT_DEADLINE_S, SimRun, _config
from .workload import load_phases, resolve_scenario

__all__ = ["AGENT_KINDS", "Agent", "AgentRun", "AgentSimulation", "simulate_agents"]

AGENT_KINDS = ("none", "model", "framework", "budgeted", "patient")


@dataclass(frozen=True)
class Agent:
    """How an agent re-issues failed tool calls (see the module table)."""

    kind: str = "none"
    retries: int = 3
    think_s: float = 0.0  # the model's turn before it calls again
    backoff: float = 0.1  # framework / budgeted: base delay, doubled per retry
    max_backoff: float = 5.0
    budget_ratio: float = 0.1  # budgeted: retries per call, token bucket
    budget_burst: float = 10.0
    #: budgeted: no retry once this many calls in a row have failed (None: tokens only)
    max_streak: int | None = 2
    max_wait_s: float = 60.0  # patient: the longest retry_after_s it will wait
    jitter: bool = False  # framework: full jitter instead of the fixed schedule

    def __post_init__(self) -> None:
        if self.kind not in AGENT_KINDS:
            raise ValueError(f"agent kind must be one of {', '.join(AGENT_KINDS)}, "
                             f"got {self.kind!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not (
                0 <= self.retries <= 100):
            raise ValueError(f"retries must be an integer from 0 to 100, got {self.retries!r}")
        if not isinstance(self.jitter, bool):
            raise ValueError(f"jitter must be True or False, got {self.jitter!r}")
        streak_limit(self.max_streak)  # a ConfigError (a ValueError) naming max_streak
        for name in ("think_s", "backoff", "max_backoff", "budget_ratio", "budget_burst",
                     "max_wait_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def none(cls) -> Agent:
        return cls("none", retries=0)

    @classmethod
    def model(cls, retries: int = 3, think_s: float = 0.0) -> Agent:
        return cls("model", retries=retries, think_s=think_s)

    @classmethod
    def framework(cls, retries: int = 3, backoff: float = 0.1, jitter: bool = False) -> Agent:
        return cls("framework", retries=retries, backoff=backoff, jitter=jitter)

    @classmethod
    def budgeted(cls, retries: int = 3, backoff: float = 0.1, budget_ratio: float = 0.1,
                 budget_burst: float = 10.0, max_streak: int | None = 2) -> Agent:
        return cls("budgeted", retries=retries, backoff=backoff, budget_ratio=budget_ratio,
                   budget_burst=budget_burst, max_streak=max_streak)

    @classmethod
    def patient(cls, retries: int = 3, think_s: float = 0.0, max_wait_s: float = 60.0) -> Agent:
        return cls("patient", retries=retries, think_s=think_s, max_wait_s=max_wait_s)

    @property
    def label(self) -> str:
        if self.kind == "none" or self.retries == 0:
            return "no retries"
        return {"model": f"model re-calls ×{self.retries}",
                "framework": f"framework {self.retries} retries, "
                             + ("full jitter" if self.jitter else "no jitter"),
                "budgeted": f"budgeted {self.retries} retries",
                "patient": f"waits retry_after ×{self.retries}"}[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def budget(self) -> RetryBudget | None:
        """A fresh budget for one population of these agents (budgeted agents only)."""
        if self.kind != "budgeted":
            return None
        return RetryBudget(self.budget_ratio, self.budget_burst, self.max_streak)

    def next_delay(self, retries: int, *, refused: bool, retry_after: float | None,
                   rng: random.Random, budget: RetryBudget | None) -> float | None:
        """Seconds until this agent re-issues a call that failed (or was refused) after
        `retries` retries, or None: it gives up. The live lab's agents use it too."""
        kind = self.kind
        if kind == "none" or retries >= self.retries:
            return None
        if kind == "model":
            return self.think_s
        if kind == "framework":
            if self.jitter:
                return full_jitter(rng, self.backoff, self.max_backoff, retries + 1)
            return backoff_limit(self.backoff, self.max_backoff, retries + 1)
        if kind == "patient":
            if not refused:
                return self.think_s
            if retry_after is None or not retry_after <= self.max_wait_s:
                return None
            return retry_after
        # budgeted (cblab's RetryPolicy): never a refusal, and only with a token
        if refused or (budget is not None and not budget.withdraw()):
            return None
        return full_jitter(rng, self.backoff, self.max_backoff, retries + 1)

    def still_retries(self, budget: RetryBudget | None) -> bool:
        """When the wait `next_delay` gave is over, just before the retry goes out: False
        when it no longer goes (budgeted: calls failed in a row meanwhile)."""
        return budget is None or self.kind != "budgeted" or budget.recheck()


class _Request:
    __slots__ = ("t", "retries", "done")

    def __init__(self, t: float) -> None:
        self.t = t
        self.retries = 0
        self.done = False


class AgentSimulation(Simulation):
    """`Simulation` whose calls come from agents that re-issue them (see the module doc)."""

    def __init__(self, scenario: Scenario, phases: list[Any], config: CircuitBreakerConfig,
                 agent: Agent, *, seed: int | str, round_trip_s: float = 0.0,
                 fail_fast_s: float = FAST_FAIL_S, **options: Any) -> None:
        super().__init__(scenario, phases, config, seed=seed, **options)
        self.agent = agent
        self.round_trip_s = round_trip_s
        self.fail_fast_s = fail_fast_s
        self._agent_rng = random.Random(f"cblab-sim:{seed}:agents")
        self._budget = agent.budget()
        self._inflight: dict[Any, _Request] = {}
        self.requests = 0
        self.attempts = 0
        self.succeeded = 0
        self.gave_up = 0

    def run(self) -> list[tuple[Any, ...]]:
        if self._ran:
            raise RuntimeError("a Simulation runs once")
        self._ran = True
        env = self.env
        t = next(self._arrivals, math.inf)
        if t < math.inf:
            env.schedule_at(t, self._arrive)
        env.run(self.scenario.total_duration_s)
        self._sync(True)
        # attempts still in flight complete; no new request or retry starts after the end
        self._closed = True
        env.run()
        self.calls = self.attempts
        return self.rows

    _closed = False

    def _arrive(self) -> None:
        nxt = next(self._arrivals, math.inf)
        if nxt < math.inf:
            self.env.schedule_at(nxt, self._arrive)
        self.requests += 1
        if self._budget is not None:
            self._budget.deposit()
        self._attempt(_Request(self.env.now))

    def _attempt(self, request: _Request) -> None:
        if self._closed:
            return
        env = self.env
        t = env.now
        self.attempts += 1
        breaker = self.breaker
        permit = breaker.admit()
        if breaker.generation != self._gen:
            self._sync(False)
        if not permit.admitted:
            self.rows.append(("call", t, 0.0, REJECTED, permit.state, self._state,
                              ERROR_REJECTED, None, self._gen))
            self._after(request, refused=True, retry_after=permit.retry_after)
            return
        self._inflight[permit] = request
        profile = self._profile
        if profile.mode == "down":
            env.schedule_at(t + self.fail_fast_s, self._finish, permit, t, FAILURE,
                            ERROR_REFUSED)
            return
        plan = plan_request(profile, self._rng)
        call = _Call(permit, t, plan.kind, plan.latency_s, _plan_error(plan))
        limit = self._limit
        if self._queue or (limit is not None and self._busy >= limit):
            if profile.overflow == "reject":
                env.schedule_at(t + self.fail_fast_s, self._finish, permit, t, FAILURE,
                                "http_503")
                return
            call.backend = _QUEUED
            self._queue.append(call)
        else:
            self._start(call)
        env.schedule_at(t + self.deadline, self._on_deadline, call)

    def _finish(self, permit: Any, t: float, outcome: Any, error: str | None) -> None:
        super()._finish(permit, t, outcome, error)
        request = self._inflight.pop(permit, None)
        if request is None:
            return
        if self._budget is not None:
            self._budget.record(outcome is SUCCESS, retry=request.retries > 0)
        if outcome is SUCCESS:
            request.done = True
            self.succeeded += 1
        else:
            self._after(request, refused=False, retry_after=None)

    def _after(self, request: _Request, *, refused: bool, retry_after: float | None) -> None:
        """A failed or refused attempt: schedule the agent's next one, or give up."""
        delay = self._delay(request, refused, retry_after)
        if delay is None:
            self.gave_up += 1
            return
        request.retries += 1
        self.env.schedule(delay + self.round_trip_s, self._retry, request)

    def _retry(self, request: _Request) -> None:
        if self.agent.still_retries(self._budget):
            self._attempt(request)
        else:
            self.gave_up += 1

    def _delay(self, request: _Request, refused: bool, retry_after: float | None) -> float | None:
        return self.agent.next_delay(request.retries, refused=refused, retry_after=retry_after,
                                     rng=self._agent_rng, budget=self._budget)


@dataclass(eq=False)
class AgentRun:
    """One agents run: the server's event rows (`run`) and the agents' own counts."""

    run: SimRun
    agent: Agent
    requests: int
    attempts: int
    succeeded: int
    gave_up: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> Any:
        return self.run.to_frame()

    @property
    def variant(self) -> str:
        return self.run.variant

    @property
    def scenario(self) -> Scenario:
        return self.run.scenario


def simulate_agents(
    scenario: Scenario | str | Path | Mapping[str, Any],
    agent: Agent,
    config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
    *,
    seed: int | str,
    protected: bool = True,
    deadline_s: float = DEFAULT_DEADLINE_S,
    rate: float | None = None,
    service: str = "users",
    variant: str | None = None,
    round_trip_s: float = 0.0,
    fail_fast_s: float = FAST_FAIL_S,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> AgentRun:
    """Play `scenario` with `agent`s as the callers; `protected=False` disables the breaker.

    `round_trip_s`: what each attempt costs the agent beyond the server's call (the
    MCP round trip; on a busy machine it dwarfs a refused connection's 0.5 ms): its
    next attempt starts that much later. `fail_fast_s`: how long the server takes to
    report a refused connection (or a capacity 503) as a failure (default: loopback's
    0.5 ms; a loaded server takes longer, and calls in flight meanwhile still go out).
    `max_calls`: refused (WorkLimitError) before simulating when the scenario's arrivals
    times (1 + the agent's retries) could pass it.
    """
    if not isinstance(agent, Agent):
        raise TypeError(f"agent must be a cblab.sim.agents.Agent, got {agent!r}")
    for name, value in (("round_trip_s", round_trip_s), ("fail_fast_s", fail_fast_s)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    scenario = resolve_scenario(scenario)
    config = _config(config)
    phases = load_phases(scenario, rate=rate)
    calls = expected_calls(phases) * (1 + agent.retries)
    if calls > check_limit("max_calls", max_calls):
        raise WorkLimitError(f"agents on {scenario.name!r} could make {{amount}} simulated "
                             "calls (rate x duration x (1 + retries))",
                             calls, "max_calls", max_calls)
    sim = AgentSimulation(scenario, phases, config, agent, seed=seed, deadline_s=deadline_s,
                          protected=protected, service=service, round_trip_s=round_trip_s,
                          fail_fast_s=fail_fast_s)
    with gc_paused():
        rows = sim.run()
    if variant is None:
        variant = agent.label + (" + breaker" if protected else ", no breaker")
    status = sim.breaker.get_status()
    counts = {key: status[key] for key in (
        "calls", "successes", "failures", "slow_calls", "rejected", "excluded", "cancelled",
        "late", "trips", "probe_failures", "trial_timeouts")}
    run = SimRun(scenario=scenario, config=config, seed=seed, protected=protected,
                 variant=variant, service=service, breaker=sim.breaker_name, tool=sim.tool,
                 deadline_s=sim.deadline, calls=sim.attempts, wall_s=0.0, counts=counts,
                 rows=rows)
    return AgentRun(run, agent, sim.requests, sim.attempts, sim.succeeded, sim.gave_up)
