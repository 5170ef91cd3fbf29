"""Findings state only what the data shows: each link of a VPN chain, and an image pull only when creating the
container was slow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sessiongen as gen


def diagnose(run_cli: Callable[..., Any], log_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = run_cli("diagnose", "--dir", str(log_dir), "--json")
    return result


def test_a_vpn_flap_alone_states_no_slow_provisioning(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start()
    for i in range(4):
        b.provision(1.0 + i, 1.2)  # quick starts, before and after the outage
    b.health_cycle(10.0, 4, 0)
    b.vpn_down(20.0)
    b.provision(22.0, 0.01, success=False, reason="vpn_disconnected", error="VPN is disconnected")
    b.vpn_up(35.0, outage_s=15.0)
    b.provision(40.0, 1.1)
    b.health_cycle(40.0, 5, 0)
    b.session_end(60.0)
    b.write()
    result = diagnose(run_cli, tmp_path)
    [finding] = result["findings"]
    assert finding["kind"] == "vpn_chain"
    assert "→" not in finding["title"] and "slow provisioning" not in finding["title"]
    assert not any("slowed" in step or "unhealthy" in step for step in finding["chain"])
    assert finding["severity"] == "warning"
    assert any("refused with vpn_disconnected" in step for step in finding["chain"])
    text = run_cli("diagnose", "--dir", str(tmp_path)).stdout
    assert "slow provisioning" not in text


def test_a_vpn_drop_with_unhealthy_engines_but_no_slow_start_names_only_that(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start()
    b.provision(1.0, 1.0)
    b.health_cycle(10.0, 10, 0)
    b.vpn_down(20.0)
    b.health_cycle(25.0, 4, 6)
    b.vpn_up(35.0, outage_s=15.0)
    b.session_end(60.0)
    b.write()
    [finding] = diagnose(run_cli, tmp_path)["findings"]
    assert finding["title"] == "VPN drop → unhealthy engines"


def slow_starts(tmp_path: Path, create_s: float) -> None:
    b = gen.SessionBuilder(tmp_path, gen.START)
    b.session_start()
    for i in range(2):
        name = b.provision(1.0 + 40 * i, 21.0)
        b.emit("performance", 1.0 + 40 * i + create_s, operation="runtime.create", kind="runtime",
               container_name=name, duration_ms=create_s * 1000.0, success=True)
    b.provision(100.0, 1.0, success=False, reason="startup_timeout", error="engine not ready")
    b.session_end(120.0)
    b.write()


def test_slow_image_pull_only_when_creating_the_container_was_slow(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    slow_starts(tmp_path / "quick_create", create_s=0.2)
    [finding] = [f for f in diagnose(run_cli, tmp_path / "quick_create")["findings"] if f["kind"] == "slow_startup"]
    assert finding["title"] == "Slow engine startup"
    assert "pull" not in " ".join(finding["chain"])
    assert any("creating the container took only 0.20s" in step for step in finding["chain"])

    slow_starts(tmp_path / "slow_create", create_s=18.0)
    [finding] = [f for f in diagnose(run_cli, tmp_path / "slow_create")["findings"] if f["kind"] == "slow_startup"]
    assert finding["title"] == "Slow image pull"
    assert any("the image is slow to pull" in step for step in finding["chain"])
