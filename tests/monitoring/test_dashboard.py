"""The Grafana board: provisioning-ready, every panel on the data-source variable, every query valid PromQL.

The docker test runs every query against a real Prometheus; this one parses them offline with promtool (as
recording rules), so a broken query fails ``make test`` without Docker too.
"""

from __future__ import annotations

import json
import re
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


#: Grafana's built-in panel types (a plugin panel would need installing first).
CORE_PANELS = {"timeseries", "state-timeline", "stat", "gauge", "bargauge", "table", "text", "status-history"}


def test_board_has_what_grafana_file_provisioning_reads() -> None:
    """No Grafana server can be installed here (no Debian package, none on PyPI or npm): this checks the JSON against
    what Grafana's file provisioning and dashboard loader need, so that the board loads without errors."""
    board = json.loads(DASHBOARD.read_text())
    assert isinstance(board["title"], str) and board["title"].strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"])
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36  # no legacy graph migration
    assert board.get("id") is None and "__inputs" not in board  # provisioned boards get their id from Grafana
    assert re.fullmatch(r"now-\d+[smhd]", board["time"]["from"]) and board["time"]["to"] == "now"
    assert re.fullmatch(r"\d+[smh]", board["refresh"])
    variables = board["templating"]["list"]
    names = [v["name"] for v in variables]
    assert len(names) == len(set(names))
    for v in variables:
        assert v["type"] in ("datasource", "query"), v["name"]
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, v["name"]
            assert v["query"]["query"] == v["definition"] and v["definition"].startswith("label_values("), v["name"]
            assert set(re.findall(r"\$(\w+)", v["definition"])) <= set(names[: names.index(v["name"])]), v["name"]
    occupied: set[tuple[int, int]] = set()
    for p in board["panels"]:
        title = p["title"]
        assert isinstance(p["id"], int) and p["type"] in CORE_PANELS and title.strip(), p
        pos = p["gridPos"]
        assert set(pos) == {"x", "y", "w", "h"} and all(isinstance(pos[k], int) for k in pos), title
        assert 0 <= pos["x"] and 1 <= pos["w"] and pos["x"] + pos["w"] <= 24 and pos["y"] >= 0 and pos["h"] >= 1, title
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & occupied, f"{title} overlaps another panel"
        occupied |= cells
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and all(re.fullmatch(r"[A-Z]", r) for r in refs), title
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
            assert set(re.findall(r"\$\{?(\w+)", t["expr"])) <= set(names) | {"__rate_interval", "__interval",
                                                                              "__range"}, title
        legends = {t.get("legendFormat") or "" for t in p["targets"]}
        fixed = {legend for legend in legends if "{{" not in legend}
        for override in p.get("fieldConfig", {}).get("overrides", []):
            # an override that names no series would do nothing (a "{{label}}" legend may name any)
            if override["matcher"]["id"] == "byName" and fixed == legends:
                assert override["matcher"]["options"] in legends, (title, override["matcher"]["options"])
        assert "defaults" in p["fieldConfig"] and "options" in p, title


def test_the_proxy_panels_chart_throughput_viewers_lag_and_delivery_delay() -> None:
    panels = {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    throughput = " ".join(t["expr"] for t in panels["Proxy throughput"]["targets"])
    for metric in ("orch_proxy_bytes_received_total", "orch_proxy_bytes_sent_total",
                   "orch_proxy_delivery_delay_seconds_bucket"):
        assert metric in throughput
    assert "histogram_quantile(0.99," in throughput
    assert panels["Proxy throughput"]["fieldConfig"]["defaults"]["unit"] == "Bps"
    viewers = " ".join(t["expr"] for t in panels["Proxy viewers and lag"]["targets"])
    for metric in ("orch_proxy_viewers{", "orch_proxy_viewers_lagging", "orch_proxy_viewer_lags_total"):
        assert metric in viewers
    assert any("orch_proxy_viewers" in t["expr"] for t in panels["Streams and viewers"]["targets"])
