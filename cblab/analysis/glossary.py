"""What every figure means, in words: the one glossary the README and every report
show (a test checks the README holds each entry word for word). The code behind
each entry is `cblab.analysis.kpis` (and `waits` for refusal waits)."""

from __future__ import annotations

__all__ = ["GLOSSARY", "glossary_markdown"]

#: (term, definition), in reading order. Terms name the `KPI_COLUMNS` they define.
GLOSSARY: tuple[tuple[str, str], ...] = (
    ("requested", "calls the callers made (the caller's view: the load generator's rows "
     "in a live run)."),
    ("availability", "successful / requested. Successful: the call returned a result "
     "(outcome success or slow, or late but answered)."),
    ("share_failed_fast (rejected)", "rejected / requested: calls the breaker refused "
     "at once, without calling the backend."),
    ("failed", "requested - successful - rejected: errors, timeouts, resets, dropped."),
    ("admitted", "calls sent on to the backend (not rejected, not dropped)."),
    ("wasted", "admitted calls that hit a failing backend: sent during a fault episode, "
     "or failed at any time (background errors included)."),
    ("latency p50 / p95 / p99", "percentiles of what callers waited, in seconds "
     "(latency_p50_s; reports show milliseconds, latency_p50_ms), from when a call was "
     "due; a refusal counts with its wait."),
    ("refusal wait", "what a caller waited for a refusal, against what the breaker took to "
     "refuse: the difference is queueing outside the breaker."),
    ("throughput / goodput", "requested / successful calls per second of the run."),
    ("trips", "moves from CLOSED to OPEN."),
    ("probe_failures (failed probes)", "moves from HALF_OPEN back to OPEN: a trial call "
     "failed. Trips + failed probes = every move to OPEN."),
    ("flaps", "trips within 10 s of the breaker's previous move to CLOSED."),
    ("false_trips", "trips while the service was healthy: outside every fault episode and "
     "the 10 s after it (04's tuning heatmaps)."),
    ("time open / half-open / closed", "seconds the breaker spent in each state."),
    ("fault phase", "a scenario phase in which the service is down or hangs, or behaves "
     "differently from its baseline (its least failing phase). Background errors that "
     "every healthy phase has are not a fault. A phase that says whether it is a fault "
     "(\"fault\": true|false; fitted scenarios do) is taken at its word."),
    ("fault episode", "consecutive fault phases: one outage."),
    ("detection_s", "episode start -> the breaker's first move to OPEN in it (0 if already "
     "open; n/a if it never opened during the episode). A run's figure is the mean over "
     "detected episodes."),
    ("recovery_s", "episode end -> the breaker is CLOSED again (0 if it already was; n/a "
     "when it never left CLOSED, did not close before the run ended, or the fault lasts "
     "to the end). A run's figure is the mean over recovered episodes."),
)


def glossary_markdown() -> str:
    """The glossary as a Markdown list (the README's "Key figures")."""
    return "\n".join(f"- **{term}**: {text}" for term, text in GLOSSARY)
