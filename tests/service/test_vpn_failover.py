"""Two VPNs wired as the service wires them: placement 1+1, a VPN that drops fails its engines over, the second
opinion from an engine, a forced Gluetun restart and its breaker, a missing Gluetun."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from service_parts import Parts

from aceorch.control import health
from aceorch.control.vpn_pool import ENGINE_VPN_LABEL, pool_round
from aceorch.errors import ProvisioningBlocked
from aceorch.models import HealthStatus
from aceorch.runtime.base import ContainerSpec

PartsFactory = Callable[..., Awaitable[Parts]]
TWO = {"gluetun_container_names": "gluetun-a,gluetun-b", "port_range_host": "19000-19009",
       "max_active_replicas": 10, "vpn_recovery_stabilize_s": 0, "gluetun_api_url": None}


class Signals:
    """What the VPN loop reports to the stress monitor."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def vpn_state(self, *, connected: bool, signal: str | None = None, vpn: str | None = None) -> None:
        self.calls.append(("vpn_state", (vpn, connected, signal)))

    def vpn_engines_restarted(self, count: int, vpn: str | None = None) -> None:
        self.calls.append(("vpn_engines_restarted", (vpn, count)))

    def vpn_failover(self, *, vpn: str, engines: list[str], streams: list[str], to: list[str]) -> None:
        self.calls.append(("vpn_failover", (vpn, engines, to)))


async def two_vpns(parts: PartsFactory, **overrides: Any) -> tuple[Parts, Any, Signals]:
    p = await parts(**{**TWO, **overrides})
    gluetuns = {name: p.runtime.add_container(ContainerSpec(name=name, image="qmcgaw/gluetun"))
                for name in ("gluetun-a", "gluetun-b")}
    for info in gluetuns.values():
        p.runtime.set_health(info.id, "healthy")
    return p, gluetuns, Signals()


async def round_(p: Parts, signals: Signals, restarts: list[tuple[str, bool]] | None = None) -> None:
    await pool_round(settings=p.settings, pool=p.vpn, fleet=p.fleet, signals=signals,
                     record=lambda c, **f: p.records.append((c, f)), on_connected=lambda c: None,
                     on_restart=lambda name, done, why: (restarts if restarts is not None else []).append(
                         (name, done)))


async def test_engines_spread_and_a_dropped_vpn_fails_over(parts: PartsFactory) -> None:
    p, g, signals = await two_vpns(parts)
    await round_(p, signals)
    assert p.vpn.connected and [m.connected for m in p.vpn.monitors] == [True, True]
    engines = [await p.engine() for _ in range(4)]
    assert [e.labels[ENGINE_VPN_LABEL] for e in engines] == ["gluetun-a", "gluetun-b"] * 2
    assert [e.host_http_port for e in engines] == [19000, 19005, 19001, 19006]
    assert sum(1 for e in engines if e.p2p_port is not None) <= 2
    await health.probe_round(settings=p.settings, fleet=p.fleet, replacer=p.provisioning, http=p.http,
                             record=lambda c, **f: None, signals=_HealthSignals(), state=health.ProberState())
    assert all(e.health_status is HealthStatus.HEALTHY for e in engines)

    p.runtime.set_health(g["gluetun-a"].id, "unhealthy")
    await round_(p, signals)
    on_a = [e for e in engines if e.labels[ENGINE_VPN_LABEL] == "gluetun-a"]
    assert all(e.health_status is HealthStatus.UNHEALTHY for e in on_a), "at once, not after probes"
    assert ("vpn_failover", ("gluetun-a", [e.container_name for e in on_a], ["gluetun-b"])) in signals.calls
    assert ("vpn_state", ("gluetun-a", False, "docker_health")) in signals.calls
    assert p.status.orchestrator_status()["provisioning"]["can_provision"]
    assert p.status.orchestrator_status()["vpn"]["connected"]
    assert [e.container_id for e in p.fleet.probe_targets()] == [e.container_id for e in engines if e not in on_a]
    fifth = await p.engine()
    assert fifth.labels[ENGINE_VPN_LABEL] == "gluetun-b", "provisioning goes on through B"
    await health.probe_round(settings=p.settings, fleet=p.fleet, replacer=p.provisioning, http=p.http,
                             record=lambda c, **f: None, signals=_HealthSignals(), state=health.ProberState())
    assert all(e.health_status is HealthStatus.UNHEALTHY for e in on_a), "the prober leaves them so"
    assert all(p.fleet.get(e.container_id) for e in on_a), "and they are not replaced"
    failover = [f for c, f in p.records if c == "vpn" and f.get("operation") == "failover"]
    assert failover and failover[0]["vpn"] == "gluetun-a"
    assert all(f.get("vpn") for c, f in p.records if c == "vpn")

    p.runtime.set_health(g["gluetun-b"].id, "unhealthy")
    await round_(p, signals)
    with pytest.raises(ProvisioningBlocked) as blocked:
        await p.engine()
    assert blocked.value.code == "vpn_disconnected"
    assert not p.status.orchestrator_status()["vpn"]["connected"]

    for name in ("gluetun-a", "gluetun-b"):
        p.runtime.set_health(g[name].id, "healthy")
    restarted_before = sum(1 for call in p.runtime.calls if call[0] == "restart")
    await round_(p, signals)
    assert ("vpn_engines_restarted", ("gluetun-a", 2)) in signals.calls
    assert sum(1 for call in p.runtime.calls if call[0] == "restart") - restarted_before == 2 + 3
    assert all(e.health_status is HealthStatus.HEALTHY for e in on_a)
    assert p.vpn.counts(p.fleet.engines()) == {"gluetun-a": 2, "gluetun-b": 3}


