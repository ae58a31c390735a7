# The demo-server tests (bulkhead) run against the same live backend + server as the server's.
from tests.server.conftest import live, live_factory

__all__ = ["live", "live_factory"]
