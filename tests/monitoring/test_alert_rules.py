"""The Prometheus alert rules: promtool checks and unit-tests them, and they name only metrics aceorch exports."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from monitoring_support import METRIC, exported_samples, promtool

from aceorch.service import provisioning
from aceorch.service.metrics import BLOCKED_CODES

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout


def test_promtool_unit_tests_pass() -> None:
    out = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_rule_has_for_severity_and_advice_and_is_tested_firing_and_quiet() -> None:
    tested: dict[str, set[bool]] = {}
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            tested.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    names = [rule["alert"] for rule in rules()]
    assert "VpnDisconnected" in names and len(names) == len(set(names))
    for rule in rules():
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, rule["alert"]
        assert tested.get(rule["alert"]) == {True, False}, f"{rule['alert']}: needs a firing and a quiet case"


def test_rules_name_only_exported_metrics() -> None:
    exported = exported_samples()
    used = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    assert used and used <= exported, sorted(used - exported)


def test_refusal_codes_exported_from_the_start_are_the_services_codes() -> None:
    assert BLOCKED_CODES == provisioning.BLOCKED_CODES
    assert "orch_provision_blocked_total" in exported_samples()
