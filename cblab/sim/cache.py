"""A disk cache of sweep results: one simulation's KPIs per entry.

    cache = ResultCache()                       # $CBLAB_CACHE_DIR or ~/.cache/cblab/sweep
    key = cache.key(scenario_data, config, options, seed)
    cache.get(key)                              # the KPIs dict, or None
    cache.put(key, kpis)
    cache.prune()                               # oldest entries go first past max_bytes

The key is a SHA-256 of (scenario spec, full breaker config, simulation options
including the deadline, seed, cblab version): change any of them and the entry
is a miss. The version includes a fingerprint of cblab's own source files, so
in a development checkout an edit to the simulator or the breaker invalidates
old results too (the release number alone would not change). Each entry is a small JSON file written atomically (temp file, then
rename), so concurrent sweeps and an interrupted sweep never leave a half-written
entry under a real name. An entry that does not parse, or whose stored key or
checksum does not match, is deleted and reported as a miss: it is recomputed,
never trusted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MAX_BYTES", "ResultCache", "code_version", "default_cache_dir"]

#: Default size cap: about 250,000 entries.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def default_cache_dir() -> Path:
    """``$CBLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/cblab/sweep``, else ``~/.cache/cblab/sweep``."""
    explicit = os.environ.get("CBLAB_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cblab" / "sweep"


@functools.cache
def code_version() -> str:
    """cblab's version plus a hash of its source files (results depend on the code)."""
    import cblab

    root = Path(cblab.__file__).parent
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    return f"{cblab.__version__}+{digest.hexdigest()[:12]}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class ResultCache:
    """KPIs of single simulations on disk, keyed by everything that decides them."""

    def __init__(self, path: str | Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 version: str | None = None) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"cache max_bytes must be an integer >= 0, got {max_bytes!r}")
        if version is None:
            version = code_version()
        self.path = Path(path) if path is not None else default_cache_dir()
        self.max_bytes = max_bytes
        self.version = version
        self.hits = 0
        self.misses = 0
        self.corrupt = 0
        self.written = 0
        self._dirs: set[Path] = set()

    def __repr__(self) -> str:
        return f"ResultCache({str(self.path)!r}, max_bytes={self.max_bytes})"

    def key(self, scenario: Mapping[str, Any], config: Mapping[str, Any],
            options: Mapping[str, Any], seed: int | str) -> str:
        """The entry's name: a hash of the scenario spec, config, options, seed and version."""
        return self.keys(scenario, config, options, [seed])[0]

    def keys(self, scenario: Mapping[str, Any], config: Mapping[str, Any],
             options: Mapping[str, Any], seeds: list[int | str]) -> list[str]:
        """`key` for several seeds, hashing the shared parts once (10^5 keys stay fast)."""
        shared = hashlib.sha256(_canonical(
            {"scenario": scenario, "config": config, "options": options,
             "cblab": self.version}).encode())
        out = []
        for seed in seeds:
            digest = shared.copy()
            digest.update(_canonical([type(seed).__name__, seed]).encode())
            out.append(digest.hexdigest())
        return out

    def _file(self, key: str) -> Path:
        return self.path / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored KPIs, or None (a miss). A damaged entry is removed and is a miss."""
        file = self._file(key)
        try:
            raw = file.read_bytes()
        except OSError:
            self.misses += 1
            return None
        try:
            entry = json.loads(raw)
            body = entry["kpis"]
            if entry["key"] != key or entry["sha256"] != _digest(body) or not isinstance(body, dict):
                raise ValueError("key or checksum mismatch")
        except (ValueError, KeyError, TypeError):
            self.corrupt += 1
            self.misses += 1
            file.unlink(missing_ok=True)
            return None
        self.hits += 1
        return body

    def put(self, key: str, kpis: Mapping[str, Any]) -> None:
        """Store `kpis` under `key`, atomically. A cache that cannot be written is skipped."""
        body = dict(kpis)
        data = json.dumps({"key": key, "sha256": _digest(body), "kpis": body}).encode()
        file = self._file(key)
        try:
            if file.parent not in self._dirs:  # one mkdir per shard, not per entry
                file.parent.mkdir(parents=True, exist_ok=True)
                self._dirs.add(file.parent)
            fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, file)
                self.written += 1
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass  # a read-only or full disk costs speed, not results

    def entries(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob("??/*.json"))

    def size_bytes(self) -> int:
        return sum(_size(p) for p in self.entries())

    def prune(self) -> int:
        """Delete the least recently written entries until the cache fits `max_bytes`;
        returns how many were deleted. Stale temp files (interrupted writes) go too."""
        if not self.path.is_dir():
            return 0
        for tmp in self.path.glob("??/.tmp-*"):
            tmp.unlink(missing_ok=True)
        stats = []
        for p in self.entries():
            try:
                st = p.stat()
            except OSError:
                continue
            stats.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in stats)
        removed = 0
        for _, size, p in sorted(stats, key=lambda s: (s[0], str(s[2]))):
            if total <= self.max_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    def clear(self) -> None:
        for p in self.entries():
            p.unlink(missing_ok=True)


def _digest(body: Any) -> str:
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
