"""One JupyterLab for every browser walk of the notebooks (session-scoped).

It serves a copy of notebooks/ (JupyterLab saves outputs into what it shows) with
`data/` beside it, as in the repository, so 06's ``../data/runs`` resolves. Reports
go to ``reports/`` inside the served folder, so the server can serve them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cblab.testing import JupyterLabServer

REPO = Path(__file__).resolve().parents[2]

#: The notebooks' parameters for a person at the keyboard, only faster to trip and
#: recover (CBLAB_WAIT=0: nothing waits for the live loop).
LAB_ENV = {
    "CBLAB_BREAKER_TIMEOUT": "1",
    "CBLAB_FAILURE_THRESHOLD": "3",
    "CBLAB_WAIT": "0",
    "CBLAB_QUICK": "1",
    "FASTMCP_ENABLE_RICH_TRACEBACKS": "false",
    "CBLAB_LAB_TRACE": "1",  # the live view's steps in the server log (page_diagnosis)
}


def restore_notebooks(served: Path) -> None:
    """Put the committed notebooks back. JupyterLab autosaves what it shows, outputs
    included: a walk opening a notebook an earlier walk (or a failed attempt of the same
    walk, rerun) left behind would render that kernel's widgets, which no longer exist
    ("widget model not found")."""
    for book in (REPO / "notebooks").glob("*.ipynb"):
        shutil.copy(book, served)


@pytest.fixture(scope="session")
def served_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    served = root / "notebooks"
    served.mkdir()
    restore_notebooks(served)
    (root / "data").symlink_to(REPO / "data")
    return served


@pytest.fixture(scope="session")
def lab_server(served_notebooks: Path, artifacts_dir: Path) -> Iterator[JupyterLabServer]:
    env = {**LAB_ENV, "CBLAB_REPORT_DIR": str(served_notebooks / "reports")}
    with JupyterLabServer(served_notebooks, env=env,
                          log_path=artifacts_dir / "browser_walks_jupyterlab.log") as server:
        yield server


@pytest.fixture
def committed_notebooks(served_notebooks: Path) -> Path:
    """The served notebooks as committed, whatever a walk before this one saved."""
    restore_notebooks(served_notebooks)
    return served_notebooks
