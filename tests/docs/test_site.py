"""The docs site builds strictly, says what the code does, and works from disk."""

from __future__ import annotations

import argparse
import html
import importlib.metadata
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import cblab
from cblab import CircuitBreakerConfig, ConfigError, CountWindow

ROOT = Path(__file__).resolve().parents[2]


def page_text(site: Path, page: str) -> str:
    raw = (site / page).read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def test_every_nav_page_is_built(built_site: Path) -> None:
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages: list[str] = []

    def walk(entry: Any) -> None:
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                walk(value)
        elif isinstance(entry, list):
            for value in entry:
                walk(value)

    walk(nav)
    assert len(pages) > 30
    for page in pages:
        built = built_site / re.sub(r"\.(md|ipynb)$", ".html", page)
        assert built.exists(), f"{page} has no built page"


def test_cli_reference_has_a_line_for_every_flag(built_site: Path) -> None:
    """A new flag (or command) without a help text fails here."""
    from generated import command_parser, documented_options

    from cblab.cli import SUBCOMMANDS

    text = page_text(built_site, "reference/cli.html")
    for command in SUBCOMMANDS:
        assert f"cblab {command}" in text
        parser = command_parser(command)
        for action in documented_options(parser):
            name = action.option_strings[0] if action.option_strings else (
                action.metavar or action.dest)
            assert name in text, f"cblab {command}: {name} missing from the CLI reference"
            assert (action.help or "").strip(), f"cblab {command} {name}: no help text"


def test_command_parser_catches_the_real_parser() -> None:
    from generated import command_parser

    parser = command_parser("simulate")
    assert isinstance(parser, argparse.ArgumentParser)
    assert parser.prog.endswith("simulate")
    assert any("--seed" in a.option_strings for a in parser._actions)


@pytest.mark.parametrize(
    ("field", "accepted", "refused"),
    [
        ("failure_threshold", [1, 1_000_000], [0, 1_000_001, 2.5, True]),
        ("half_open_max_calls", [1, 1_000_000], [0, 1_000_001]),
        ("timeout", [0, 0.5, timedelta(days=366)], [-1, 366 * 86400 + 1, float("inf")]),
        ("call_timeout", [None, 0.1, 366 * 86400], [0, -1, 366 * 86400 + 1]),
        ("max_trial_duration", [None, 2.0], [0, float("nan")]),
        ("backoff_multiplier", [1, 1000], [0.5, 1000.5]),
    ],
)
def test_configuration_bounds_are_the_documented_ones(
    field: str, accepted: list[Any], refused: list[Any]
) -> None:
    from generated import config_bounds

    assert field in config_bounds()
    base: dict[str, Any] = {"success_threshold": 1}
    for value in accepted:
        CircuitBreakerConfig(**{**base, field: value})
    for value in refused:
        with pytest.raises(ConfigError, match=field):
            CircuitBreakerConfig(**{**base, field: value})


def test_configuration_page_lists_every_field(built_site: Path) -> None:
    import dataclasses

    from generated import config_bounds

    fields = [f.name for f in dataclasses.fields(CircuitBreakerConfig)]
    assert sorted(config_bounds()) == sorted(fields)
    text = page_text(built_site, "reference/configuration.html")
    for name in fields:
        assert name in text
    # the cross-field rules the table states
    with pytest.raises(ConfigError, match="success_threshold"):
        CircuitBreakerConfig(success_threshold=4, half_open_max_calls=3)
    with pytest.raises(ConfigError, match="max_timeout"):
        CircuitBreakerConfig(timeout=10, max_timeout=5)
    CircuitBreakerConfig(policy=CountWindow(size=10, minimum_calls=5).to_dict())


async def test_one_version_everywhere(built_site: Path) -> None:
    """The package metadata, serverInfo, the docs and the changelog agree."""
    from fastmcp import Client

    from cblab.server.app import ServerSettings, build_server

    version = cblab.__version__
    assert importlib.metadata.version("cblab") == version
    assert f"Version {version}" in page_text(built_site, "index.html")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)
    mcp = build_server(ServerSettings())
    async with Client(mcp) as client:
        info = client.server_info
    assert info is not None and info.version == version
