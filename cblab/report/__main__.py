"""`python -m cblab.report RUN... -o report.html` (the same as `cblab report`)."""

from .cli import main

raise SystemExit(main())
