"""The report page's templates and stylesheet are package files: found through
importlib.resources, declared as package data (so the wheel carries them), and
every placeholder of every template is filled by the renderers."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

from cblab.report import templates

ROOT = Path(__file__).resolve().parents[2]


def _assets() -> list[str]:
    folder = resources.files("cblab.report").joinpath(templates.ASSETS)
    return sorted(entry.name for entry in folder.iterdir() if entry.is_file())


def test_assets_are_found_with_importlib_resources() -> None:
    names = _assets()
    assert {"page.html", "report.css", "run.html", "comparison.html", "figure.html"} <= set(names)
    assert ":root" in templates.stylesheet()


def test_every_asset_is_declared_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["cblab.report"]
    for name in _assets():
        assert any(fnmatch.fnmatch(f"{templates.ASSETS}/{name}", p) for p in patterns), name


def test_every_template_is_used_and_every_placeholder_filled() -> None:
    sources = "".join(
        p.read_text() for p in (ROOT / "cblab" / "report").glob("*.py")
    )
    for name in _assets():
        if name.endswith(".html"):
            assert f'"{name}"' in sources, f"{name} is never rendered"
            for placeholder in set(re.findall(r"\$(\w+)", templates.asset_text(name))):
                assert re.search(rf"\b{placeholder}=", sources), (name, placeholder)
