"""Every notebook runs top to bottom, headless (nbclient), with short-run settings.

The live notebooks get an autopilot (slider moves played by the lab itself) and
must see their breaker go OPEN and come back: `await lab.wait()` in their last
cell checks it. Notebooks are also checked to be committed clean.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cblab.testing import execute_notebook

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))

COMMON = {
    "CBLAB_QUICK": "1",
    "CBLAB_WAIT": "1",
    "CBLAB_UPDATE_HZ": "5",
    "CBLAB_BREAKER_TIMEOUT": "1",
    "FASTMCP_ENABLE_RICH_TRACEBACKS": "false",
}
LIVE = {
    "01-why-circuit-breakers.ipynb": {
        "CBLAB_RUN_SECONDS": "14",
        "CBLAB_AUTOPILOT": "1:outage=hang,7:outage=up",
        "CBLAB_EXPECT_STATES": "open,closed",
    },
    "03-live-lab.ipynb": {
        "CBLAB_RUN_SECONDS": "12",
        "CBLAB_AUTOPILOT": "1:error_rate=100,5:error_rate=0",
        "CBLAB_EXPECT_STATES": "open,closed",
    },
    "04-tuning.ipynb": {"CBLAB_RUN_SECONDS": "24"},
    "08-your-server.ipynb": {
        "CBLAB_RUN_SECONDS": "12",
        "CBLAB_AUTOPILOT": "1:error_rate=100,5:error_rate=0",
        "CBLAB_EXPECT_STATES": "open,closed",
    },
}


def test_the_notebooks_are_all_here() -> None:
    assert NOTEBOOKS == [
        "00-index.ipynb",
        "01-why-circuit-breakers.ipynb",
        "02-state-machine.ipynb",
        "03-live-lab.ipynb",
        "04-tuning.ipynb",
        "05-related-patterns.ipynb",
        "06-reports.ipynb",
        "07-replicas.ipynb",
        "08-your-server.ipynb",
        "09-tune-your-breaker.ipynb",
    ]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean(name: str) -> None:
    book = json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))
    for i, cell in enumerate(book["cells"]):
        # nbformat 4.5 cells carry ids; without one, nbformat warns and will refuse the file
        assert cell.get("id"), f"{name} cell {i} has no id"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name} cell {i} has outputs"
            assert cell["execution_count"] is None, f"{name} cell {i} has an execution count"
            assert len(cell["source"]) <= 16, f"{name} cell {i}: keep code cells short"
    assert "widgets" not in book["metadata"], f"{name} carries widget state"


@pytest.mark.live
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_headless(name: str, tmp_path: Path, artifacts_dir: Path) -> None:
    env = {**COMMON, **LIVE.get(name, {}), "CBLAB_REPORT_DIR": str(tmp_path / "reports")}
    executed = execute_notebook(
        NOTEBOOKS_DIR / name,
        env=env,
        timeout=180,
        save_to=artifacts_dir / "notebooks" / name,
    )
    # execute_notebook raises on any error: check what the notebook should show.
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    for cell in code:
        last = cell.source.strip().splitlines()[-1] if cell.source.strip() else ""
        shows = last and not last.startswith((" ", "#", "for ", "if ", "else")) and "=" not in \
            last.split("(")[0] and not last.startswith(("import ", "from ", "print("))
        if shows and "await lab.wait()" not in last:
            assert cell.outputs, f"{name}: this cell shows nothing:\n{cell.source}"
    expected = LIVE.get(name, {}).get("CBLAB_EXPECT_STATES")
    if expected:
        # The cell awaiting the lab shows its summary: the states the breaker visited.
        waits = [cell for cell in code if "await lab.wait()" in cell.source]
        assert waits and waits[-1].outputs, f"{name}: the live lab's summary is missing"
        summary = ast.literal_eval(waits[-1].outputs[-1]["data"]["text/plain"])
        seen = set(summary["protected"]["states_seen"])
        assert set(expected.split(",")) <= seen, f"{name}: the breaker only went {seen}"
        assert summary["protected"]["calls"] > 50 and summary["updates"] > 10, summary
