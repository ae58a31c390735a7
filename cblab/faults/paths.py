"""Where cblab's data files live (scenarios, the backend's users and orders)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "data_dir"]

DATA_DIR_ENV = "CBLAB_DATA_DIR"


def data_dir() -> Path:
    """The repository's `data/` directory, or `$CBLAB_DATA_DIR` when set."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "data"
