"""Host and Origin checks for the control API (DNS rebinding, cross-site requests).

A web page the user visits can make the browser send requests to loopback
ports: a cross-site `fetch` (`Origin: http://evil.example`, a `text/plain` body
needs no preflight) or, after DNS rebinding, a same-origin one
(`Host: evil.example:PORT`). Either would drive the control API. So, as the MCP
server does with fastmcp's `host_origin_protection`:

- `Host` must name loopback (`localhost`, `127.x.x.x`, `[::1]`, any port), the
  address the backend is bound to (unless a wildcard), or one of `allowed_hosts`
  -> else 421;
- `Origin`, when sent, must have a loopback host, be the request's own origin, or
  be one of `allowed_origins` -> else 403.

This holds with and without a token: the token keeps out other local users, the
Host and Origin checks keep out web pages (which could also reach the routes that
need no token). An HTTP/1.0 request without Host is not a browser's: allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from ipaddress import ip_address
from urllib.parse import urlsplit

__all__ = ["HostGuard", "is_loopback"]


def _hostname(host: str) -> str:
    """`host[:port]` or `[v6]:port` -> the lower-case name without the port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.rsplit(":", 1)[0]
    return host


def is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ip_address(name).is_loopback
    except ValueError:
        return False


def _unspecified(name: str) -> bool:
    try:
        return not name or ip_address(name).is_unspecified
    except ValueError:
        return False


class HostGuard:
    """Decides whether a control request's Host and Origin are acceptable."""

    def __init__(
        self, bind_host: str, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()
    ) -> None:
        hosts = [h.lower() for h in allowed_hosts]
        bound = _hostname(bind_host)
        if not _unspecified(bound):
            hosts.append(bound)
        self.allowed_hosts = tuple(hosts)
        self.allowed_origins = tuple(o.strip().rstrip("/").lower() for o in allowed_origins)

    def host_allowed(self, host: str) -> bool:
        name = _hostname(host)
        return is_loopback(name) or any(fnmatchcase(name, pattern) for pattern in self.allowed_hosts)

    def origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if any(fnmatchcase(origin, pattern) for pattern in self.allowed_origins):
            return True
        try:
            parts = urlsplit(origin)
            name = (parts.hostname or "").lower()
        except ValueError:
            return False
        if parts.scheme not in ("http", "https"):
            return False  # "null" (sandboxed pages, file://) and the like
        return is_loopback(name) or parts.netloc == host.strip().lower()

    def refusal(self, headers: dict[str, str]) -> tuple[int, str] | None:
        """None when acceptable, else (status, message). `headers` has lower-case names."""
        host = headers.get("host")
        if host is None:
            host = ""
        elif not self.host_allowed(host):
            return 421, (
                f"Host {host[:100]!r} is not allowed: the control API answers loopback "
                "names only (start the backend with --allow-host NAME to add one)"
            )
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return 403, (
                f"Origin {origin[:100]!r} is not allowed: cross-site requests to the "
                "control API are refused (--allow-origin ORIGIN to add one)"
            )
        return None
