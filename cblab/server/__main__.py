"""`python -m cblab.server`: same as `cblab serve`.

Run as its own process, it skips the interpreter's teardown once the server has
shut down cleanly (fastmcp's module graph takes seconds to finalize), so a Stack
stops in a fraction of a second.
"""

import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
