"""Read and set a running server's breaker config through its admin API.

`GET /admin/breakers/{name}` (its status holds the config) and `PUT
/admin/breakers/{name}` (a whole config), both with ``Authorization: Bearer``
(`cblab.integrations.routes`). Every failure is an `AdminError` with one line.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["AdminError", "check_url", "get_config", "put_config"]

TIMEOUT_S = 10.0


class AdminError(ValueError):
    """The server could not be reached, refused the token, or refused the config."""


def check_url(url: str, flag: str = "--apply") -> str:
    """The base URL without a trailing slash; AdminError unless http(s)://host[:port]."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AdminError(f"{flag} needs the server's base URL, e.g. http://127.0.0.1:8000, "
                         f"got {url!r}")
    return url.rstrip("/")


def _request(method: str, url: str, token: str, body: Any = None) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.request(method, url, json=body, timeout=TIMEOUT_S,
                                 headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise AdminError(f"cannot reach {url}: {exc or type(exc).__name__}") from None
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code != 200:
        detail = data.get("detail") or data.get("error") if isinstance(data, dict) else None
        raise AdminError(f"{method} {url} answered {response.status_code}"
                         f"{f': {detail}' if detail else ''}")
    if not isinstance(data, dict) or not isinstance(data.get("breaker"), dict):
        raise AdminError(f"{method} {url} did not answer a breaker status (is it a cblab server?)")
    return data["breaker"]


def get_config(base: str, breaker: str, token: str) -> dict[str, Any]:
    """The breaker's current config, as the server reports it."""
    status = _request("GET", f"{base}/admin/breakers/{quote(breaker, safe='')}", token)
    config = status.get("config")
    if not isinstance(config, dict):
        raise AdminError(f"{base}: breaker {breaker!r} status has no config")
    config.pop("excluded_exceptions", None)
    return config


def put_config(base: str, breaker: str, token: str, config: dict[str, Any]) -> dict[str, Any]:
    """Replace the breaker's config; the server's status after the change."""
    return _request("PUT", f"{base}/admin/breakers/{quote(breaker, safe='')}", token, config)
