"""Per-service request counters, exposed by the control API's /stats.

Counters (`received`, `answered`, `aborted`) are reset by `reset()`; gauges
(`in_flight`, `hung`, `queued`) describe the present and are never reset.
While nothing was in flight at the last reset:
``received == sum(answered) + aborted + in_flight``.
Health checks are not counted; connections refused while down never arrive.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["OUTCOMES", "ServiceStats", "outcome_for_status"]

# how a request that got an answer ended; "error_5xx" is split by status
OUTCOMES: tuple[str, ...] = (
    "ok",
    "not_found",
    "client_error",
    "error_5xx",
    "status_429",
    "reset",
    "rejected_capacity",
)


def outcome_for_status(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 404:
        return "not_found"
    if status == 429:
        return "status_429"
    if status >= 500:
        return "error_5xx"
    return "client_error"


class ServiceStats:
    __slots__ = (
        "received",
        "aborted",
        "in_flight",
        "hung",
        "queued",
        "_answered",
        "_errors_5xx",
        "_since",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.hung = 0
        self.queued = 0
        self.reset()

    def reset(self) -> None:
        self.received = 0
        self.aborted = 0  # dropped unanswered: service went down, or the client left
        self._answered = dict.fromkeys(OUTCOMES, 0)
        self._errors_5xx: dict[int, int] = {}
        self._since = time.time()

    def answered(self, outcome: str, status: int | None = None) -> None:
        self._answered[outcome] += 1
        if outcome == "error_5xx" and status is not None:
            self._errors_5xx[status] = self._errors_5xx.get(status, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        answered: dict[str, Any] = dict(self._answered)
        answered["error_5xx"] = {str(s): n for s, n in sorted(self._errors_5xx.items())}
        total = sum(self._answered.values())
        return {
            "received": self.received,
            "answered": answered,
            "answered_total": total,
            "aborted": self.aborted,
            "in_flight": self.in_flight,
            "hung": self.hung,
            "queued": self.queued,
            "since": datetime.fromtimestamp(self._since, UTC).isoformat(),
            "since_unix": self._since,
        }
