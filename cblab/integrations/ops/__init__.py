"""Files for operators, shipped with the package: Prometheus rules, a Grafana dashboard.

    from cblab.integrations.ops import RULES, DASHBOARD
    print(RULES)       # .../cblab/integrations/ops/cblab-rules.yml: add to rule_files
    print(DASHBOARD)   # .../cblab/integrations/ops/cblab-dashboard.json: Grafana import

Both read the demo server's ``/metrics`` (`cblab.server.metrics`). ``python -m
cblab.integrations.ops`` prints the two paths.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["DASHBOARD", "RULES"]


def _path(name: str) -> Path:
    # The package is installed as plain files (wheel or checkout): the path is stable.
    with as_file(files(__name__) / name) as path:
        return Path(path)


#: Prometheus recording and alerting rules (``promtool check rules`` clean).
RULES = _path("cblab-rules.yml")
#: Grafana dashboard (JSON model; the Prometheus datasource is the ``datasource`` variable).
DASHBOARD = _path("cblab-dashboard.json")
