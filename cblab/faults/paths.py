"""Where cblab's data files live: scenarios, the backend's users and orders, the
recorded runs.

They ship inside the package as `cblab/_data`, found with `importlib.resources`,
so an installed cblab finds them wherever it runs from. In a source checkout
`cblab/_data` is a symlink to the top-level `data/`, the one place people read and
edit them; the wheel carries copies made at build time. `$CBLAB_DATA_DIR` points
cblab at another directory of the same layout.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "data_dir"]

DATA_DIR_ENV = "CBLAB_DATA_DIR"


def data_dir() -> Path:
    """The data directory shipped with cblab, or `$CBLAB_DATA_DIR` when set."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    shipped = resources.files("cblab") / "_data"
    if not isinstance(shipped, Path):  # e.g. imported from a zip file
        raise RuntimeError(
            f"cblab's data files are not on the file system ({shipped}); "
            f"set {DATA_DIR_ENV} to a copy of its data/ directory"
        )
    return shipped
