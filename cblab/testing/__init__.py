"""Test harnesses shared by cblab's tests and benchmarks (importable without pytest).

- `server`: a throwaway JupyterLab process (`JupyterLabServer`);
- `browser`: the system Chromium through playwright, and JupyterLab page helpers;
- `kernel_traffic`: the messages between a page and its kernels (`KernelTraffic`);
- `nbrun`: headless notebook execution with nbclient (`execute_notebook`).
"""

from cblab.testing.browser import (
    BAND_STATE_JS,
    CHROMIUM_ARGS,
    CURRENT_STATE_JS,
    DEFAULT_CHROMIUM,
    ERROR_RATE_HANDLE,
    HAS_LATENCY_POINTS_JS,
    LIVE_CHART,
    PLOTLY_SELECTOR,
    SLIDER_HANDLE_SELECTOR,
    chromium_path,
    collect_console_errors,
    kernel_status,
    launch_chromium,
    open_notebook,
    page_diagnosis,
    run_all_cells,
    wait_for_kernel_idle,
)
from cblab.testing.kernel_traffic import KernelTraffic, parse_frame
from cblab.testing.nbrun import NotebookExecutionError, execute_notebook
from cblab.testing.server import LAB_USER_SETTINGS, JupyterLabServer, JupyterLabStartError

__all__ = [
    "BAND_STATE_JS",
    "CHROMIUM_ARGS",
    "CURRENT_STATE_JS",
    "DEFAULT_CHROMIUM",
    "ERROR_RATE_HANDLE",
    "HAS_LATENCY_POINTS_JS",
    "LIVE_CHART",
    "LAB_USER_SETTINGS",
    "PLOTLY_SELECTOR",
    "SLIDER_HANDLE_SELECTOR",
    "JupyterLabServer",
    "KernelTraffic",
    "JupyterLabStartError",
    "NotebookExecutionError",
    "chromium_path",
    "collect_console_errors",
    "execute_notebook",
    "parse_frame",
    "kernel_status",
    "launch_chromium",
    "open_notebook",
    "page_diagnosis",
    "run_all_cells",
    "wait_for_kernel_idle",
]
