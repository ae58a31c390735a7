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
old results too (the release number alone would not change). Each entry is a small
JSON file written atomically (temp file, then rename), so concurrent sweeps and an
interrupted sweep never leave a half-written entry under a real name.

Entries are authenticated: each carries an HMAC-SHA256 of its key and KPIs under
the cache's own secret, 32 random bytes in `<dir>/.key` (created on first use,
mode 0600, refused if others can read or write it). A checksum anyone can
recompute would let an edited entry pass (availability 1.000 from a file someone
wrote); without the key an entry cannot be forged, and entries copied from
another cache do not verify. Whoever can read the key file (the cache's owner)
can still write valid entries: the cache trusts its owner, nobody else.

An entry that is not a small regular file (a FIFO would block the sweep), does
not parse (JSON nested thousands deep included), or does not verify is deleted
and reported as a miss: it is recomputed, never trusted. A directory that cannot
be a cache (a file, unwritable) is a `CacheError` from `open()`, which `sweep`
calls before any work.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cblab.strict_json import read_json_file

__all__ = ["DEFAULT_MAX_BYTES", "CacheError", "ResultCache", "code_version", "default_cache_dir"]

#: Default size cap: about 250,000 entries.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: An entry is one run's KPIs (about 1 KB); anything much larger is not ours.
MAX_ENTRY_BYTES = 64 * 1024
KEY_FILE = ".key"
_KEY_BYTES = 32


class CacheError(ValueError):
    """The cache directory cannot be used (not a directory, not writable, an unsafe key)."""


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
        self._secret: bytes | None = None

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

    def open(self) -> ResultCache:
        """Make sure the directory can be a cache (create it and its key if needed);
        CacheError naming the problem otherwise. `get`/`put` call it on first use."""
        if self._secret is not None:
            return self
        where = str(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise CacheError(f"cache directory {where!r} is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache directory {where!r}: "
                             f"{exc.strerror or exc}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise CacheError(f"cache directory {where!r} is not writable")
        self._secret = self._load_secret(self.path / KEY_FILE)
        return self

    def _load_secret(self, file: Path) -> bytes:
        if not file.exists():  # first use: 32 random bytes, readable by the owner only
            try:
                fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".key-")  # mode 0600
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(_KEY_BYTES))
                try:  # linked whole under its name: a concurrent sweep never sees half a key
                    os.link(tmp, file)
                except FileExistsError:
                    pass  # another sweep made it first: use theirs
                finally:
                    os.unlink(tmp)
            except OSError as exc:
                raise CacheError(f"cannot create the cache key {str(file)!r}: "
                                 f"{exc.strerror or exc}") from None
        try:
            fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise CacheError(f"cannot read the cache key {str(file)!r}: "
                             f"{exc.strerror or exc}") from None
        with os.fdopen(fd, "r") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise CacheError(f"cache key {str(file)!r} is not a regular file")
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                raise CacheError(
                    f"cache key {str(file)!r} is not private (owner uid {info.st_uid}, mode "
                    f"{stat.S_IMODE(info.st_mode):04o}): entries could be forged; "
                    "remove it (the cache starts over) or chmod 600 it")
            text = handle.read(4 * _KEY_BYTES).strip()
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) != _KEY_BYTES:
            raise CacheError(f"cache key {str(file)!r} is damaged; remove it (the cache "
                             "starts over)")
        return secret

    def _mac(self, key: str, body: Any) -> str:
        assert self._secret is not None
        message = key.encode() + b"\n" + _canonical(body).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored KPIs, or None (a miss). A damaged, foreign or forged entry is
        removed and is a miss."""
        self.open()
        file = self._file(key)
        try:
            entry = read_json_file(file, max_bytes=MAX_ENTRY_BYTES)
            body = entry["kpis"]
            if (entry["key"] != key or not isinstance(body, dict)
                    or not hmac.compare_digest(str(entry["mac"]), self._mac(key, body))):
                raise ValueError("key or authentication code mismatch")
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.corrupt += 1
            self.misses += 1
            _remove(file)
            return None
        self.hits += 1
        return body

    def put(self, key: str, kpis: Mapping[str, Any]) -> None:
        """Store `kpis` under `key`, atomically. A cache that cannot be written is skipped."""
        self.open()
        body = dict(kpis)
        data = json.dumps({"key": key, "mac": self._mac(key, body), "kpis": body}).encode()
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


def _remove(file: Path) -> None:
    """Delete a bad entry, whatever it is (a file, a FIFO, a symlink; not a directory)."""
    try:
        file.unlink(missing_ok=True)
    except OSError:
        pass


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
