"""The users and orders services over real loopback HTTP, healthy."""

from __future__ import annotations

import csv
import json

import httpx
import pytest

from cblab.backend import Backend
from cblab.faults.paths import data_dir

GITHUB_USER_FIELDS = {
    "login",
    "id",
    "node_id",
    "avatar_url",
    "html_url",
    "type",
    "site_admin",
    "name",
    "company",
    "blog",
    "location",
    "email",
    "bio",
    "public_repos",
    "public_gists",
    "followers",
    "following",
    "created_at",
    "updated_at",
}


def test_fixtures_are_realistic() -> None:
    users = json.loads((data_dir() / "users.json").read_text())
    assert 40 <= len(users) <= 60
    assert len({u["login"].lower() for u in users}) == len(users)
    assert all(set(u) >= GITHUB_USER_FIELDS for u in users)
    with (data_dir() / "orders.csv").open(newline="") as fh:
        orders = list(csv.DictReader(fh))
    assert 150 <= len(orders) <= 250
    logins = {u["login"] for u in users}
    assert all(order["user_login"] in logins for order in orders)


async def test_user_found(backend: Backend, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{backend.urls['users']}/users/octocat")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    user = response.json()
    assert user["login"] == "octocat" and user["id"] == 583231
    assert set(user) >= GITHUB_USER_FIELDS
    # logins are case-insensitive, as on GitHub
    again = await client.get(f"{backend.urls['users']}/users/OctoCat")
    assert again.json() == user


@pytest.mark.parametrize(
    "path",
    [
        "/users/nobody-here",
        "/users/-leading",
        "/users/trailing-",
        "/users/double--hyphen",
        "/users/" + "a" * 40,
        "/users/",
        "/users/octocat/repos",
        "/users/..%2Fetc",
        "/users/%00",
        "/",
        "/orders/1001",
    ],
)
async def test_users_not_found(backend: Backend, client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(backend.urls["users"] + path)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


async def test_order_found_and_not_found(backend: Backend, client: httpx.AsyncClient) -> None:
    url = backend.urls["orders"]
    response = await client.get(f"{url}/orders/1001")
    assert response.status_code == 200
    order = response.json()
    assert set(order) == {"id", "user_login", "item", "amount_cents", "status", "created_at"}
    assert order["id"] == 1001 and isinstance(order["amount_cents"], int)
    for path in (
        "/orders/1",
        "/orders/99999999",
        "/orders/abc",
        "/orders/-5",
        "/orders/1.5",
        "/orders/" + "9" * 30,
        "/users/octocat",
    ):
        missing = await client.get(url + path)
        assert missing.status_code == 404, path
        assert missing.json() == {"message": "Not Found"}


async def test_wrong_method_is_405(backend: Backend, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{backend.urls['users']}/users/octocat", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


async def test_health_is_not_counted(backend: Backend, client: httpx.AsyncClient) -> None:
    for name in ("users", "orders"):
        response = await client.get(f"{backend.urls[name]}/health")
        assert response.json() == {"status": "ok", "service": name}
    assert all(stats["received"] == 0 for stats in backend.stats().values())


async def test_keep_alive_reuses_one_connection(backend: Backend, make_client) -> None:
    async with make_client(limits=httpx.Limits(max_connections=1)) as http:
        for _ in range(20):
            assert (await http.get(f"{backend.urls['users']}/users/octocat")).status_code == 200
    assert backend.stats()["users"]["received"] == 20


async def test_orders_db_at_given_path(tmp_path, client: httpx.AsyncClient) -> None:
    db = tmp_path / "orders.sqlite"
    async with Backend(db_path=db) as backend:
        assert db.is_file()
        response = await client.get(f"{backend.urls['orders']}/orders/1200")
        assert response.status_code == 200


def test_public_api_is_exported() -> None:
    import cblab.backend as backend_pkg

    for name in backend_pkg.__all__:
        assert getattr(backend_pkg, name) is not None
    assert set(backend_pkg.__all__) >= {
        "Backend",
        "FaultProfile",
        "ProfileError",
        "Scenario",
        "ScenarioError",
        "RequestPlan",
        "plan_request",
        "rng_for",
        "capacity_verdict",
        "HEALTHY",
        "SERVICES",
    }


def test_backend_imports_only_itself_faults_and_the_standard_library() -> None:
    import ast
    import sys
    from pathlib import Path

    import cblab.backend as backend_pkg

    allowed = set(sys.stdlib_module_names) | {"__future__"}
    for path in Path(backend_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name} reaches outside cblab.backend"
                if node.level == 0 and node.module.startswith("cblab."):
                    # faults, and the stdlib-only JSON guard shared with the server
                    assert node.module.split(".")[1] in ("faults", "strict_json"), (
                        f"{path.name}: {node.module}"
                    )
                elif node.level == 0:
                    assert node.module.split(".")[0] in allowed, f"{path.name}: {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in allowed, f"{path.name}: {alias.name}"


def test_importing_the_package_does_not_start_loading_the_servers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cblab.backend\n"
        "assert 'cblab.backend.app' not in sys.modules, sorted(sys.modules)\n"
        "from cblab.backend import Backend\n"
        "assert Backend.__module__ == 'cblab.backend.app'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
