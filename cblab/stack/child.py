"""Children that die with their parent.

`Stack` starts its processes in their own session (so a Ctrl-C or a Jupyter
"interrupt kernel" does not reach them) and asks each one to exit when the
process that started it goes away, even by SIGKILL (a kernel restart): a thread
polls the parent pid and, once orphaned, sends itself SIGTERM (a graceful stop),
then exits hard after a grace period.

The server has this built in (`cblab serve --exit-with-parent PID`). The backend
is run through this wrapper::

    python -m cblab.stack.child --parent PID backend [cblab backend options...]

(PR_SET_PDEATHSIG is not used: it fires when the parent *thread* exits, and a
Stack may be started from a worker thread.)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["main", "watch_parent"]


def watch_parent(pid: int, *, interval: float = 0.25, grace: float = 5.0) -> threading.Thread:
    """Exit (SIGTERM to self, then `os._exit` after `grace` s) once `pid` is not our parent."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=watch, name="cblab-parent-watch", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    usage = "usage: python -m cblab.stack.child --parent PID backend [options...]"
    if len(args) < 3 or args[0] != "--parent" or not args[1].isdigit() or args[2] != "backend":
        print(usage, file=sys.stderr)
        return 2
    watch_parent(int(args[1]))
    from cblab.backend.cli import main as backend_main

    return int(backend_main(args[3:]) or 0)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the child is done: skip the interpreter's slow teardown
