"""Record live runs: the one home for turning live rows into a saved run.

Two producers, one way of saving (`_save`: one clock, phase labels, rounding,
`cblab.runs.save_run`):

- ``cblab record``: play a scenario on a fresh stack and save each variant::

      cblab record --scenario outage-and-recovery --time-scale 0.2 -o data/runs

- the live lab's *Export report* (`export_session`): save what a `LabSession`
  recorded and write its HTML report.

``cblab record``

starts the backend and one demo server per variant (`cblab.stack.Stack`),
plays the scenario on the backend (every phase lasting `time_scale` times its
duration), drives each server with the open-loop load generator
(`cblab.load.LoadGenerator`) at each phase's rate, then saves one recorded run
per variant: `<out>/<scenario>-<variant>/`. Each run holds the load
generator's rows (the caller's view, source "load") and the server's rows
(the breaker's view: calls and state changes, source "server") on one time
axis, t = 0 at the scenario's start (server rows from before it are dropped),
and every row, the server's too, labelled with the phase in force at its `t`
(`cblab.analysis.phase_labels`). run.json holds the scenario and the time
scale, so `cblab.analysis.played_scenario(run)` gives the phases as played and
`cblab.analysis.kpis(run.events, played_scenario(run))` per-phase figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cblab.demo import LAB_ROUTE, ROUTES
from cblab.runs import Run, RunError, RunMeta, load_run, save_run, versions

if TYPE_CHECKING:
    from .session import LabSession

__all__ = ["export_session", "main", "record_live_run"]

#: The demo tool driven by default, and the breaker/backend service behind it.
DEFAULT_TOOL = LAB_ROUTE.tool
_TOOL_BREAKER = {route.tool: (route.breaker, route.service) for route in ROUTES}


def _breaker_config(time_scale: float, override: Mapping[str, Any] | None) -> dict[str, Any]:
    """The breaker settings for a recording: the demo's threshold, an open timeout
    scaled like the scenario (10 s at full speed), so a short run still shows the
    probe and the recovery."""
    config: dict[str, Any] = {
        "failure_threshold": 3,
        "timeout": round(max(10.0 * time_scale, 0.5), 3),
    }
    config.update(override or {})
    return config


async def _server_clock(control: Any) -> tuple[float, float]:
    """A (local loop time, server `t`) pair taken at the same instant: the best of a
    few round trips, with the local time at the round trip's midpoint."""
    loop = asyncio.get_running_loop()
    best: tuple[float, float, float] | None = None  # (rtt, local, server)
    for _ in range(5):
        sent = loop.time()
        answer = await control.aevents(after=2**62, limit=1)
        back = loop.time()
        if best is None or back - sent < best[0]:
            best = (back - sent, (sent + back) / 2, float(answer["now"]))
    assert best is not None
    return best[1], best[2]


async def _server_rows(control: Any) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    after, missed = 0, 0
    while True:
        page = await control.aevents(after=after, limit=5000)
        missed += int(page.get("missed") or 0)
        rows.extend(page["events"])
        if not page["events"] or page["last_seq"] == after:
            return rows, missed
        after = page["last_seq"]


