"""Run a notebook headless with this venv's ipykernel (nbclient).

    nb = execute_notebook("notebooks/03-live-lab.ipynb", env={"CBLAB_RUN_SECONDS": "3"})
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .server import write_kernelspec

if TYPE_CHECKING:  # nbformat is a test extra; import it lazily
    import nbformat

__all__ = ["NotebookExecutionError", "execute_notebook"]

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


class NotebookExecutionError(RuntimeError):
    """A notebook cell failed (or timed out, or the kernel died) during execution."""

    def __init__(
        self,
        notebook: str,
        cell_index: int | None,
        source: str,
        detail: str,
        *,
        ename: str = "",
        evalue: str = "",
    ) -> None:
        self.notebook = notebook
        self.cell_index = cell_index
        self.source = source
        self.detail = detail
        self.ename = ename
        self.evalue = evalue
        where = f"cell {cell_index}" if cell_index is not None else "kernel setup"
        bar = "-" * 60
        super().__init__(
            f"{notebook}: {where} failed: {ename or 'error'}: {evalue}\n"
            f"{bar}\n{source}\n{bar}\n{detail}"
        )


def execute_notebook(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    *,
    startup_timeout: float = 120.0,
    save_to: str | os.PathLike[str] | None = None,
) -> nbformat.NotebookNode:
    """Execute a notebook headless with this venv's ipykernel; return the executed node.

    ``env`` is added to the kernel's environment (on top of ``os.environ``); the kernel
    runs in the notebook's directory. ``timeout`` is per cell (seconds), as in nbclient.
    Widget state is not stored (``store_widget_state=False``). ``save_to`` writes the
    executed notebook (also when a cell fails) for inspection.

    Raises :class:`NotebookExecutionError` with the failing cell's source and its
    traceback (ANSI colours stripped).
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb_path = Path(path).resolve()
    nb = nbformat.read(nb_path, as_version=4)
    current: dict[str, Any] = {"index": None, "source": ""}

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        current["index"] = cell_index
        current["source"] = cell.source

    kernel_env = dict(os.environ)
    kernel_env.update({k: str(v) for k, v in (env or {}).items()})
    kernel_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

    with tempfile.TemporaryDirectory(prefix="cblab-kernelspec-") as tmp:
        write_kernelspec(Path(tmp))
        ksm = KernelSpecManager(kernel_dirs=[str(Path(tmp) / "kernels")])
        km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ksm)
        client = NotebookClient(
            nb,
            km=km,
            kernel_name="python3",
            timeout=timeout,
            startup_timeout=int(startup_timeout),
            store_widget_state=False,
            allow_errors=False,
            record_timing=True,
            resources={"metadata": {"path": str(nb_path.parent)}},
            on_cell_execute=on_cell_execute,
        )
        try:
            # We pass our own kernel manager, so ask nbclient to shut the kernel down.
            client.execute(env=kernel_env, cleanup_kc=True)
        except CellExecutionError as e:
            raise NotebookExecutionError(
                str(nb_path),
                current["index"],
                current["source"],
                _strip_ansi(e.traceback),
                ename=e.ename,
                evalue=e.evalue,
            ) from None
        except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as e:
            raise NotebookExecutionError(
                str(nb_path),
                current["index"],
                current["source"],
                _strip_ansi(str(e)),
                ename=type(e).__name__,
                evalue=f"(per-cell timeout {timeout:.0f} s)"
                if isinstance(e, CellTimeoutError | TimeoutError)
                else "",
            ) from e
        finally:
            _ensure_kernel_dead(km)
            if save_to is not None:
                Path(save_to).parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, save_to)
    return nb


def _ensure_kernel_dead(km: Any) -> None:
    """Best effort: kill the kernel process if nbclient left it running."""
    provisioner = getattr(km, "provisioner", None)
    proc = getattr(provisioner, "process", None)
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
