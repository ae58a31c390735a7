"""The core's breaker-store contract, run against RedisStore on a real redis-server.

The contract tests drive a `ManualClock`, so the store runs with the testing
switch `client_time=True` (scripts take the caller's clock). Sync tests run
without an event loop: operations are blocking round trips; async tests run
them in the background and `flush()` waits for them.
"""

from __future__ import annotations

import pytest

from cblab.stores import RedisStore
from tests.core.store_contract import *  # noqa: F403


@pytest.fixture
def store_factory(redis_url, namespace):
    store = RedisStore(redis_url, namespace=namespace, client_time=True,
                       op_timeout=2.0).connect_sync()  # room for a loaded CI machine
    yield lambda: store
    store.close_sync()
