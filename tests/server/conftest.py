from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from .live import Live, start_live, stop_live


@pytest.fixture
async def live_factory() -> AsyncIterator[Callable[..., Awaitable[Live]]]:
    """`await live_factory(**ServerSettings fields)`: backend + server, stopped after the test."""
    started: list[Live] = []

    async def make(**settings: Any) -> Live:
        live = await start_live(**settings)
        started.append(live)
        return live

    yield make
    for live in started:
        await stop_live(live)


@pytest.fixture
async def live(live_factory: Callable[..., Awaitable[Live]]) -> Live:
    return await live_factory()
