"""``aceorch debug diagnose``: one scenario per pattern of the seed, plus a quiet session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sessiongen as gen


def diagnose(run_cli: Callable[..., Any], log_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = run_cli("diagnose", "--dir", str(log_dir), "--json")
    return result


def kinds(result: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in result["findings"]]


def setting_names(finding: dict[str, Any]) -> set[str]:
    return {s["name"] for s in finding["settings"]}


def test_a_quiet_session_has_no_problems(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    gen.healthy(tmp_path)
    result = diagnose(run_cli, tmp_path)
    assert result["findings"] == []
    assert result["verdict"] == "No problems found"
    assert "No problems found" in run_cli("diagnose", "--dir", str(tmp_path)).stdout


def test_vpn_drop_slow_provisioning_unhealthy_engines_chain(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    gen.vpn_incident(tmp_path)
    result = diagnose(run_cli, tmp_path)
    assert kinds(result) == ["vpn_chain"]
    finding = result["findings"][0]
    assert finding["severity"] == "critical"
    chain = finding["chain"]
    # The seed's "Example Output Analysis", found automatically.
    assert chain[0] == "VPN disconnected at 14:45:15 (docker_health)"
    assert chain[1].startswith("provisioning slowed 8 s later: 2 start(s) over the 17.50s threshold")
    assert chain[2] == "40% of engines turned unhealthy at 14:45:32 (4/10)"
    assert chain[3].startswith("VPN recovered at 14:45:45")
    assert finding["first_seen"] == "2025-10-18T14:45:15.100000Z"
    assert any(e["timestamp"] == "2025-10-18T14:45:23.450500Z" for e in finding["evidence"])
    assert {"GLUETUN_HEALTH_CHECK_INTERVAL_S", "VPN_RECOVERY_STABILIZE_S"} <= setting_names(finding)
    text = run_cli("diagnose", "--dir", str(tmp_path)).stdout
    assert "VPN disconnected at 14:45:15" in text and "GLUETUN_HEALTH_CHECK_INTERVAL_S" in text


def test_breaker_storm_names_the_first_failure(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start(CIRCUIT_BREAKER_FAILURE_THRESHOLD=5)
    b.provision(1.0, 3.0)  # a success before the streak
    b.provision(10.0, 0.5, success=False, reason="docker_error", error="Cannot connect to the Docker daemon")
    for i in range(4):
        b.provision(12.0 + i, 0.5, success=False, reason="docker_error", error="500 Server Error")
    b.stress(
        15.6,
        "circuit_breaker_opened",
        "critical",
        "Circuit breaker opened after 5 failures",
        operation_type="general",
        failure_count=5,
        threshold=5,
    )
    for i in range(3):
        b.provision(20.0 + i, 0.01, success=False, reason="circuit_breaker")
    b.stress(320.0, "circuit_breaker_reopened", "critical", "trial failed", operation_type="general", failure_count=6)
    b.write()
    result = diagnose(run_cli, tmp_path)
    assert kinds(result) == ["circuit_breaker"]
    finding = result["findings"][0]
    assert finding["title"] == "Circuit breaker storm"
    assert finding["chain"][0] == (
        "first failure at 14:44:40: Cannot connect to the Docker daemon (reason docker_error)"
    )
    assert "5 consecutive failed start(s)" in finding["chain"]
    assert "circuit breaker 'general' opened at 14:44:45 after 5 failures" in finding["chain"]
    assert "3 provision(s) refused while it was open" in finding["chain"]
    assert setting_names(finding) == {"CIRCUIT_BREAKER_FAILURE_THRESHOLD", "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S"}
    assert "now 5" in finding["settings"][0]["advice"]


def test_capacity_exhaustion(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start()
    for i in range(3):
        b.provision(float(i), 2.0)
    for i in range(4):
        b.provision(10.0 + i, 0.01, success=False, reason="max_capacity", error="Maximum number of engines (3)")
    b.stress(10.01, "capacity_exhausted", "warning", "3/3 engines running", limit=3, running=3)
    b.write()
    result = diagnose(run_cli, tmp_path)
    assert kinds(result) == ["capacity_exhausted"]
    finding = result["findings"][0]
    assert "4 start(s) refused (max_capacity / port_pool_exhausted)" in finding["chain"]
    assert "1 capacity_exhausted event(s): 3 running of a limit of 3" in finding["chain"]
    assert {"MAX_REPLICAS", "AUTO_DELETE"} <= setting_names(finding)


def test_everything_slow_without_errors_is_resource_contention(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start()
    for i in range(8):
        b.provision(i * 5.0, 19.0 + i)  # every start over 17.5 s
    for t in range(0, 60, 5):
        b.vpn_check(float(t), True)
    b.write()
    result = diagnose(run_cli, tmp_path)
    assert kinds(result) == ["resource_contention"]
    finding = result["findings"][0]
    assert finding["chain"][0].startswith("8 of 8 provisions (100%) took longer than 17.50s")
    assert {"MAX_REPLICAS", "host resources"} <= setting_names(finding)


def test_engines_hanging_after_a_good_start(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start()
    names = [b.provision(i * 2.0, 3.0) for i in range(5)]
    for name in names[:2]:
        for k in range(3):
            b.probe_failed(60.0 + k * 20.0, name)
    b.emit("health", 100.0, component="health", operation="status_transition", container_name=names[1],
           **{"from": "healthy", "to": "unhealthy"})
    b.write()
    result = diagnose(run_cli, tmp_path)
    assert kinds(result) == ["engines_hanging"]
    finding = result["findings"][0]
    assert finding["chain"][0] == "2 engine(s) started fine and then failed their health probes"
    assert finding["chain"][1] == "first: acestream-1 ready at 14:44:33 (took 3.00s), probes failing 57 s later"
    assert "HEALTH_FAILURE_THRESHOLD" in setting_names(finding)


def test_slow_startup_and_timeouts(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start()
    b.provision(0.0, 24.0)  # the first start pulls the image
    for i in range(6):
        b.provision(30.0 + i * 3, 3.0)
    b.provision(60.0, 25.0, success=False, reason="startup_timeout", error="engine did not answer within 25 s")
    b.write()
    result = diagnose(run_cli, tmp_path)
    assert kinds(result) == ["slow_startup"]
    finding = result["findings"][0]
    assert finding["chain"][0].startswith("1 provision(s) took longer than 17.50s outside any VPN outage")
    assert "1× startup_timeout" in finding["chain"][1]
    assert {"STARTUP_TIMEOUT_S", "PROVISION_WAIT_FOR"} <= setting_names(finding)


def test_thresholds_come_from_the_session_config(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start(STARTUP_TIMEOUT_S=10, DEBUG_SLOW_PROVISIONING_RATIO=0.5)  # 5 s
    for i in range(4):
        b.provision(i * 10.0, 6.0 if i == 0 else 2.0)
    b.write()
    result = diagnose(run_cli, tmp_path)
    assert result["threshold_ms"] == 5000.0
    assert kinds(result) == ["slow_startup"]
