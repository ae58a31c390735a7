"""`python -m cblab.backend`: same as `cblab backend`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
