"""A fault-injecting MCP proxy in front of any MCP server (Streamable HTTP or stdio).

`FaultProxy` forwards MCP as the server wrote it (an HTTP upstream at the
transport level, a stdio server message for message), survives the server going
away (`UpstreamHealth`), and injects faults into tool calls from the backend's
fault-profile schema, with the same seeded decisions as the backend and the
simulator. `cblab proxy` runs it from the command line.
"""

from .faults import ALL_TOOLS, ERROR_AS, FaultTable, ToolFault, UnknownToolError
from .health import UpstreamHealth
from .scenario import ProxyScenario
from .server import FaultProxy
from .upstream import ProxyError, Upstream

__all__ = [
    "ALL_TOOLS",
    "ERROR_AS",
    "FaultProxy",
    "FaultTable",
    "ProxyError",
    "ProxyScenario",
    "ToolFault",
    "UnknownToolError",
    "Upstream",
    "UpstreamHealth",
]
