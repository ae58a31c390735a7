"""The report page's templates and stylesheet, shipped as package files in
`cblab/report/assets/` (found with `importlib.resources`, so an installed wheel
works like a checkout).

Templates are `string.Template`s (`$name` placeholders: CSS braces need no
escaping). A file's final newline is not part of its template, so a fragment
file can end like any text file and still render without a stray newline.
"""

from __future__ import annotations

import functools
from importlib import resources
from string import Template

__all__ = ["ASSETS", "asset_text", "render", "stylesheet"]

ASSETS = "assets"


@functools.cache
def asset_text(name: str) -> str:
    """The text of `assets/<name>`, without its final newline."""
    path = resources.files(__package__).joinpath(ASSETS, name)
    return path.read_text(encoding="utf-8").removesuffix("\n")


@functools.cache
def _template(name: str) -> Template:
    return Template(asset_text(name))


def render(name: str, **values: str) -> str:
    """`assets/<name>` with every `$placeholder` filled (KeyError names a missing one)."""
    return _template(name).substitute(values)


def stylesheet() -> str:
    return asset_text("report.css")
