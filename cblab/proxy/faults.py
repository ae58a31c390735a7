"""The proxy's faults: one fault profile per tool (or for every tool), seeded decisions.

A *target* is a tool name or ``"*"`` (every tool without a profile of its own).
Each target has a `ToolFault`: a backend `FaultProfile` (the same schema, the same
validation) plus how an injected error reaches the client (`error_as`):

- ``"is_error"`` (default): a tool result with ``isError: true`` whose structured
  content says ``{"error": "injected_fault", "status": 503, ...}``, as a server
  reports a failed dependency (the MCP spec's advice);
- ``"jsonrpc"``: a JSON-RPC error response (code -32603 for 5xx, -32000 for 429),
  as a server that crashes or a gateway that fails reports it.

Decisions come from `plan_request(profile, rng_for(seed, tool))`, one RNG per tool,
exactly as the simulator and the backend draw them: the same seed and the same
order of calls to a tool give the same decisions through the proxy as in the
simulator (`rng_for(seed, "users")` there for a tool named ``users`` here).

How each plan is played (see `cblab.proxy.inject`):

======== =========================================================================
ok       wait the planned latency, then forward the call upstream
error    wait the planned latency, then answer the error (`error_as`)
reset    wait the planned latency, then a JSON-RPC error "connection reset"
hang     no answer until the client gives up (its deadline), the mode leaves
         "hang" (then forwarded at once) or the proxy stops
down     only on ``"*"``: the proxy closes its MCP listener (connections refused)
======== =========================================================================

Latency is *added* to the upstream's own: a profile without ``latency`` adds none
(the backend's default of 1 ms is a service time, not a delay on top of one).

Capacity (`max_concurrency`, per tool): a call over the limit is refused as an
injected 503 (overflow "reject") or waits in line (overflow "queue"), as the
backend's services do; the slot is held through the latency, a hang and the
upstream call.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cblab.faults.profile import (
    ConstantLatency,
    FaultProfile,
    ProfileError,
    RequestPlan,
    plan_request,
    rng_for,
)

__all__ = ["ALL_TOOLS", "ERROR_AS", "FaultTable", "ToolFault", "UnknownToolError"]

ALL_TOOLS = "*"
ERROR_AS: tuple[str, ...] = ("is_error", "jsonrpc")
ErrorAs = Literal["is_error", "jsonrpc"]


class UnknownToolError(LookupError):
    """A tool name the upstream server does not have."""

    def __init__(self, name: object, known: list[str]) -> None:
        shown = ", ".join(known) if known else "none"
        super().__init__(f"unknown tool {name!r}; the upstream server's tools: {shown} (or '*')")


#: A transparent proxy: no errors, no added latency.
NO_FAULT = FaultProfile(latency=ConstantLatency(0.0))


@dataclass(frozen=True)
class ToolFault:
    """A fault profile and how its injected errors are expressed."""

    profile: FaultProfile = NO_FAULT
    error_as: ErrorAs = "is_error"

    def __post_init__(self) -> None:
        if self.error_as not in ERROR_AS:
            raise ProfileError(f"error_as must be one of {', '.join(ERROR_AS)}, got {self.error_as!r}")

    @classmethod
    def from_dict(cls, data: Any) -> ToolFault:
        """A fault profile dict with an optional ``"error_as"`` key."""
        if not isinstance(data, Mapping):
            raise ProfileError(f"fault profile must be an object, got {data!r}")
        fields = dict(data)
        error_as = fields.pop("error_as", "is_error")
        fields.setdefault("latency", NO_FAULT.latency.to_dict())
        return cls(FaultProfile.from_dict(fields), error_as)

    def merged(self, patch: Any) -> ToolFault:
        if not isinstance(patch, Mapping):
            raise ProfileError(f"patch must be an object, got {patch!r}")
        fields = dict(patch)
        error_as = fields.pop("error_as", self.error_as)
        return ToolFault(self.profile.merged(fields), error_as)

    def to_dict(self) -> dict[str, Any]:
        return {**self.profile.to_dict(), "error_as": self.error_as}


HEALTHY_FAULT = ToolFault()


def check_target(target: str, fault: ToolFault) -> None:
    """Refuse a "down" anywhere but on every tool: a listener cannot refuse one tool."""
    if fault.profile.mode == "down" and target != ALL_TOOLS:
        raise ProfileError(
            f"mode 'down' closes the proxy's listener for every tool; set it on '*', "
            f"not on {target!r}"
        )


class FaultTable:
    """The faults in force and the per-tool RNGs that decide each call.

    `tools` is the upstream's tool list (names checked against it); None accepts any
    name (used before the upstream is known).
    """

    def __init__(self, seed: int | str | None = 1, tools: list[str] | None = None) -> None:
        self.seed = seed
        self.tools = tools
        self._faults: dict[str, ToolFault] = {ALL_TOOLS: HEALTHY_FAULT}
        self._rngs: dict[str, random.Random] = {}

    @property
    def tools(self) -> list[str] | None:
        return self._tools

    @tools.setter
    def tools(self, tools: list[str] | None) -> None:
        self._tools = tools
        self.known = frozenset(tools or ())

    def check_name(self, target: str) -> str:
        if target != ALL_TOOLS and self.tools is not None and target not in self.tools:
            raise UnknownToolError(target, self.tools)
        return target

    def get(self, target: str) -> ToolFault:
        """The fault in force for `target` (a tool falls back to ``"*"``)."""
        self.check_name(target)
        return self._faults.get(target) or self._faults[ALL_TOOLS]

    def overrides(self) -> dict[str, ToolFault]:
        """Every target with a fault of its own, ``"*"`` first."""
        return dict(self._faults)

    def set(self, target: str, fault: ToolFault | Mapping[str, Any]) -> ToolFault:
        self.check_name(target)
        if not isinstance(fault, ToolFault):
            fault = ToolFault.from_dict(fault)
        check_target(target, fault)
        self._faults[target] = fault
        return fault

    def patch(self, target: str, patch: Mapping[str, Any]) -> ToolFault:
        return self.set(target, self.get(target).merged(patch))

    def clear(self, target: str | None = None) -> None:
        """One tool back to following ``"*"`` (``"*"`` back to healthy); None: all."""
        if target is None:
            self._faults = {ALL_TOOLS: HEALTHY_FAULT}
        elif self.check_name(target) == ALL_TOOLS:
            self._faults[ALL_TOOLS] = HEALTHY_FAULT
        else:
            self._faults.pop(target, None)

    def replace(self, faults: Mapping[str, ToolFault]) -> None:
        """Install a whole set (a scenario phase); targets left out follow ``"*"``."""
        for target, fault in faults.items():
            self.check_name(target)
            check_target(target, fault)
        self._faults = {ALL_TOOLS: faults.get(ALL_TOOLS, HEALTHY_FAULT), **faults}

    @property
    def down(self) -> bool:
        return self._faults[ALL_TOOLS].profile.mode == "down"

    def rng(self, tool: str) -> random.Random:
        rng = self._rngs.get(tool)
        if rng is None:
            rng = self._rngs[tool] = rng_for(self.seed, tool)
        return rng

    def plan(self, tool: str) -> tuple[RequestPlan, ToolFault]:
        """Decide one call to `tool` (consumes the tool's RNG draws)."""
        fault = self._faults.get(tool) or self._faults[ALL_TOOLS]
        return plan_request(fault.profile, self.rng(tool)), fault
