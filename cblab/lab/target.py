"""What a live session drives: two small interfaces and the demo stack's implementation.

A `LabSession` needs MCP endpoints to load, their breaker events, a way to change
their breaker settings (`LabTarget`), and a way to inject faults (`FaultControl`).
`StackTarget` provides both over the demo `Stack` (backend + demo servers as
processes). Another target, e.g. a fault-injecting proxy in front of someone's
own MCP server, implements the same few coroutines.

Every coroutine runs on the lab's own event loop (`cblab.lab.loop`), never on
the notebook kernel's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..stack import Stack

__all__ = ["FaultControl", "LabTarget", "StackTarget"]


@runtime_checkable
class FaultControl(Protocol):
    """Faults of the dependency behind the servers, per service ("users", "orders")."""

    async def set_faults(self, service: str, **profile: Any) -> Any:
        """Replace the service's whole fault profile (`cblab` FaultProfile fields)."""

    async def patch_faults(self, service: str, **fields: Any) -> Any:
        """Change some fields of the service's fault profile."""

    async def play_scenario(self, spec: Mapping[str, Any]) -> Any:
        """Play a scenario (`Scenario.to_dict()`) from now on."""


@runtime_checkable
class LabTarget(Protocol):
    """The servers a live session loads and watches."""

    @property
    def variants(self) -> Sequence[str]: ...

    @property
    def faults(self) -> FaultControl: ...

    async def start(self, breaker: str, config: Mapping[str, Any]) -> None:
        """Make every variant reachable, its breaker `breaker` set to `config`."""

    async def stop(self) -> None:
        """Release what `start` started (a target given running is left running)."""

    def mcp_target(self, variant: str) -> Any:
        """What the load generator calls: an MCP URL or a fastmcp Client."""

    def protected(self, variant: str) -> bool:
        """Whether the variant's calls go through a breaker the lab can tune."""

    async def events(self, variant: str, after: int, limit: int | None) -> Mapping[str, Any]:
        """Server rows after sequence `after` (at most `limit`; None: all kept):
        ``{"events", "last_seq", "now", "missed"}`` (the ``/events`` route's answer;
        `now` on the rows' clock)."""

    async def configure_breaker(self, variant: str, breaker: str, **fields: Any) -> Any:
        """Change some of the breaker's settings (refused: raises with the reason)."""


class _BackendFaults:
    """`FaultControl` over the demo backend's control API."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    async def set_faults(self, service: str, **profile: Any) -> Any:
        return await self._stack.backend.aset_faults(service, **profile)

    async def patch_faults(self, service: str, **fields: Any) -> Any:
        return await self._stack.backend.apatch_faults(service, **fields)

    async def play_scenario(self, spec: Mapping[str, Any]) -> Any:
        return await self._stack.backend.aplay_scenario(dict(spec))


class StackTarget:
    """`LabTarget` over the demo `Stack`: starts one (and stops it) unless given a
    running `stack`, which is then shared and left running."""

    def __init__(
        self,
        variants: Sequence[str],
        *,
        stack: Stack | None = None,
        seed: int = 1,
        deadline: float = 2.0,
    ) -> None:
        self._variants = list(variants)
        self.stack = stack
        self.own = stack is None
        self.seed = seed
        self.deadline = deadline

    @property
    def variants(self) -> list[str]:
        return self._variants

    @property
    def faults(self) -> FaultControl:
        if self.stack is None:
            raise RuntimeError("the stack is not started yet")
        return _BackendFaults(self.stack)

    def protected(self, variant: str) -> bool:
        return not variant.startswith("unprotected")

    async def start(self, breaker: str, config: Mapping[str, Any]) -> None:
        if self.stack is None:
            from ..stack import Stack

            servers = {v: {"protected": self.protected(v)} for v in self._variants}
            configs = {breaker: dict(config)}
            self.stack = Stack(servers, seed=self.seed, deadline=self.deadline,
                               github=configs.get("github"), database=configs.get("database"))
            await self.stack.astart()
            return
        for variant in self._variants:
            if self.protected(variant):
                await self.stack.server(variant).areplace_breaker_config(breaker, dict(config))

    async def stop(self) -> None:
        if self.own and self.stack is not None:
            await self.stack.astop()

    def mcp_target(self, variant: str) -> Any:
        assert self.stack is not None
        return self.stack.mcp_url(variant)

    async def events(self, variant: str, after: int, limit: int | None) -> Mapping[str, Any]:
        assert self.stack is not None
        return await self.stack.server(variant).aevents(after=after, limit=limit)

    async def configure_breaker(self, variant: str, breaker: str, **fields: Any) -> Any:
        assert self.stack is not None
        return await self.stack.server(variant).aconfigure_breaker(breaker, **fields)
