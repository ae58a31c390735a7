"""The live lab as processes: `Stack` starts the backend and one demo server per
variant on loopback, and hands out small clients to drive them.

    from cblab.stack import Stack

    with Stack(("protected", "unprotected")) as stack:
        stack.backend.set_faults("users", mode="down")
        stack.server("protected").events(after=0)
"""

from ._control import BackendControl, ControlError, ServerControl
from ._stack import Stack, StackError

__all__ = ["BackendControl", "ControlError", "ServerControl", "Stack", "StackError"]
