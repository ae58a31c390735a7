"""08's runs call someone's own MCP server through cblab's fault proxy: the report
names it as the target, never as cblab's demo backend or "the users service"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from cblab.lab.record import _target_text
from cblab.proxy.upstream import Upstream
from cblab.report import build_report
from cblab.runs import load_run, save_run

RUNS = Path(__file__).resolve().parents[2] / "data" / "runs"


def test_a_proxy_run_reads_target(tmp_path):
    shipped = load_run(RUNS / "outage-and-recovery-protected")
    meta = shipped.meta.to_dict()
    meta["extra"] = {**meta["extra"], "target": "http://127.0.0.1:8000/mcp"}
    run = load_run(save_run(tmp_path / "mine", shipped.events, meta))
    page = build_report([run], plotlyjs="cdn")
    assert "Load reaching the target" in page
    assert "reached the target (solid)" in page
    assert "protected \\u00b7 target" in page and "protected \\u00b7 backend" not in page
    demo = build_report([shipped], plotlyjs="cdn")
    assert "Load reaching the backend" in demo and "reached the backend (solid)" in demo


def test_the_notes_name_the_real_target():
    mine = SimpleNamespace(target=SimpleNamespace(upstream=Upstream.url("http://127.0.0.1:8000/mcp")),
                           tool="get_forecast", service="users")
    text = _target_text(mine)
    assert "MCP server at http://127.0.0.1:8000/mcp" in text and "get_forecast" in text
    assert "users" not in text
    demo = SimpleNamespace(target=SimpleNamespace(), tool="github_user", service="users")
    assert _target_text(demo) == ("against the demo backend's users service through the "
                                  "github_user tool")
