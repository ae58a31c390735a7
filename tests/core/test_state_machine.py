"""Property-based: the breaker against a small reference model, over thousands of examples.

The model is written for clarity, not speed: a dict of fields and the rules
of DESIGN.md's breaker contract, one rule per branch.
"""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from cblab import CircuitBreaker, CircuitBreakerConfig, ManualClock, Outcome


class ReferenceBreaker:
    def __init__(
        self, failure_threshold, success_threshold, timeout, max_calls, trial_limit, backoff, cap
    ):
        self.failure_threshold = failure_threshold
        self.success_threshold = success_threshold
        self.timeout, self.max_calls, self.trial_limit = timeout, max_calls, trial_limit
        self.backoff, self.cap = backoff, cap
        self.state, self.generation = "closed", 0
        self.consecutive_failures = 0
        self.opened_at = self.open_for = 0.0
        self.trips_in_a_row = 0
        self.trials = {}  # id -> admitted_at
        self.trial_successes = 0
        self.counts = {
            "success": 0,
            "failure": 0,
            "rejected": 0,
            "late": 0,
            "cancelled": 0,
            "excluded": 0,
        }

    def move(self, to, now):
        self.state, self.generation = to, self.generation + 1
        self.trials, self.trial_successes = {}, 0
        if to == "open":
            self.trips_in_a_row += 1
            self.opened_at = now
            self.open_for = min(self.timeout * self.backoff ** (self.trips_in_a_row - 1), self.cap)
        if to == "closed":
            self.trips_in_a_row = 0
            self.consecutive_failures = 0

    def observe(self, now):
        if self.state == "open" and now >= self.opened_at + self.open_for:
            self.move("half_open", self.opened_at + self.open_for)
        return self.state

    def admit(self, now, trial_id):
        state = self.observe(now)
        if state == "closed":
            return (self.generation, None)
        if state == "half_open":
            if self.trials and min(self.trials.values()) + self.trial_limit <= now:
                self.move("open", now)
            elif self.trial_successes + len(self.trials) < self.max_calls:
                self.trials[trial_id] = now
                return (self.generation, trial_id)
        self.counts["rejected"] += 1
        return None

    def record(self, permit, outcome, now):
        generation, trial = permit
        if generation != self.generation:
            self.counts["late"] += 1
            return "late"
        self.counts[outcome] += 1
        if trial is not None:
            del self.trials[trial]
        if outcome == "success":
            if trial is not None:
                self.trial_successes += 1
                if self.trial_successes >= self.success_threshold:
                    self.move("closed", now)
            else:
                self.consecutive_failures = 0
        elif outcome == "failure":
            if trial is not None:
                self.move("open", now)
            else:
                self.consecutive_failures += 1
                if self.consecutive_failures >= self.failure_threshold:
                    self.move("open", now)
        return outcome


class BreakerMatchesModel(RuleBasedStateMachine):
    permits = Bundle("permits")

    @initialize(
        failure_threshold=st.integers(1, 4),
        max_calls=st.integers(1, 4),
        data=st.data(),
        timeout=st.sampled_from([0.0, 1.0, 5.0, 10.0]),
        trial_limit=st.sampled_from([0.5, 3.0, 100.0]),
        backoff=st.sampled_from([1.0, 2.0]),
    )
    def setup(self, failure_threshold, max_calls, data, timeout, trial_limit, backoff):
        success_threshold = data.draw(st.integers(1, max_calls))
        cap = max(timeout, 1.0) * 4
        self.clock = ManualClock()
        self.breaker = CircuitBreaker(
            "dep",
            CircuitBreakerConfig(
                failure_threshold=failure_threshold,
                success_threshold=success_threshold,
                timeout=timeout,
                half_open_max_calls=max_calls,
                max_trial_duration=trial_limit,
                backoff_multiplier=backoff,
                max_timeout=cap,
            ),
            clock=self.clock,
        )
        self.model = ReferenceBreaker(
            failure_threshold, success_threshold, timeout, max_calls, trial_limit, backoff, cap
        )
        self.next_trial = 0

    @rule(target=permits)
    def admit(self):
        self.next_trial += 1
        real = self.breaker.admit()
        expected = self.model.admit(self.clock(), self.next_trial)
        assert real.admitted == (expected is not None), (real, expected)
        if not real.admitted:
            return multiple()  # nothing joins the bundle
        return (real, expected)

    @rule(
        pair=consumes(permits),
        outcome=st.sampled_from(["success", "failure", "cancelled", "excluded"]),
    )
    def record(self, pair, outcome):
        if pair is None:
            return
        real, expected = pair
        got = self.breaker.record(real, Outcome(outcome))
        want = self.model.record(expected, outcome, self.clock())
        if want == "success" and got is Outcome.SLOW:
            got = Outcome.SUCCESS
        assert got.value == want

    @rule(seconds=st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0, 10.0, 50.0]))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @invariant()
    def same_state(self):
        if hasattr(self, "model"):
            assert self.breaker.state.value == self.model.observe(self.clock())
            assert self.breaker.generation == self.model.generation

    @invariant()
    def same_counts(self):
        if hasattr(self, "model"):
            b, counts = self.breaker, self.model.counts
            assert (b.successes, b.failures, b.rejected) == (
                counts["success"],
                counts["failure"],
                counts["rejected"],
            )
            assert (b.late, b.cancelled, b.excluded) == (
                counts["late"],
                counts["cancelled"],
                counts["excluded"],
            )
            assert len(self.model.trials) == b.get_status()["half_open_in_flight"]


BreakerMatchesModel.TestCase.settings = settings(
    max_examples=2_000,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBreakerMatchesModel = BreakerMatchesModel.TestCase
