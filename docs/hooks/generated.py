"""MkDocs hook: reference sections generated from the code, so they cannot drift.

A page asks for one with an HTML comment on a line of its own:

    <!-- cblab:cli -->                    every `cblab` subcommand, from its argparse parser
    <!-- cblab:config -->                 CircuitBreakerConfig's fields, defaults and bounds
    <!-- cblab:docstring cblab.codes -->  a module's docstring (its tables), verbatim
    <!-- cblab:version -->                the package version
    <!-- cblab:glossary -->               the KPI glossary (`cblab.analysis.GLOSSARY`)

`tests/docs` imports the same functions to check the site against the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
from contextlib import ExitStack
from typing import Any
from unittest import mock

PLACEHOLDER = re.compile(r"<!-- cblab:(\w+)(?: ([\w.]+))? -->")


class _Captured(Exception):
    """Raised instead of parsing: the parser a command built is all we want."""


def command_parser(command: str) -> argparse.ArgumentParser:
    """The parser `cblab COMMAND` builds, caught as it starts parsing (some commands
    build theirs inside `main`, so asking the command is the one way that always works)."""
    from cblab.cli import SUBCOMMANDS

    module_name, func_name, _ = SUBCOMMANDS[command]
    caught: list[argparse.ArgumentParser] = []

    def catch(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        caught.append(self)
        raise _Captured

    main = getattr(importlib.import_module(module_name), func_name)
    with ExitStack() as stack:
        for name in ("parse_args", "parse_known_args", "parse_intermixed_args"):
            stack.enter_context(mock.patch.object(argparse.ArgumentParser, name, catch))
        try:
            main([])
        except _Captured:
            pass
    if not caught:
        raise RuntimeError(f"cblab {command} built no argparse parser")
    return caught[0]


def documented_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _option_name(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0:
            names += f" `{action.metavar or action.dest.upper()}`"
        return names
    return f"`{action.metavar or action.dest}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def cli_reference() -> str:
    from cblab.cli import SUBCOMMANDS

    out = []
    for command, (_, _, summary) in SUBCOMMANDS.items():
        parser = command_parser(command)
        out += [f"## cblab {command}", "", f"{summary[0].upper()}{summary[1:]}.", ""]
        out += ["```text", parser.format_usage().strip(), "```", ""]
        if parser.description:
            out += [_cell(parser.description), ""]
        out += ["| option | what it does | default |", "|---|---|---|"]
        for action in documented_options(parser):
            default = action.default
            shown = "" if default in (None, argparse.SUPPRESS, False) else f"`{default}`"
            help_text = (action.help or "") % {"default": default, "prog": parser.prog}
            out.append(f"| {_option_name(action)} | {_cell(help_text)} | {_cell(shown)} |")
        out.append("")
    return "\n".join(out)


def config_reference() -> str:
    from cblab import CircuitBreakerConfig
    from cblab._config import MAX_BACKOFF_MULTIPLIER, MAX_COUNT, MAX_SECONDS

    bounds = config_bounds()
    rows = ["| field | default | accepted values |", "|---|---|---|"]
    for f in dataclasses.fields(CircuitBreakerConfig):
        if f.default is not dataclasses.MISSING:
            default = f"`{f.default!r}`"
        else:
            default = f"`{f.default_factory().__class__.__name__}()`"  # type: ignore[misc]
        rows.append(f"| `{f.name}` | {default} | {bounds[f.name]} |")
    rows += ["", f"Seconds are at most {MAX_SECONDS:,.0f} (366 days); counts at most "
             f"{MAX_COUNT:,}; `backoff_multiplier` at most {MAX_BACKOFF_MULTIPLIER:g}."]
    return "\n".join(rows)


def config_bounds() -> dict[str, str]:
    """What each field accepts, in words; `tests/docs` checks each claim against
    `CircuitBreakerConfig` (values at and past every bound)."""
    count = "integer, 1 to 1,000,000"
    seconds = "seconds (float or `timedelta`), 0 to 366 days"
    optional_seconds = "`None`, or seconds > 0, at most 366 days"
    return {
        "failure_threshold": count,
        "success_threshold": count + "; at most `half_open_max_calls`",
        "timeout": seconds,
        "half_open_max_calls": count,
        "policy": "`ConsecutiveFailures`, `CumulativeFailures`, `CountWindow`, `TimeWindow` "
                  "(or their `to_dict()`)",
        "call_timeout": optional_seconds,
        "max_trial_duration": optional_seconds,
        "backoff_multiplier": "number, 1 to 1000",
        "max_timeout": optional_seconds + "; at least `timeout`",
        "excluded_exceptions": "a tuple of exception classes",
        "is_excluded": "`None` or a callable taking the exception",
    }


def module_docstring(module: str) -> str:
    doc = importlib.import_module(module).__doc__ or ""
    return "```text\n" + doc.strip() + "\n```"


def _render(kind: str, arg: str | None) -> str:
    if kind == "cli":
        return cli_reference()
    if kind == "config":
        return config_reference()
    if kind == "docstring" and arg:
        return module_docstring(arg)
    if kind == "glossary":
        from cblab.analysis import glossary_markdown

        return glossary_markdown()
    if kind == "version":
        import cblab

        return cblab.__version__
    raise ValueError(f"unknown cblab placeholder {kind!r}")


def on_page_markdown(markdown: str, **_: Any) -> str:
    return PLACEHOLDER.sub(lambda m: _render(m.group(1), m.group(2)), markdown)
