"""A small weather MCP server, written the way a user writes one.

It stands in for *your* server in `notebooks/08-your-server.ipynb` and in
`cblab proxy` examples: nothing in it knows about cblab. Run it over stdio
(what a desktop client's config does) or over Streamable HTTP::

    python -m cblab.examples.weather_server                 # stdio
    python -m cblab.examples.weather_server --http --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError

mcp = FastMCP("weather")

CITIES = {
    "oslo": (59.91, 10.75),
    "lisbon": (38.72, -9.14),
    "nairobi": (-1.29, 36.82),
    "lima": (-12.05, -77.04),
    "osaka": (34.69, 135.50),
    "denver": (39.74, -104.99),
}
_CONDITIONS = ("sunny", "cloudy", "rain", "snow", "windy", "fog")


def _day(city: str, day: int) -> dict[str, object]:
    # the same city and day always give the same forecast
    seed = int(hashlib.sha256(f"{city}:{day}".encode()).hexdigest()[:8], 16)
    rng = random.Random(seed)
    lat, _ = CITIES[city]
    base = 25 - abs(lat) * 0.4
    return {
        "day": day,
        "condition": rng.choice(_CONDITIONS),
        "high_c": round(base + rng.uniform(0, 8), 1),
        "low_c": round(base - rng.uniform(2, 10), 1),
        "rain_mm": round(max(0.0, rng.gauss(2, 3)), 1),
    }


@mcp.tool
async def get_forecast(city: str, days: int = 1) -> dict[str, object]:
    """Forecast for a city, 1 to 7 days ahead."""
    name = city.strip().lower()
    if name not in CITIES:
        raise ToolError(f"unknown city {city!r}; try one of: {', '.join(sorted(CITIES))}")
    if not 1 <= days <= 7:
        raise ToolError("days must be between 1 and 7")
    await asyncio.sleep(0.005)  # a real server would call a weather API here
    return {"city": name, "days": [_day(name, d) for d in range(1, days + 1)]}


@mcp.tool
def list_cities() -> list[str]:
    """The cities this server knows."""
    return sorted(CITIES)


@mcp.resource("weather://cities")
def cities_resource() -> str:
    """The known cities, one per line."""
    return "\n".join(sorted(CITIES))


@mcp.prompt
def packing_advice(city: str) -> str:
    """Ask for packing advice given the forecast."""
    return f"Look up the 3-day forecast for {city} and tell me what to pack."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A small weather MCP server.")
    parser.add_argument("--http", action="store_true", help="serve Streamable HTTP, not stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.http:
        mcp.run(transport="http", host=args.host, port=args.port, path="/mcp", show_banner=False)
    else:
        mcp.run(show_banner=False)


if __name__ == "__main__":
    main()
