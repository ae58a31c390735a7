"""The demo server as one of several replicas sharing breaker state.

`watch_shared_state` makes the store's health visible: when the shared state
becomes unreachable (or comes back) every breaker gets a `state` row in
`/events` (its state unchanged, the reason saying what happened), `/health`
and `/metrics` carry the store's status, and the store logs one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import LabServer

__all__ = ["shared_state_metrics", "watch_shared_state"]

FALLBACK = "shared state unavailable: running on local state"
REJOINED = "shared state back: re-joined"


def watch_shared_state(lab: LabServer, store: Any) -> None:
    instr = lab.instrumentation
    instr.shared_state = store  # read by /health and /metrics

    def changed(available: bool, error: str | None) -> None:
        reason = REJOINED if available else f"{FALLBACK} ({error})"
        for breaker in lab.registry:
            state = breaker.state.value
            instr._append("state", instr.now(), breaker.name, None, None, None, state, state,
                          None, reason, breaker.generation)

    store.on_status(changed)


def shared_state_metrics(store: Any, variant: str) -> list[str]:
    """`cblab_shared_state_available{replica}`: 1 shared, 0 fallen back to local state."""
    status = store.status()
    label = variant.replace("\\", "\\\\").replace('"', '\\"')
    return [
        "# HELP cblab_shared_state_available 1 while breaker state is shared (Redis "
        "reachable), 0 while this replica runs on local state.",
        "# TYPE cblab_shared_state_available gauge",
        f'cblab_shared_state_available{{replica="{label}"}} {int(bool(status["available"]))}',
        "# HELP cblab_shared_state_fallbacks_total Times this replica fell back to local state.",
        "# TYPE cblab_shared_state_fallbacks_total counter",
        f'cblab_shared_state_fallbacks_total{{replica="{label}"}} {status["fallbacks"]}',
        "# HELP cblab_shared_state_slow_answers_total Shared-state operations that timed "
        "out (one alone is no fallback: see cblab.stores.redis).",
        "# TYPE cblab_shared_state_slow_answers_total counter",
        f'cblab_shared_state_slow_answers_total{{replica="{label}"}} '
        f'{status.get("slow_answers", 0)}',
    ]
