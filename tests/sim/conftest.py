"""The simulator tests never touch the user's result cache (~/.cache/cblab/sweep)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_sweep_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CBLAB_CACHE_DIR", str(tmp_path_factory.mktemp("sweep-cache")))