async def _record(
    stack: Any,
    scenario: Any,
    *,
    time_scale: float,
    rate_scale: float,
    tool: str,
    seed: int,
    deadline: float,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int], float]:
    from cblab.load import LoadGenerator

    scaled = scenario.scaled(time_scale)
    loop = asyncio.get_running_loop()
    rates = [
        (p.load.rate_per_s if p.load is not None else 10.0) * rate_scale for p in scaled.phases
    ]
    arrivals = scaled.phases[0].load.arrivals if scaled.phases[0].load is not None else "poisson"
    # Connect first (the first MCP connection costs seconds), then start the scenario
    # and the load together.
    from fastmcp import Client

    clients = {v: Client(stack.mcp_url(v)) for v in stack.variants}
    async with contextlib.AsyncExitStack() as exits:
        for client in clients.values():
            await exits.enter_async_context(client)
        generators = {
            v: LoadGenerator(
                clients[v],
                tool,
                rate=rates[0],
                arrivals=arrivals,
                seed=seed + i,
                deadline=deadline,
                variant=v,
                keep_all=True,
                window=1_000_000,
            )
            for i, v in enumerate(stack.variants)
        }
        for v in stack.variants:
            await stack.server(v).areset()
        clocks = {v: await _server_clock(stack.server(v)) for v in stack.variants}
        before = loop.time()
        await stack.backend.aplay_scenario(scenario.to_dict(), time_scale)
        started = (before + loop.time()) / 2  # the backend started the scenario about now
        total = scaled.total_duration_s

        async def pace() -> None:
            for start, phase_rate in zip(scaled.phase_starts[1:], rates[1:], strict=True):
                await asyncio.sleep(max(started + start - loop.time(), 0.0))
                for gen in generators.values():
                    gen.rate = phase_rate

        remaining = max(total - (loop.time() - started), 0.0)
        await asyncio.gather(pace(), *(gen.run(duration=remaining) for gen in generators.values()))
    await stack.backend.astop_scenario()
    rows: dict[str, list[dict[str, Any]]] = {}
    missed: dict[str, int] = {}
    for v, gen in generators.items():
        # One time axis: seconds since the scenario started. The generator counts from
        # its own start (just after connecting), the server from the server's start.
        load_shift = (gen.start_monotonic or started) - started
        local, server_now = clocks[v]
        server_shift = local - server_now - started
        load = [dict(row, t=row["t"] + load_shift) for row in gen.records()]
        server_rows, lost = await _server_rows(stack.server(v))
        server = [dict(row, t=float(row["t"]) + server_shift) for row in server_rows]
        rows[v] = load + [row for row in server if row["t"] >= 0]  # drop resets, health checks
        if lost:
            missed[v] = lost
    return rows, missed, total


def _finish_rows(rows: list[dict[str, Any]], scaled: Any | None, digits: int = 6) -> None:
    """In place: every row's `phase` (the scenario phase in force at its `t`, the
    server's rows too), times rounded, rows in time order."""
    if scaled is not None:
        from cblab.analysis import phase_labels

        labels = phase_labels((row.get("t") for row in rows), scaled)
        for row, phase in zip(rows, labels, strict=True):
            row["phase"] = phase
    for row in rows:
        for key in ("t", "latency"):
            value = row.get(key)
            if isinstance(value, float) and math.isfinite(value):
                row[key] = round(value, digits)
    rows.sort(key=lambda r: (r["t"], r["source"] or "", r["seq"] or 0))


def _save(path: Path, rows: list[dict[str, Any]], meta: RunMeta | dict[str, Any], *,
          overwrite: bool = False) -> Run:
    """Save and load back, so the caller holds exactly what was written."""
    return load_run(save_run(path, rows, meta, overwrite=overwrite))


