"""`make lab` opens a JupyterLab that never asks about Jupyter news.

The Makefile writes JupyterLab's settings overrides (``LAB_OVERRIDES``) into the
venv; here the same snippet writes them into a temporary prefix, and a real
JupyterLab started on that settings directory, with no user settings at all,
reports the notification settings the snippet set (``fetchNews: "false"``: no
news and no prompt; JupyterLab asks only while it is "none").
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cblab.testing import JupyterLabServer

REPO = Path(__file__).resolve().parents[2]


def _overrides_snippet() -> str:
    text = (REPO / "Makefile").read_text()
    found = re.search(r"^define LAB_OVERRIDES\n(.*?)^endef$", text, re.S | re.M)
    assert found, "the Makefile's LAB_OVERRIDES block is missing"
    return found.group(1)


@pytest.mark.live
def test_make_lab_settings_turn_the_news_prompt_off(tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    code = "import sys; sys.prefix = sys.argv[1]\n" + _overrides_snippet()
    subprocess.run([sys.executable, "-c", code, str(prefix)], check=True)
    settings_dir = prefix / "share" / "jupyter" / "lab" / "settings"
    # A second run keeps what is there (merged, not replaced).
    data = json.loads((settings_dir / "overrides.json").read_text())
    data["@jupyterlab/apputils-extension:themes"] = {"theme": "JupyterLab Dark"}
    (settings_dir / "overrides.json").write_text(json.dumps(data))
    subprocess.run([sys.executable, "-c", code, str(prefix)], check=True)
    data = json.loads((settings_dir / "overrides.json").read_text())
    assert data["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    with JupyterLabServer(notebooks, user_settings={},
                          extra_args=[f"--LabApp.app_settings_dir={settings_dir}"]) as lab:
        plugin = lab.api("GET", "lab/api/settings/@jupyterlab/apputils-extension:notification")
    # What the page uses: the user's settings (none here) over the schema's defaults,
    # which JupyterLab takes from the overrides.
    defaults = {k: v.get("default") for k, v in plugin["schema"]["properties"].items()}
    composite = {**defaults, **(plugin.get("settings") or {})}
    assert composite["fetchNews"] == "false" and composite["checkForUpdates"] is False
