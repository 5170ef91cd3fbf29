"""The Grafana board: provisioning-ready, every panel on the data-source variable, every query valid PromQL.

The docker test runs every query against a real Prometheus; this one parses them offline with promtool (as
recording rules), so a broken query fails ``make test`` without Docker too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from monitoring_support import METRIC, exported_samples, promtool
from prometheus_proc import DASHBOARD, grafana_expr, panel_queries

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "aceorch.yml"


def test_board_is_provisioning_ready_and_uses_the_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "aceorch" and "id" not in board
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]
    titles = {p["title"] for p in board["panels"]}
    assert {"Engines by health", "VPN", "Circuit breakers", "Streams and viewers"} <= titles
    kinds = {p["title"]: p["type"] for p in board["panels"]}
    assert kinds["VPN"] == kinds["Circuit breakers"] == "state-timeline"
    provider = yaml.safe_load(PROVIDER.read_text())
    assert provider["apiVersion"] == 1 and provider["providers"][0]["type"] == "file"


def test_every_panel_query_parses_and_names_only_exported_metrics(tmp_path: Path) -> None:
    queries = panel_queries()
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel:query_{i}", "expr": grafana_expr(expr)} for i, (_, expr) in enumerate(queries)]}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    used = {name for _, expr in queries for name in METRIC.findall(expr)}
    assert used <= exported_samples(), sorted(used - exported_samples())
    slow = [expr for title, expr in queries if title.startswith("Provisioning duration")]
    assert any("histogram_quantile(0.5," in e for e in slow) and any("histogram_quantile(0.95," in e for e in slow)
    assert any("orch_provision_slow_threshold_seconds" in e for e in slow)
