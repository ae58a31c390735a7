"""The one event schema shared by the live server, the load generator and the simulator.

Every run, wherever it came from, is a table of these rows, so analysis,
plots and reports never care whether a run was live or simulated.
Standard library only: the server and the simulator produce rows; pandas
only appears in `cblab.analysis`.

A row is a dict with these keys (missing keys mean None):

    seq          int    per-source sequence number, 1, 2, 3... with no gaps at the source
    kind         str    "call" (one tool/backend call) or "state" (a breaker state change)
    t            float  seconds since the run started: when the call was admitted
                        (or, for the load generator, its *intended* start); when the
                        state changed
    source       str    "server", "load", "sim" or "proxy" (the fault-injecting MCP proxy)
    variant      str    which side of a comparison: "protected", "unprotected", a config label
    breaker      str    breaker name ("github", "database")
    tool         str    MCP tool name (calls through the server or load generator)
    outcome      str    calls: a cblab.Outcome value (success, failure, slow, rejected,
                        excluded, cancelled, late); the load generator adds
                        "timeout" (client deadline) and "dropped" (in-flight cap)
    latency      float  seconds the call took as seen by this source (0 for rejected)
    state        str    calls: breaker state at admission; state rows: the state left
    state_after  str    calls: breaker state when the call ended; state rows: the state entered
    error_type   str    exception class name, or an error code such as "dependency_unavailable"
    reason       str    state rows: why the breaker moved
    generation   int    breaker generation at admission (calls) or begun by the change (state)
    phase        str    scenario phase name at `t`, when the run played a scenario
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

#: The pandas dtype of each column of an events frame, by name (plain strings, so
#: this module needs no pandas): `cblab.analysis.events_frame` and
#: `cblab.sim.SimRun.to_frame` both build frames with these. "str" columns hold
#: text or NaN; `generation` is nullable (the load generator does not know it).
EVENT_DTYPES: dict[str, str] = {
    "seq": "int64",
    "kind": "str",
    "t": "float64",
    "source": "str",
    "variant": "str",
    "breaker": "str",
    "tool": "str",
    "outcome": "str",
    "latency": "float64",
    "state": "str",
    "state_after": "str",
    "error_type": "str",
    "reason": "str",
    "generation": "Int64",
    "phase": "str",
}

#: The columns of every event table, in order.
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_DTYPES)

#: What a row records: one call, or one change of a breaker's state.
EVENT_KINDS = ("call", "state")

#: Every `outcome` a call row may have (`cblab.Outcome` values, and the load
#: generator's own "timeout" and "dropped").
CALL_OUTCOMES = (
    "success",
    "failure",
    "slow",
    "rejected",
    "excluded",
    "cancelled",
    "late",
    "timeout",
    "dropped",
)
#: Every breaker state a `state` / `state_after` may name (`cblab.CircuitState` values).
STATES = ("closed", "open", "half_open")


#: Layout of a compact row tuple (see `CompactRun`): the call and state columns
#: that vary within one run, with `outcome` a `cblab.Outcome` and `state` /
#: `state_after` `cblab.CircuitState` members rather than their string values.
COMPACT_ROW_FIELDS: tuple[str, ...] = (
    "kind", "t", "latency", "outcome", "state", "state_after", "error_type", "reason",
    "generation",
)


@runtime_checkable
class CompactRun(Protocol):
    """A run of one breaker that keeps its events as compact tuples, as the simulator
    does (`cblab.sim.SimRun`): analyses read `rows` directly instead of building a
    DataFrame. `rows` follow `COMPACT_ROW_FIELDS`; `scenario` is the
    `cblab.faults.Scenario` it played, `service` the backend service it called."""

    rows: Sequence[tuple[Any, ...]]
    scenario: Any
    service: str

    @property
    def duration_s(self) -> float: ...


def event_row(**fields: Any) -> dict[str, Any]:
    """A row with every column present (None where not given); unknown keys are an error."""
    unknown = set(fields) - set(EVENT_COLUMNS)
    if unknown:
        raise KeyError(f"unknown event field(s): {', '.join(sorted(unknown))}")
    return {column: fields.get(column) for column in EVENT_COLUMNS}
