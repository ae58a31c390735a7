"""`cblab notebooks DIR`: copy the lab's notebooks out of an installed cblab.

The notebooks ship inside the package (`cblab/_notebooks`, a symlink to the
top-level `notebooks/` in a source checkout), so someone who installed the wheel
can get them and open them in JupyterLab::

    cblab notebooks ~/cblab-notebooks
    jupyter lab ~/cblab-notebooks

Existing files are left alone unless `--force` is given. Standard library only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

__all__ = ["copy_notebooks", "main", "shipped_notebooks"]


def shipped_notebooks() -> list[Path]:
    """The notebooks shipped with cblab, in reading order (00-index first)."""
    folder = resources.files("cblab") / "_notebooks"
    if not isinstance(folder, Path) or not folder.is_dir():
        raise FileNotFoundError(f"cblab's notebooks are not installed with it ({folder})")
    return sorted(folder.glob("*.ipynb"))


def copy_notebooks(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the shipped notebooks into `dest` (created if missing); return the new files.

    Raises FileExistsError naming the files that are already there, unless `force`.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"{dest} exists and is not a directory")
    sources = shipped_notebooks()
    targets = [dest / source.name for source in sources]
    existing = [target.name for target in targets if target.exists()]
    if existing and not force:
        raise FileExistsError(
            f"{dest} already has {', '.join(existing)}; use --force to overwrite them"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for source, target in zip(sources, targets, strict=True):
        shutil.copyfile(source, target)
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cblab notebooks", description="Copy the lab's Jupyter notebooks into DIR."
    )
    parser.add_argument("dir", type=Path, help="where to put them (created if missing)")
    parser.add_argument("--force", action="store_true", help="overwrite notebooks already there")
    args = parser.parse_args(argv)
    try:
        written = copy_notebooks(args.dir, force=args.force)
    except (OSError, FileExistsError) as exc:
        print(f"cblab notebooks: {exc}", file=sys.stderr)
        return 1
    print(f"copied {len(written)} notebooks to {args.dir}/; open them with:")
    print(f"  jupyter lab {args.dir}")
    return 0
