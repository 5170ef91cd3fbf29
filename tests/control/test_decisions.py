"""The pure decision functions: admission's gate order, the VPN's health rule and the advertised address."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aceorch.config import Settings
from aceorch.control.admission import GateState, blocked_error, decide_admission
from aceorch.control.breaker import BreakerState
from aceorch.control.engine_api import advertised_address
from aceorch.control.vpn import ControlView, derive_health
from aceorch.errors import BreakerBlocked, CapacityBlocked, ProvisioningBlocked, RuntimeBlocked, VpnBlocked

OPEN_GATE = GateState(
    runtime_ok=True, vpn_enabled=False, vpn_connected=False, breaker_state=BreakerState.CLOSED,
    breaker_eta_s=None, breaker_allows=True, engines=0, in_flight=0, max_replicas=3, max_active_replicas=10,
    auto_delete=True, grace_period_s=30, startup_timeout_s=25,
)


def test_every_gate_open_admits() -> None:
    assert decide_admission(OPEN_GATE) is None


def test_the_first_closed_gate_answers_in_order_runtime_vpn_breaker_capacity() -> None:
    all_closed = replace(OPEN_GATE, runtime_ok=False, vpn_enabled=True, vpn_connected=False, breaker_allows=False,
                         engines=3)
    assert decide_admission(all_closed) == "runtime_unavailable"
    assert decide_admission(replace(all_closed, runtime_ok=True)) == "vpn_disconnected"
    assert decide_admission(replace(all_closed, runtime_ok=True, vpn_connected=True)) == "circuit_breaker"
    assert decide_admission(replace(all_closed, runtime_ok=True, vpn_connected=True, breaker_allows=True)) == (
        "max_capacity"
    )


def test_a_disconnected_vpn_blocks_only_when_the_vpn_is_enabled() -> None:
    assert decide_admission(replace(OPEN_GATE, vpn_enabled=False, vpn_connected=False)) is None
    assert decide_admission(replace(OPEN_GATE, vpn_enabled=True, vpn_connected=False)) == "vpn_disconnected"


def test_starts_in_flight_count_against_capacity() -> None:
    assert decide_admission(replace(OPEN_GATE, engines=2, in_flight=0)) is None
    assert decide_admission(replace(OPEN_GATE, engines=2, in_flight=1)) == "max_capacity"


def test_with_the_vpn_max_active_replicas_caps_capacity_too() -> None:
    vpn = replace(OPEN_GATE, vpn_enabled=True, vpn_connected=True, max_replicas=10, max_active_replicas=2)
    assert decide_admission(replace(vpn, engines=1)) is None
    assert decide_admission(replace(vpn, engines=2)) == "max_capacity"


@pytest.mark.parametrize(
    ("code", "kind", "eta", "can_retry"),
    [
        ("runtime_unavailable", RuntimeBlocked, 10, True),
        ("vpn_disconnected", VpnBlocked, 60, True),
        ("circuit_breaker", BreakerBlocked, 120, False),
        ("max_capacity", CapacityBlocked, 30, False),
    ],
)
def test_each_closed_gate_raises_its_own_kind(code: str, kind: type[ProvisioningBlocked], eta: int,
                                             can_retry: bool) -> None:
    gate = replace(OPEN_GATE, breaker_state=BreakerState.OPEN, breaker_eta_s=120)
    err = blocked_error(code, gate)
    assert isinstance(err, kind)
    assert (err.error, err.code, err.recovery_eta_seconds, err.can_retry, err.should_wait) == (
        "provisioning_blocked", code, eta, can_retry, True,
    )


def test_a_half_open_breaker_may_be_retried_and_capacity_without_auto_delete_has_no_eta() -> None:
    half = blocked_error("circuit_breaker", replace(OPEN_GATE, breaker_state=BreakerState.HALF_OPEN,
                                                    breaker_eta_s=25))
    assert half.can_retry and half.message == "Circuit breaker is half_open due to repeated failures"
    full = blocked_error("max_capacity", replace(OPEN_GATE, auto_delete=False, vpn_enabled=True,
                                                 max_active_replicas=2))
    assert full.recovery_eta_seconds is None
    assert full.message.startswith("Maximum number of engines (2) already running.")


@pytest.mark.parametrize(
    ("status", "docker_health", "control", "expected"),
    [
        ("exited", "healthy", ControlView("ok", True, "1.2.3.4"), ("unhealthy", "container_state")),
        ("running", "unhealthy", ControlView("ok", True, "1.2.3.4"), ("unhealthy", "docker_health")),
        ("running", "healthy", ControlView("ok", False, "1.2.3.4"), ("unhealthy", "control_server")),
        ("running", "healthy", ControlView("ok", True, None), ("starting", "public_ip")),
        ("running", None, ControlView("ok", True, "1.2.3.4"), ("healthy", "control_server")),
        ("running", "healthy", ControlView("unreachable"), ("healthy", "docker_health")),
        ("running", "healthy", None, ("healthy", "docker_health")),
        ("running", "starting", ControlView("unauthorized"), ("starting", "docker_health")),
        ("running", None, ControlView("unreachable"), ("starting", "control_server")),
    ],
)
def test_derive_health_checks_cheapest_first(status: str, docker_health: str | None, control: ControlView | None,
                                             expected: tuple[str, str]) -> None:
    assert derive_health(status, docker_health, control) == expected


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, db_url=f"sqlite:///{tmp_path}/o.db", **values)


def address(s: Settings, *, in_container: bool, runtime_kind: str = "docker") -> tuple[str, int]:
    return advertised_address(s, container_name="acestream-1", host_port=19000, container_port=40000,
                              in_container=in_container, runtime_kind=runtime_kind)


def test_on_the_host_proxies_get_the_loopback_and_the_published_port(tmp_path: Path) -> None:
    assert address(settings(tmp_path), in_container=False) == ("127.0.0.1", 19000)


def test_in_a_container_proxies_get_the_engine_by_name_and_its_container_port(tmp_path: Path) -> None:
    assert address(settings(tmp_path), in_container=True) == ("acestream-1", 40000)


def test_the_process_runtime_always_advertises_the_loopback(tmp_path: Path) -> None:
    assert address(settings(tmp_path), in_container=True, runtime_kind="process") == ("127.0.0.1", 19000)


def test_in_vpn_mode_inside_a_container_the_gluetun_container_is_the_host(tmp_path: Path) -> None:
    s = settings(tmp_path, vpn_enabled=True, gluetun_container_name="gluetun")
    assert address(s, in_container=True) == ("gluetun", 40000)


def test_an_explicit_advertise_host_wins_with_the_published_port(tmp_path: Path) -> None:
    s = settings(tmp_path, engine_advertise_host="engines.example")
    assert address(s, in_container=True) == ("engines.example", 19000)
    assert address(s, in_container=False) == ("engines.example", 19000)
