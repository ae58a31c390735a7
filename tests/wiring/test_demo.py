"""The demo's wiring table (cblab.demo) agrees with the parts that use it."""

from __future__ import annotations

import random

from cblab import CircuitBreakerConfig
from cblab.demo import (
    BREAKER_DEFAULTS,
    BREAKER_SERVICE,
    BREAKERS,
    DEMO_ORDER_IDS,
    DEMO_USERNAMES,
    ROUTES,
    SERVICE_ROUTES,
    TOOL_BREAKERS,
    demo_arguments,
)
from cblab.faults import SERVICES, data_dir


def test_tables_are_views_of_one_route_list():
    assert BREAKERS == ("github", "database")
    assert dict(TOOL_BREAKERS) == {"github_user": "github", "order_lookup": "database"}
    assert dict(SERVICE_ROUTES) == {
        "users": ("github", "github_user"),
        "orders": ("database", "order_lookup"),
    }
    assert dict(BREAKER_SERVICE) == {"github": "users", "database": "orders"}
    assert {route.service for route in ROUTES} == set(SERVICES)


def test_breaker_defaults_are_valid_configs():
    assert tuple(BREAKER_DEFAULTS) == BREAKERS
    github = CircuitBreakerConfig.from_dict(dict(BREAKER_DEFAULTS["github"]))
    assert (github.failure_threshold, github.timeout) == (3, 60.0)


def test_demo_arguments_exist_in_the_backend_data():
    import csv
    import json

    users = json.loads((data_dir() / "users.json").read_text())
    logins = {u["login"] for u in users}
    assert set(DEMO_USERNAMES) <= logins
    with (data_dir() / "orders.csv").open(newline="") as fh:
        ids = {int(row["id"]) for row in csv.DictReader(fh)}
    assert set(DEMO_ORDER_IDS) <= ids
    rng = random.Random(1)
    assert demo_arguments("github_user")(rng)["username"] in DEMO_USERNAMES
    assert demo_arguments("order_lookup")(rng)["order_id"] in DEMO_ORDER_IDS
    assert demo_arguments("circuit_status")(rng) == {}


async def test_the_demo_server_wires_its_tools_as_the_table_says():
    from fastmcp import Client

    from cblab.server import ServerSettings, build_server, lab_of

    mcp = build_server(ServerSettings())
    async with Client(mcp) as client:
        tools = {tool.name for tool in await client.list_tools()}
    assert set(TOOL_BREAKERS) <= tools
    assert tuple(lab_of(mcp).registry.names()) == BREAKERS


def test_no_other_module_spells_the_wiring_again():
    """The tool -> breaker -> service tables and the breaker defaults live in cblab.demo only."""
    import re
    from pathlib import Path

    import cblab

    root = Path(cblab.__file__).parent
    pattern = re.compile(
        r"""["']github_user["']\s*:\s*\(?["']github|["']users["']\s*:\s*\(["']github"""
        r"""|["']order_lookup["']\s*:\s*\(?["']database|\(["']github["'],\s*3,\s*60"""
    )
    offenders = [str(path.relative_to(root)) for path in root.rglob("*.py")
                 if path.name != "demo.py" and pattern.search(path.read_text())]
    assert not offenders, f"import the wiring from cblab.demo instead: {offenders}"
