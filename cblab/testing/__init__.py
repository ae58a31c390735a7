"""Test harnesses shared by cblab's tests and benchmarks (importable without pytest)."""

from cblab.testing.jupyter import (
    CHROMIUM_ARGS,
    DEFAULT_CHROMIUM,
    PLOTLY_SELECTOR,
    SLIDER_HANDLE_SELECTOR,
    JupyterLabServer,
    JupyterLabStartError,
    NotebookExecutionError,
    chromium_path,
    collect_console_errors,
    execute_notebook,
    kernel_status,
    launch_chromium,
    open_notebook,
    run_all_cells,
    wait_for_kernel_idle,
)

__all__ = [
    "CHROMIUM_ARGS",
    "DEFAULT_CHROMIUM",
    "PLOTLY_SELECTOR",
    "SLIDER_HANDLE_SELECTOR",
    "JupyterLabServer",
    "JupyterLabStartError",
    "NotebookExecutionError",
    "chromium_path",
    "collect_console_errors",
    "execute_notebook",
    "kernel_status",
    "launch_chromium",
    "open_notebook",
    "run_all_cells",
    "wait_for_kernel_idle",
]
