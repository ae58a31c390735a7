"""How a tool call's *result* counts against a breaker (exceptions: `classify`'s table).

=============================================  ===========  ====================
the tool call returned                          outcome      error_type
=============================================  ===========  ====================
a result                                        success      -
an ``isError`` result (a business error)        excluded     ``tool_error``
... of a tool in `count_error_results`          failure      ``error_result``
an ``input_required`` leg (SEP-2322: the tool   excluded     ``input_required``
asks the client for input; the client retries
the call with the answers, counted then)
something else: an extension answered for the   excluded     ``task_submitted``
tool (a task created, its outcome comes later)
=============================================  ===========  ====================
"""

from __future__ import annotations

from typing import Any

from cblab import Outcome

from .classify import Verdict

__all__ = ["result_verdict"]

SUCCESS = Verdict(Outcome.SUCCESS)
TOOL_ERROR = Verdict(Outcome.EXCLUDED, "tool_error")
ERROR_RESULT = Verdict(Outcome.FAILURE, "error_result")
INPUT_REQUIRED = Verdict(Outcome.EXCLUDED, "input_required")
TASK_SUBMITTED = Verdict(Outcome.EXCLUDED, "task_submitted")

try:
    from fastmcp.tools.base import InputRequiredToolResult as _InputRequired
except ImportError:  # pragma: no cover - fastmcp before SEP-2322
    _InputRequired = None  # type: ignore[assignment,misc]


def result_verdict(result: Any, count_errors: bool = False) -> Verdict:
    """The verdict on what `call_next` returned (see the module table)."""
    if _InputRequired is not None and isinstance(result, _InputRequired):
        return INPUT_REQUIRED
    is_error = getattr(result, "is_error", None)
    if is_error is None:
        return TASK_SUBMITTED
    if is_error:
        return ERROR_RESULT if count_errors else TOOL_ERROR
    return SUCCESS