def record_live_run(
    scenario: str | Path = "outage-and-recovery",
    *,
    variants: Sequence[str] = ("protected", "unprotected"),
    time_scale: float = 0.2,
    rate_scale: float = 1.0,
    tool: str = DEFAULT_TOOL,
    seed: int = 1,
    deadline: float = 5.0,
    breaker: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    notes: str = "",
) -> list[Run]:
    """Play `scenario` live on a fresh stack and record one run per variant.

    `time_scale` shortens every phase (0.2: a 30 s phase lasts 6 s); the breaker's
    open timeout is scaled with it unless `breaker` (config fields for the breaker
    behind `tool`) says otherwise. Load follows each phase's `load.rate_per_s`
    times `rate_scale`; every call has a `deadline` (s). With `out_dir`, each run is
    saved as `<out_dir>/<scenario>-<variant>/` (`overwrite` to replace) and loaded
    back, so the returned runs are exactly what was written.
    """
    from cblab.sim import resolve_scenario
    from cblab.stack import Stack

    if tool not in _TOOL_BREAKER:
        raise ValueError(f"tool must be one of {', '.join(_TOOL_BREAKER)}, got {tool!r}")
    spec = resolve_scenario(scenario)
    scaled = spec.scaled(time_scale)
    breaker_name, service = _TOOL_BREAKER[tool]
    config = _breaker_config(time_scale, breaker)
    started_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    wall = time.monotonic()
    configs = {breaker_name: config}
    with Stack(tuple(variants), seed=seed, github=configs.get("github"),
               database=configs.get("database")) as stack:
        statuses = {v: stack.server(v).status() for v in stack.variants}
        rows, missed, total = asyncio.run(
            _record(
                stack,
                spec,
                time_scale=time_scale,
                rate_scale=rate_scale,
                tool=tool,
                seed=seed,
                deadline=deadline,
            )
        )
    elapsed = time.monotonic() - wall
    runs: list[Run] = []
    for v in variants:
        events = rows[v]
        _finish_rows(events, scaled)
        protected = not v.startswith("unprotected")
        status = statuses[v].get(breaker_name, {}) if protected else {}
        run_config = {breaker_name: status.get("config", config)} if protected else {}
        text = (
            f"Recorded live by `cblab record`: the backend and the {v} demo server on "
            f"loopback; scenario {spec.name!r} played at time scale {time_scale:g} "
            f"({total:g} s); open-loop load on {tool} ({service} service, breaker "
            f"{breaker_name!r}{'' if protected else ', not used'}), "
            f"{'Poisson' if (spec.phases[0].load is None or spec.phases[0].load.arrivals == 'poisson') else 'constant'}"
            f" arrivals at each phase's rate x {rate_scale:g}, {deadline:g} s deadline per call. "
            "Rows with source 'load' are the caller's view (latency from the intended start); "
            "rows with source 'server' are the breaker's view."
        )
        if missed.get(v):
            text += f" The server's event log overflowed: {missed[v]} rows were lost."
        meta = RunMeta(
            name=f"{spec.name}-{v}",
            kind="live",
            config=run_config,
            scenario={"name": spec.name, "spec": spec.to_dict()},
            seed=seed,
            variants=[v],
            versions=versions(),
            started_at=started_at,
            duration_s=round(total, 3),
            notes=(notes + "\n\n" + text).strip() if notes else text,
            extra={
                "time_scale": time_scale,
                "rate_scale": rate_scale,
                "tool": tool,
                "deadline_s": deadline,
                "wall_clock_s": round(elapsed, 1),
                "recorder": "cblab record",
            },
        )
        if out_dir is not None:
            runs.append(_save(Path(out_dir) / f"{spec.name}-{v}", events, meta,
                              overwrite=overwrite))
        else:
            from cblab.runs import validate_events

            runs.append(Run(meta=meta, events=validate_events(events)))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cblab record",
        description="Play a scenario on the live stack and record one run per variant.",
    )
    parser.add_argument("--scenario", default="outage-and-recovery", help="name or JSON file")
    parser.add_argument("--variants", default="protected,unprotected", help="comma-separated")
    parser.add_argument("--time-scale", type=float, default=0.2, help="phase duration factor")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="load rate factor")
    parser.add_argument("--tool", default=DEFAULT_TOOL, choices=sorted(_TOOL_BREAKER),
                        help="the demo tool the load calls")
    parser.add_argument("--seed", type=int, default=1, help="seed of the load and the faults")
    parser.add_argument("--deadline", type=float, default=5.0, help="per-call deadline, s")
    parser.add_argument("--breaker", help="breaker config fields as JSON, e.g. '{\"timeout\": 2}'")
    parser.add_argument("--notes", default="", help="free text stored in run.json")
    parser.add_argument("-o", "--output", default="data/runs", help="directory for the runs")
    parser.add_argument("--overwrite", action="store_true", help="replace existing runs")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        breaker = json.loads(args.breaker) if args.breaker else None
        if breaker is not None and not isinstance(breaker, dict):
            raise ValueError("--breaker must be a JSON object")
    except ValueError as exc:
        print(f"record: error: {exc}", file=sys.stderr)
        return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    try:
        runs = record_live_run(
            args.scenario,
            variants=variants,
            time_scale=args.time_scale,
            rate_scale=args.rate_scale,
            tool=args.tool,
            seed=args.seed,
            deadline=args.deadline,
            breaker=breaker,
            out_dir=args.output,
            overwrite=args.overwrite,
            notes=args.notes,
        )
    except (RunError, ValueError, FileExistsError) as exc:
        print(f"record: error: {exc}", file=sys.stderr)
        return 2
    for run in runs:
        calls = int((run.events["kind"] == "call").sum())
        print(f"wrote {run.path} ({len(run.events)} rows, {calls} calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --- the live lab's export ------------------------------------------------------------------


def export_session(session: LabSession, directory: str | Path | None = None) -> Path:
    """Save `session`'s recording as a run under `directory/runs/` and write
    `directory/<name>.html`; return the report's path. `directory` defaults to
    ``$CBLAB_REPORT_DIR``, else ``reports/`` in the working directory.

    The recording holds the whole session (see `cblab.lab.recording`) on the lab's
    clock, t = 0 when the load (and its scenario) started; rows from before that
    (a server's warm-up) are not part of the run. run.json's `started_at` is that
    instant and `duration_s` the session's length so far; when the recording hit its
    cap, the run ends where its rows end and the notes say what it lacks."""
    from cblab.report import write_report

    frame = session.events(None)
    if frame.empty:
        raise RuntimeError("nothing recorded yet: let the lab run for a few seconds first")
    frame = frame[frame["t"] >= 0]
    stopped_at = session.feed.recording.stopped_at
    if stopped_at is not None:  # a capped recording: complete only before stopped_at
        frame = frame[frame["t"] < stopped_at]
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    _finish_rows(rows, session.scenario)
    for i, row in enumerate(rows, 1):
        row["seq"] = i  # rows come from several sources: renumber
    if directory is None:
        directory = os.environ.get("CBLAB_REPORT_DIR") or "reports"
    directory = Path(directory)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"live-{'-'.join(session.variants)}-{stamp}"
    run = _save(directory / "runs" / name, rows, _session_meta(session, name, len(rows)))
    files = write_report([run], directory / f"{name}.html", title=f"cblab live run {stamp}")
    return Path(files.html)


def _session_span(session: LabSession, kept: int) -> tuple[float | None, str]:
    """The run's duration (s) and what the notes say about how complete it is."""
    with session._lock:
        recording, missed = session.feed.recording, session.feed.missed
        stopped_at, not_kept = recording.stopped_at, recording.not_kept
    ended = session.ended_at if session.ended_at is not None else (
        session.lab_now() if session.started_at is not None else None)
    text = []
    if stopped_at is not None:
        text.append(
            f"The recording reached its cap of {recording.max_rows:,} rows ({not_kept:,} "
            f"rows not kept, the first of them from t = {stopped_at:.1f} s): this run "
            f"ends at {stopped_at:.1f} s, where its rows are complete"
            + (f", the session went on to {ended:.1f} s." if ended is not None else "."))
        duration: float | None = round(stopped_at, 3)
    else:
        duration = None if ended is None else round(ended, 3)
        span = f"0 to {ended:.1f} s" if ended is not None else "its start to its end"
        text.append(f"The recording holds the whole session, t = {span}: {kept:,} rows.")
    if missed:
        text.append(f"The event logs overflowed while the lab ran: {missed:,} rows were lost "
                    "(the figures lack them).")
    if not session.ended:
        text.append("Exported while the session was still running.")
    return duration, " ".join(text)


def _target_text(session: LabSession) -> str:
    """What the session drove, named as the person knows it: the demo backend's
    service, or their own MCP server behind cblab's fault proxy."""
    upstream = getattr(session.target, "upstream", None)
    if upstream is not None and hasattr(upstream, "describe"):
        where = upstream.describe()
        if len(where) > 120:
            where = where[:117] + "..."
        return (f"calling the {session.tool} tool of the MCP server at {where} "
                "(the target), through cblab's fault proxy")
    return f"against the demo backend's {session.service} service through the {session.tool} tool"


def _session_meta(session: LabSession, name: str, kept: int) -> dict[str, Any]:
    applied = [{"t": round(t, 3), "control": c, "value": v} for t, c, v in session.applied]
    protected = any(session.target.protected(v) for v in session.variants)
    duration, completeness = _session_span(session, kept)
    meta: dict[str, Any] = {
        "name": name,
        "kind": "live",
        "config": {session.breaker: session.config_dict()} if protected else {},
        # session.scenario is already scaled to the durations it was played at
        "scenario": None if session.scenario is None
        else {"name": session.scenario.name, "spec": session.scenario.to_dict()},
        "seed": session.params.seed,
        "variants": list(session.variants),
        "versions": versions(),
        "notes": (
            f"Live lab run: {', '.join(session.variants)} {_target_text(session)}. "
            "Control moves are in extra.applied. " + completeness
        ),
        "extra": {
            "applied": applied,
            "rate": session.params.rate,
            "tool": session.tool,
            "service": session.service,
            "recorder": "cblab live lab",
        },
    }
    upstream = getattr(session.target, "upstream", None)
    if upstream is not None and hasattr(upstream, "describe"):
        del meta["extra"]["service"]  # the demo's service is not what was called
        meta["extra"]["target"] = upstream.describe()
    if session.started_wall is not None:
        meta["started_at"] = session.started_wall
    if duration is not None:
        meta["duration_s"] = duration
    return meta
