"""docs/monitoring.md names every metric aceorch exports and every alert rule, and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from monitoring_support import METRIC, exported_samples

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "monitoring.md"


def test_the_doc_lists_every_metric_and_every_alert_and_no_other() -> None:
    text = DOC.read_text()
    exported = exported_samples()
    # the sample names, with a histogram's _bucket/_count/_sum as its family and the client's _created left out
    families = {re.sub(r"_seconds_(bucket|count|sum)$", "_seconds", n) for n in exported if not n.endswith("_created")}
    named = set(METRIC.findall(text))
    documented_rows = set(re.findall(r"^\| `(orch_[a-z0-9_]+)` \|", text, flags=re.MULTILINE))
    assert documented_rows == families, (sorted(families - documented_rows), sorted(documented_rows - families))
    assert named <= exported | families, sorted(named - exported - families)
    alerts = {r["alert"] for g in yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    assert alerts == set(re.findall(r"^\| `([A-Z][A-Za-z]+)` \|", text, flags=re.MULTILINE))
