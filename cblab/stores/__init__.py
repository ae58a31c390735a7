"""Breaker state stores beyond the in-memory default.

- `RedisStore` (needs `cblab[redis]`): one breaker state shared by every replica;
- `SharedHub` / `HubStore`: the same shared semantics in process memory, for the
  simulator's replicas and for tests;
- `RedisServer`: a throwaway `redis-server` on a loopback port (tests, `Stack`).

`RedisStore` is imported lazily, so `import cblab.stores` needs no redis client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hub import HubStore, SharedHub
from .server import RedisServer, RedisServerError

if TYPE_CHECKING:
    from .redis import RedisStore, StoreError

__all__ = ["HubStore", "RedisServer", "RedisServerError", "RedisStore", "SharedHub", "StoreError"]


def __getattr__(name: str) -> Any:
    if name in ("RedisStore", "StoreError"):
        from . import redis

        return getattr(redis, name)
    raise AttributeError(f"module 'cblab.stores' has no attribute {name!r}")