async def test_an_engine_decides_when_the_control_server_is_unreachable(parts: PartsFactory) -> None:
    p, g, signals = await two_vpns(parts)
    p.runtime.set_health(g["gluetun-a"].id, None)
    p.runtime.set_health(g["gluetun-b"].id, None)
    await round_(p, signals)
    assert [m.last.health for m in p.vpn.monitors] == ["starting", "starting"], "no engine, no Docker health"
    p.runtime.set_health(g["gluetun-a"].id, "healthy")
    p.runtime.set_health(g["gluetun-b"].id, "healthy")
    await round_(p, signals)
    engines = [await p.engine() for _ in range(2)]
    p.runtime.set_health(g["gluetun-a"].id, None)
    p.runtime.set_health(g["gluetun-b"].id, None)
    p.offline.add(engines[1].port)
    await round_(p, signals)
    a, b = p.vpn.monitors
    assert (a.last.health, a.last.signal, a.last.control_server) == ("healthy", "engine", "unreachable")
    assert (b.last.health, b.last.signal) == ("unhealthy", "engine")
    entries = p.status.vpn_status().vpns
    assert entries is not None and [v.signal for v in entries] == ["engine", "engine"]


async def test_a_gluetun_stuck_unhealthy_is_restarted_once_per_window(parts: PartsFactory) -> None:
    p, g, signals = await two_vpns(parts, vpn_unhealthy_restart_timeout_s=1, vpn_restart_window_s=3600)
    await round_(p, signals)
    p.runtime.set_health(g["gluetun-a"].id, "unhealthy")
    restarts: list[tuple[str, bool]] = []
    await round_(p, signals, restarts)
    assert restarts == []
    p.vpn.monitors[0].unhealthy_since -= 2  # type: ignore[operator]
    await round_(p, signals, restarts)
    assert restarts == [("gluetun-a", True)] and ("restart", "gluetun-a") in p.runtime.calls
    p.runtime.set_health(g["gluetun-a"].id, "healthy")
    await round_(p, signals, restarts)
    p.runtime.set_health(g["gluetun-a"].id, "unhealthy")
    await round_(p, signals, restarts)
    p.vpn.monitors[0].unhealthy_since -= 2  # type: ignore[operator]
    await round_(p, signals, restarts)
    await round_(p, signals, restarts)
    assert restarts == [("gluetun-a", True), ("gluetun-a", False)], "the second failure is recorded, not restarted"
    refused = [f for c, f in p.records if c == "vpn" and f.get("operation") == "gluetun_restart"]
    assert [(f["vpn"], f["restarted"]) for f in refused] == [("gluetun-a", True), ("gluetun-a", False)]


async def test_a_missing_gluetun_blocks_only_its_vpn(parts: PartsFactory, caplog: pytest.LogCaptureFixture) -> None:
    p, g, signals = await two_vpns(parts)
    await p.runtime.remove(g["gluetun-b"].id)
    for _ in range(3):
        await round_(p, signals)
    b = p.vpn.monitors[1]
    assert b.last.status == "not_found" and b.reason and "missing" in b.reason
    assert sum("gluetun-b is missing" in r.getMessage() for r in caplog.records) == 1
    assert p.vpn.connected
    entries = p.status.vpn_status().vpns
    assert entries is not None and entries[1].reason == b.reason
    assert (await p.engine()).labels[ENGINE_VPN_LABEL] == "gluetun-a"


class _HealthSignals:
    def engines_health(self, *, unhealthy: int, total: int) -> None:
        pass

    def replacement_started(self) -> None:
        pass
