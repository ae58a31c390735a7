"""Open-loop load over real MCP: arrivals on a schedule, latency from the intended start.

    from cblab.load import LoadGenerator

    gen = LoadGenerator(stack.mcp_url("protected"), "github_user", rate=50, variant="protected")
    await gen.run(duration=10)
    gen.to_frame()          # cblab.schema rows, source="load"
"""

from .generator import DEMO_ORDER_IDS, DEMO_USERNAMES, LoadGenerator, demo_arguments

__all__ = ["DEMO_ORDER_IDS", "DEMO_USERNAMES", "LoadGenerator", "demo_arguments"]
