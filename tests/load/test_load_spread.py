"""The load generator spreads calls over several replicas of one server."""

from __future__ import annotations

import pytest

from cblab.load import LoadGenerator
from tests.server.live import Live


async def test_round_robin_and_random_spread_over_replicas(live_factory) -> None:
    replicas: list[Live] = [await live_factory(), await live_factory()]
    urls = [r.mcp_url for r in replicas]

    gen = LoadGenerator(urls, "github_user", rate=200, arrivals="constant", keep_all=True)
    await gen.run(count=10)
    assert gen.counts == {"success": 10}
    assert gen.per_target == [5, 5]
    assert [len([r for r in live.rows() if r["kind"] == "call"]) for live in replicas] == [5, 5]

    gen = LoadGenerator(urls, "github_user", rate=200, spread="random", seed=4, keep_all=True)
    await gen.run(count=20)
    assert sum(gen.per_target) == 20 and min(gen.per_target) > 0
    again = LoadGenerator(urls, "github_user", rate=200, spread="random", seed=4)
    await again.run(count=20)
    assert again.per_target == gen.per_target  # seeded: the same replicas in the same order


def test_bad_spread_is_refused() -> None:
    with pytest.raises(ValueError, match="spread"):
        LoadGenerator(["http://127.0.0.1:1/mcp"], spread="sticky")
    with pytest.raises(ValueError, match="at least one"):
        LoadGenerator([])
