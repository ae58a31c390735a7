"""Retries that do not storm: a retry policy that knows the breaker.

    from cblab.integrations import GuardedClient, RetryPolicy

    client = GuardedClient(Client(url), retry=RetryPolicy(attempts=3, deadline=10))

The same policy object plugs into `CircuitBreakerMiddleware(retry=...)` (a tool's
calls), `BreakerTransport(retry=...)` (an httpx client) and `GuardedClient(retry=...)`
(an agent's tool calls). Every attempt is one breaker call, so the breaker counts
what really happened; the policy sits *outside* the breaker.

What it does, per call:

- at most `attempts` attempts (the first included), the k-th retry after a
  "full jitter" backoff: a uniform draw in ``[0, min(max_backoff, backoff * 2**(k-1))]``
  (``jitter=False``: the whole delay, the storm-prone schedule);
- a `deadline` (seconds) across all attempts: no retry starts whose backoff would
  end past it, and an attempt in flight at the deadline is cancelled;
- a retry **budget** per breaker name (`RetryBudget`, token-bucket as in gRPC's retry
  throttling and Finagle's budgets): each call deposits `budget_ratio` tokens (at most
  `budget_burst` held), each retry spends one; so over any stretch of time retries
  are at most ``budget_burst + budget_ratio * calls``. An outage cannot multiply load;
- no retry once `max_streak` calls in a row through that breaker have failed their
  first attempt (default 2: a call is not retried when the call before it failed
  too), until an attempt succeeds; checked again when the backoff ends, so a retry
  does not go out if another call failed while it waited. Calls failing in a row
  mean an outage, not a blip; retries then only add load, and behind a breaker they
  race its trip: a retry admitted while it counts consecutive failures goes out
  beside the calls already in flight when it opens;
- never retries a refusal: a breaker's (`CircuitOpenError`, a
  ``dependency_unavailable`` result) or a bulkhead's (``local_overload``). A refusal
  carries ``retry_after_s``: it goes back to the caller untouched, which is how it
  is honoured (no attempt is made before the breaker said). Nor does it retry after
  the attempt's failure opened the breaker, or once it opened during the backoff
  (the retry could only be refused);
- honours ``Retry-After`` on 429/503: the next attempt waits at least that long;
  a Retry-After longer than `max_retry_after` or past the deadline ends the
  retries at once (waiting for nothing helps nobody);
- retries only failures the breaker counts (transport errors, timeouts, 429,
  5xx); validation and business errors are final.

Why not tenacity or stamina (both are good at retrying and both compose with
cblab, see the README): the policy needs four things they do not give. Their
deadline (`stop_after_delay`, stamina's `timeout`) reads `time.monotonic()`
directly in tenacity's `RetryCallState`, so it cannot run on the simulator's or a
test's clock; neither has a retry budget shared between calls; stamina's jitter is
additive (backoff + uniform(0, 1 s)), not full jitter; and neither knows a breaker
refusal from a failure. The waiting itself is one `await sleep(delay)`, and
`clock`, `sleep` and `rng` are injectable here, so every rule above is tested on a
manual clock without sleeping. If you already use tenacity or stamina, keep it and
pass `should_retry` as its retry predicate (see the README).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from cblab import CircuitOpenError, ConfigError, Outcome
from cblab.codes import DEPENDENCY_UNAVAILABLE, LOCAL_OVERLOAD

from .budget import RetryBudget, backoff_limit, streak_limit
from .budget import seconds as _number
from .classify import ExceptionClassifier, as_verdict, classify_exception, exception_chain

__all__ = [
    "Judgement",
    "RetryBudget",
    "RetryPolicy",
    "as_policy",
    "idempotent_tool",
    "judge_exception",
    "judge_tool_result",
    "retry_after_header",
    "should_retry",
]

T = TypeVar("T")

#: Why a call stopped retrying (the keys of `RetryPolicy.stats()["stopped"]`).
STOP_REASONS = ("success", "final", "refused", "attempts", "deadline", "budget", "streak",
                "breaker_open", "retry_after_too_long")


@dataclass(frozen=True, slots=True)
class Judgement:
    """How one attempt ended, for the policy: `reason` is "success", "final" (an answer
    that retrying cannot change), "refused" (a breaker or bulkhead said no) or
    "failure" (retryable); `after` is a wait the dependency asked for (Retry-After)."""

    reason: str
    after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.reason == "failure"


SUCCESS = Judgement("success")
FINAL = Judgement("final")
REFUSED = Judgement("refused")


class RetryPolicy:
    """Retries with full-jitter backoff, a deadline and a per-breaker budget.

    `attempts`: attempts per call, the first included (1: never retry).
    `backoff`, `max_backoff`: seconds; the k-th retry waits up to
    ``min(max_backoff, backoff * 2**(k-1))``. `jitter`: full jitter (True) or the
    whole delay (False). `deadline`: seconds for the whole call, all attempts and
    waits (None: no deadline). `budget_ratio`, `budget_burst`, `max_streak`: the
    `RetryBudget` each breaker name gets: tokens, and no retry after `max_streak`
    calls in a row failed (None: tokens only); ``budget_ratio=None``: no budget at all,
    the storm-prone choice.
    `max_retry_after`: the longest Retry-After worth waiting for, seconds.
    `clock`, `sleep`, `rng`: injectable (tests, the simulator).
    """

    def __init__(
        self,
        attempts: int = 3,
        *,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        jitter: bool = True,
        deadline: float | None = None,
        budget_ratio: float | None = 0.1,
        budget_burst: float = 10.0,
        max_streak: int | None = 2,
        max_retry_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
            raise ConfigError(f"attempts must be an integer from 1 to 100, got {attempts!r}")
        self.attempts = attempts
        self.backoff = _number("backoff", backoff, allow_zero=True)
        self.max_backoff = _number("max_backoff", max_backoff, allow_zero=True)
        if not isinstance(jitter, bool):
            raise ConfigError(f"jitter must be True or False, got {jitter!r}")
        self.jitter = jitter
        self.deadline = _number("deadline", deadline, allow_none=True)
        self.budget_ratio = _number("budget_ratio", budget_ratio, allow_zero=True,
                                    allow_none=True)
        self.budget_burst = _number("budget_burst", budget_burst, allow_zero=True)
        self.max_streak = streak_limit(max_streak)
        self.max_retry_after = _number("max_retry_after", max_retry_after, allow_zero=True)
        for what, fn in (("clock", clock), ("sleep", sleep)):
            if not callable(fn):
                raise ConfigError(f"{what} must be callable, got {fn!r}")
        self.clock = clock
        self.sleep = sleep
        self.rng = rng if rng is not None else random.Random()
        self.budgets: dict[str, RetryBudget] = {}
        self.calls = 0
        self.attempts_made = 0
        self.stopped = dict.fromkeys(STOP_REASONS, 0)

    def __repr__(self) -> str:
        return (f"RetryPolicy(attempts={self.attempts}, backoff={self.backoff}, "
                f"max_backoff={self.max_backoff}, jitter={self.jitter}, "
                f"deadline={self.deadline}, budget_ratio={self.budget_ratio}, "
                f"max_streak={self.max_streak})")

    # --- the rules -----------------------------------------------------------------------

    def budget(self, key: str) -> RetryBudget | None:
        """The budget shared by every call through breaker `key` (None: no budget)."""
        if self.budget_ratio is None:
            return None
        budget = self.budgets.get(key)
        if budget is None:
            budget = self.budgets[key] = RetryBudget(self.budget_ratio, self.budget_burst,
                                                     self.max_streak)
        return budget

    def backoff_limit(self, retry: int) -> float:
        """The longest wait before retry number `retry` (1-based)."""
        return backoff_limit(self.backoff, self.max_backoff, retry)

    def delay(self, retry: int) -> float:
        """The wait before retry number `retry`: full jitter, or the whole limit."""
        limit = self.backoff_limit(retry)
        return self.rng.uniform(0.0, limit) if self.jitter else limit

    # --- running a call ------------------------------------------------------------------

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        judge: Callable[[T | None, BaseException | None], Judgement],
        *,
        key: str = "default",
        breaker_open: Callable[[], bool] | None = None,
    ) -> T:
        """Run `attempt()` until `judge` says stop or a rule does; return or raise the
        last attempt's answer. `key` names the budget (the breaker's name);
        `breaker_open()` says whether the breaker now refuses (then no retry)."""
        budget = self.budget(key)
        if budget is not None:
            budget.deposit()
        self.calls += 1
        started = self.clock()
        end = None if self.deadline is None else started + self.deadline
        retry = 0
        while True:
            self.attempts_made += 1
            result: Any = None
            error: BaseException | None = None
            try:
                if end is None:
                    result = await attempt()
                else:
                    remaining = end - self.clock()
                    if remaining <= 0:
                        raise TimeoutError(f"retry deadline of {self.deadline:g} s passed")
                    result = await asyncio.wait_for(attempt(), remaining)
            except Exception as exc:
                error = exc
            judgement = judge(result, error)
            if budget is not None and judgement.reason in ("success", "failure"):
                budget.record(judgement.reason == "success", retry=retry > 0)
            reason, wait = self._next(judgement, retry, end, budget, breaker_open)
            if reason is None:
                await self.sleep(wait)
                reason = self._still(budget, breaker_open)
            if reason is None:
                retry += 1
                continue
            self.stopped[reason] += 1
            if error is not None:
                raise error
            return result  # type: ignore[no-any-return]

    def _next(self, judgement: Judgement, retry: int, end: float | None,
              budget: RetryBudget | None, breaker_open: Callable[[], bool] | None,
              ) -> tuple[str | None, float]:
        """(why this call stops now, 0) or (None, the wait before the next attempt);
        a retry that goes ahead has spent a budget token."""
        if not judgement.retryable:
            return judgement.reason, 0.0
        if retry + 1 >= self.attempts:
            return "attempts", 0.0
        if breaker_open is not None and breaker_open():
            return "breaker_open", 0.0
        after = judgement.after
        if after is not None and after > self.max_retry_after:
            return "retry_after_too_long", 0.0
        wait = self.delay(retry + 1)
        if after is not None:
            wait = max(wait, after)
        if end is not None and self.clock() + wait >= end:
            return "deadline", 0.0  # the next attempt could not start in time
        if budget is not None and not budget.withdraw():
            return ("streak" if budget.streak_blocks else "budget"), 0.0
        return None, wait

    @staticmethod
    def _still(budget: RetryBudget | None, breaker_open: Callable[[], bool] | None,
               ) -> str | None:
        """After the backoff, before the retry goes out: why it no longer goes, or None.
        Calls that failed meanwhile, or a breaker that opened, stop it here."""
        if budget is not None and not budget.recheck():
            return "streak"
        if breaker_open is not None and breaker_open():
            return "breaker_open"
        return None

    def stats(self) -> dict[str, Any]:
        """Calls, attempts, why calls stopped, and each budget's tokens."""
        return {
            "calls": self.calls,
            "attempts": self.attempts_made,
            "retries": self.attempts_made - self.calls,
            "stopped": dict(self.stopped),
            "budgets": {k: {"tokens": b.tokens, "streak": b.streak, "denied": b.denied,
                            "denied_streak": b.denied_streak}
                        for k, b in self.budgets.items()},
        }


