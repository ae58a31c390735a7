"""Recorded runs: a directory holding the events of one run and what produced them.

Layout::

    <run>/
      run.json      metadata (below)
      events.csv    one row per event, columns = cblab.schema.EVENT_COLUMNS

One time axis for every source in a run: `t` is seconds since the run started,
and when the run played a scenario, since the scenario started (its first
phase begins at t = 0), so `cblab.analysis.played_scenario(run)` places the
rows in its phases. Producers shift each source onto that axis before saving
and fill every row's `phase` (`cblab.analysis.phase_labels`), the server's too.

`run.json` (format 1)::

    {
      "format": 1,
      "name": "outage-and-recovery-protected",
      "kind": "live",                      # or "simulated"
      "config": {"users": {...breaker config...}},   # by breaker name ({} if none)
      "scenario": {"name": "outage-and-recovery", "spec": {...} | null},  # or null
      "seed": 7,                           # or null
      "variants": ["protected"],           # variant labels found in the events
      "versions": {"cblab": "0.1.0", "python": "3.11.7", "pandas": "...", ...},
      "started_at": "2026-11-27T16:30:00Z",   # ISO 8601, UTC
      "duration_s": 24.3,
      "notes": "free text",
      "extra": {...}                       # anything else the producer wants to keep
    }

`save_run` writes atomically (a temporary directory next to the target, then a
rename), so a reader never sees a half-written run. `load_run` validates
everything and raises `RunError` naming the problem. Both the live lab and the
simulator save runs; reports load them.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from cblab.analysis import AnalysisError, events_frame
from cblab.faults.paths import data_dir
from cblab.schema import EVENT_COLUMNS
from cblab.strict_json import read_json_file

__all__ = [
    "EVENTS_FILE",
    "META_FILE",
    "RUN_FORMAT",
    "Run",
    "RunError",
    "RunMeta",
    "json_event_rows",
    "load_run",
    "read_event_rows",
    "save_run",
    "shipped_runs",
    "validate_events",
    "versions",
]

RUN_FORMAT = 1
META_FILE = "run.json"
EVENTS_FILE = "events.csv"
KINDS = ("live", "simulated")


class RunError(ValueError):
    """A run that cannot be saved or loaded; the message names the file and the problem."""


def versions() -> dict[str, str]:
    """Versions of cblab, Python and (when installed) fastmcp, pandas and plotly."""
    found = {"python": platform.python_version()}
    for package in ("cblab", "fastmcp", "pandas", "plotly"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if "cblab" not in found:
        from cblab import __version__

        found["cblab"] = __version__
    return dict(sorted(found.items()))


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class RunMeta:
    """What `run.json` holds. Unknown keys of a loaded file land in `extra`."""

    name: str
    kind: str = "simulated"
    config: dict[str, Any] = field(default_factory=dict)
    scenario: dict[str, Any] | None = None
    seed: int | None = None
    variants: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    duration_s: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = RUN_FORMAT

    @property
    def scenario_name(self) -> str | None:
        return None if self.scenario is None else self.scenario.get("name")

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": self.format,
            "name": self.name,
            "kind": self.kind,
            "config": self.config,
            "scenario": self.scenario,
            "seed": self.seed,
            "variants": list(self.variants),
            "versions": self.versions,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "notes": self.notes,
        }
        if self.extra:
            data["extra"] = self.extra
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = META_FILE) -> RunMeta:
        """Validate a run.json object (or what a producer passes to `save_run`)."""
        if isinstance(data, RunMeta):
            return data
        if not isinstance(data, Mapping):
            raise RunError(f"{where}: must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        known = {f.name for f in fields(cls)} | {"variant"}
        extra = dict(data.pop("extra", None) or {})
        extra.update({k: data.pop(k) for k in list(data) if k not in known})
        fmt = data.get("format", RUN_FORMAT)
        if fmt != RUN_FORMAT:
            raise RunError(
                f"{where}: unsupported format {fmt!r} (this cblab reads format {RUN_FORMAT})"
            )
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RunError(f"{where}: 'name' must be a non-empty string, got {name!r}")
        kind = data.get("kind", "simulated")
        if kind not in KINDS:
            raise RunError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        config = data.get("config") or {}
        if not isinstance(config, Mapping):
            raise RunError(f"{where}: 'config' must be an object (breaker name -> config)")
        scenario = _scenario(data.get("scenario"), where)
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise RunError(f"{where}: 'seed' must be an integer or null, got {seed!r}")
        variants = data.get("variants", data.get("variant"))
        if variants is None:
            variants = []
        elif isinstance(variants, str):
            variants = [variants]
        if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
            raise RunError(f"{where}: 'variants' must be a list of strings, got {variants!r}")
        found_versions = data.get("versions") or {}
        if not isinstance(found_versions, Mapping):
            raise RunError(f"{where}: 'versions' must be an object")
        started_at = data.get("started_at") or ""
        if not isinstance(started_at, str):
            raise RunError(f"{where}: 'started_at' must be an ISO 8601 string")
        if started_at:
            try:
                dt.datetime.fromisoformat(started_at)
            except ValueError:
                raise RunError(
                    f"{where}: 'started_at' is not an ISO 8601 time: {started_at!r}"
                ) from None
        duration = data.get("duration_s")
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not math.isfinite(duration)
            or duration < 0
        ):
            raise RunError(f"{where}: 'duration_s' must be a number >= 0, got {duration!r}")
        notes = data.get("notes") or ""
        if not isinstance(notes, str):
            raise RunError(f"{where}: 'notes' must be a string")
        return cls(
            name=name,
            kind=kind,
            config=dict(config),
            scenario=scenario,
            seed=seed,
            variants=list(variants),
            versions={str(k): str(v) for k, v in found_versions.items()},
            started_at=started_at,
            duration_s=None if duration is None else float(duration),
            notes=notes,
            extra=extra,
        )


def _scenario(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"name": value, "spec": None}
    if not isinstance(value, Mapping):
        raise RunError(f"{where}: 'scenario' must be an object, a name or null, got {value!r}")
    value = dict(value)
    if not isinstance(value.get("name"), str):
        raise RunError(f"{where}: 'scenario.name' must be a string")
    if "spec" not in value:  # a bare scenario dict: {"name": ..., "phases": [...]}
        spec = value if len(value) > 1 else None
        value = {"name": value["name"], "spec": spec}
    return value


@dataclass
class Run:
    """A recorded run: its metadata and its events (columns = EVENT_COLUMNS)."""

    meta: RunMeta
    events: pd.DataFrame
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def variants(self) -> list[str]:
        return list(self.meta.variants) or list(
            dict.fromkeys(self.events["variant"].dropna().astype(str))
        )


# --- validation ----------------------------------------------------------------------


def _refuse_unknown_columns(columns: Iterable[Any], where: str) -> None:
    unknown = [str(c) for c in columns if c not in EVENT_COLUMNS]
    if unknown:
        raise RunError(
            f"{where}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"expected the columns of cblab.schema.EVENT_COLUMNS: {', '.join(EVENT_COLUMNS)}"
        )


def validate_events(
    events: pd.DataFrame | Iterable[Mapping[str, Any]], where: str = EVENTS_FILE
) -> pd.DataFrame:
    """Check event rows against the schema; return them as a typed frame in column order.

    The rows are checked by `cblab.analysis.events_frame` (the one validator of the
    schema: its message, after `where`, names the row and the column) and come out
    with `cblab.schema.EVENT_DTYPES`. A run adds two rules of its own: no columns
    beyond `EVENT_COLUMNS`, and at least one row. Optional columns a frame leaves
    out become empty. Everything refused raises `RunError`.
    """
    if isinstance(events, pd.DataFrame):
        _refuse_unknown_columns(events.columns, where)
    try:
        frame = events_frame(events)
    except AnalysisError as exc:
        raise RunError(f"{where}: {exc}") from None
    _refuse_unknown_columns(frame.columns, where)  # rows may bring their own keys
    if frame.empty:
        raise RunError(f"{where}: the run has no events (empty run)")
    return frame


# --- reading -------------------------------------------------------------------------


def _read_meta(path: Path) -> RunMeta:
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise RunError(f"{path}: {META_FILE} is missing (not a recorded run?)")
    try:
        data = read_json_file(meta_path)  # bounded: size, nesting (no RecursionError)
    except json.JSONDecodeError as exc:
        raise RunError(
            f"{meta_path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise RunError(f"{meta_path}: {exc}") from None
    except OSError as exc:
        raise RunError(f"{meta_path}: cannot read: {exc.strerror or exc}") from None
    return RunMeta.from_dict(data, where=str(meta_path))


def _read_events(path: Path) -> pd.DataFrame:
    events_path = path / EVENTS_FILE
    if not events_path.is_file():
        raise RunError(f"{path}: {EVENTS_FILE} is missing")
    try:
        text = events_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RunError(f"{events_path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise RunError(f"{events_path}: cannot read: {exc.strerror or exc}") from None
    if not text.strip():
        raise RunError(f"{events_path}: the file is empty (no header, no events)")
    header = next(csv.reader(io.StringIO(text)), [])
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise RunError(f"{events_path}: not a valid CSV file: {str(exc).strip()}") from None
    if list(frame.columns) != header:  # pandas renames duplicates ("t.1")
        raise RunError(f"{events_path}: duplicate or malformed column names: {header}")
    _refuse_unknown_columns(frame.columns, str(events_path))
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise RunError(
            f"{events_path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"a run has the columns of cblab.schema.EVENT_COLUMNS: {', '.join(EVENT_COLUMNS)}"
        )
    return validate_events(frame, str(events_path))


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read and validate a recorded run directory; raises `RunError` on any problem."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunError(f"{path}: not a directory (a run is a directory with {META_FILE})")
    meta = _read_meta(path)
    events = _read_events(path)
    if not meta.variants:
        meta.variants = list(dict.fromkeys(events["variant"].dropna()))
    return Run(meta=meta, events=events, path=path)


def shipped_runs() -> list[Path]:
    """The run directories shipped with cblab (`data/runs/`, or `$CBLAB_DATA_DIR/runs`),
    sorted by name: the live runs recorded on the real stack that the reports
    notebook and the README use."""
    root = data_dir() / "runs"
    return sorted(path for path in root.iterdir() if (path / META_FILE).is_file())


# --- writing -------------------------------------------------------------------------


def _fill_meta(meta: RunMeta, events: pd.DataFrame) -> RunMeta:
    if not meta.variants:
        meta.variants = list(dict.fromkeys(events["variant"].dropna()))
    if not meta.versions:
        meta.versions = versions()
    if not meta.started_at:
        meta.started_at = _utc_now()
    if meta.duration_s is None:
        t = events["t"]
        ends = t + events["latency"].fillna(0.0).where(events["kind"] == "call", 0.0)
        meta.duration_s = round(float(ends.max()), 6)
    return meta


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (dt.timedelta,)):
        return value.total_seconds()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in {META_FILE}: {value!r}")


def save_run(
    path: str | os.PathLike[str],
    events: pd.DataFrame | Iterable[Mapping[str, Any]],
    meta: RunMeta | Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write a run directory atomically; return its path.

    `events`: a frame or row dicts (`cblab.schema.event_row`), validated first.
    `meta`: a `RunMeta` or a dict in the run.json shape; `format`, `variants`
    (from the events), `versions`, `started_at` (now) and `duration_s` (from the
    events) are filled in when missing. Everything is written into a temporary
    directory next to `path` and renamed into place: an existing run at `path` is
    replaced only with `overwrite=True`, and only once the new one is complete.
    """
    path = Path(path)
    meta = RunMeta.from_dict(
        meta.to_dict() if isinstance(meta, RunMeta) else meta, where="run metadata"
    )
    frame = validate_events(events, where="events")
    meta = _fill_meta(meta, frame)
    try:
        meta_text = json.dumps(meta.to_dict(), indent=2, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RunError(f"run metadata cannot be stored as JSON: {exc}") from None
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
        if not path.is_dir() or not ((path / META_FILE).is_file() or not any(path.iterdir())):
            raise RunError(f"{path}: refusing to replace something that is not a recorded run")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _write_text(tmp / EVENTS_FILE, frame.to_csv(index=False, lineterminator="\n"))
        _write_text(tmp / META_FILE, meta_text + "\n")
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def replace_dir(tmp: Path, path: Path) -> None:
    """Rename the complete directory `tmp` to `path`, replacing what was there.

    `tmp` must be on the same file system (a sibling). The old directory is moved
    aside first and put back if the second rename fails; then it is deleted.
    """
    if not path.exists():
        os.replace(tmp, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    old.rmdir()
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)  # put the previous run back
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)


#: the largest rows file `read_event_rows` reads
MAX_ROWS_FILE_BYTES = 512 * 1024 * 1024


def read_event_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Event rows and whatever metadata the input has: a run directory (`load_run`),
    or a .json (a list of rows or ``{"events": [...]}``, such as the proxy's /events)
    or .csv file of rows. ValueError naming the file when it is none of these."""
    if path.is_dir():
        run = load_run(path)
        return run.events.to_dict("records"), run.meta.to_dict()
    if not path.is_file():
        raise ValueError(f"{path}: no such run directory or file")
    if path.stat().st_size > MAX_ROWS_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_ROWS_FILE_BYTES // 2**20} MiB")
    if path.suffix == ".csv":
        return pd.read_csv(path).to_dict("records"), {}
    from cblab.strict_json import read_json_file

    try:
        data = read_json_file(path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return json_event_rows(data, path), {}


def json_event_rows(data: Any, where: Path | str) -> list[dict[str, Any]]:
    """The rows of parsed JSON: a list of rows or ``{"events": [...]}`` (the proxy's
    /events); ValueError naming `where` otherwise."""
    rows = data.get("events") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{where}: expected a list of event rows or {{\"events\": [...]}}")
    return rows