def as_policy(where: str, value: Any) -> RetryPolicy | None:
    """An integration's `retry=` option: None, True (the defaults), an int (attempts),
    or a `RetryPolicy`."""
    if value is None or value is False:
        return None
    if value is True:
        return RetryPolicy()
    if isinstance(value, int) and not isinstance(value, bool):
        return RetryPolicy(value)
    if isinstance(value, RetryPolicy):
        return value
    raise ConfigError(f"{where} must be a RetryPolicy, True or a number of attempts, "
                      f"got {value!r}")


# --- judging an attempt ------------------------------------------------------------------


def retry_after_header(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _retry_after_in_chain(exc: BaseException) -> float | None:
    for link in exception_chain(exc):
        response = getattr(link, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None and getattr(response, "status_code", None) in (429, 503):
            return retry_after_header(headers.get("retry-after"))
    return None


def judge_exception(exc: BaseException,
                    classifier: ExceptionClassifier = classify_exception) -> Judgement:
    """An attempt that raised: a refusal is final, a counted failure is retryable."""
    for link in exception_chain(exc):
        if isinstance(link, CircuitOpenError):
            return REFUSED
    try:
        verdict = as_verdict(classifier(exc))
    except Exception:
        return FINAL
    if verdict.outcome is Outcome.FAILURE:
        return Judgement("failure", _retry_after_in_chain(exc))
    return FINAL


def should_retry(exc: BaseException) -> bool:
    """For tenacity's ``retry_if_exception`` or stamina's ``on=``: True only for failures
    a breaker counts (never a `CircuitOpenError`, validation or business error)."""
    return judge_exception(exc).retryable


def judge_tool_result(result: Any, count_errors: bool = False) -> Judgement:
    """A tool result: a refusal (``dependency_unavailable`` / ``local_overload``) is
    final; another ``isError`` result is final unless the tool counts them."""
    if not getattr(result, "is_error", False):
        return SUCCESS
    content = getattr(result, "structured_content", None)
    if isinstance(content, dict) and content.get("error") in (DEPENDENCY_UNAVAILABLE,
                                                              LOCAL_OVERLOAD):
        return REFUSED
    return Judgement("failure") if count_errors else FINAL


def idempotent_tool(annotations: Any) -> bool:
    """True when a tool's annotations say re-issuing it is safe (readOnly or idempotent)."""
    if annotations is None:
        return False
    if isinstance(annotations, dict):
        return bool(annotations.get("readOnlyHint") or annotations.get("idempotentHint"))
    # mcp 2.x names the fields in snake case (the camel-case names are deprecated)
    return bool(getattr(annotations, "read_only_hint", None)
                or getattr(annotations, "idempotent_hint", None))


def tool_names(where: str, value: Iterable[str] | None) -> frozenset[str] | None:
    """An allow-list option: None, or tool names (a bare string is refused)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{where} must be a list of tool names, got {value!r}")
    names = frozenset(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: tool names must be non-empty strings, got {name!r}")
    return names
