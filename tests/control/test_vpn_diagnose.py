"""``diagnose`` explains a failover: which VPN dropped, which engines and streams moved, and the Gluetun restarts."""

from __future__ import annotations

from aceorch.analysis.evidence import Evidence
from aceorch.analysis.failover import failover_finding


def test_no_failover_no_finding() -> None:
    assert failover_finding(Evidence()) is None


def test_a_failover_and_a_refused_restart_are_explained() -> None:
    ev = Evidence(stress=[
        {"event_type": "vpn_disconnection", "vpn": "gluetun-a", "timestamp": "2026-12-01T10:00:00Z"},
        {"event_type": "vpn_failover", "vpn": "gluetun-a", "engines": ["acestream-1", "acestream-3"],
         "streams": ["s1"], "to": ["gluetun-b"], "timestamp": "2026-12-01T10:00:00Z"},
        {"event_type": "vpn_gluetun_restart", "vpn": "gluetun-a", "restarted": True, "reason": "unhealthy for 120s",
         "timestamp": "2026-12-01T10:02:00Z"},
        {"event_type": "vpn_gluetun_restart", "vpn": "gluetun-a", "restarted": False, "reason": "again",
         "timestamp": "2026-12-01T10:05:00Z"},
    ])
    finding = failover_finding(ev)
    assert finding is not None and finding.kind == "vpn_failover" and finding.severity == "critical"
    assert finding.chain[0] == ("VPN gluetun-a dropped at 2026-12-01T10:00:00Z: 2 engine(s) marked unhealthy at "
                                "once and 1 stream(s) moved to gluetun-b")
    assert finding.chain[1].startswith("Gluetun gluetun-a restarted")
    assert "restart breaker held it" in finding.chain[2]
    assert finding.evidence[0]["detail"] == "gluetun-a: engines acestream-1, acestream-3; streams s1"
    assert {s["name"] for s in finding.settings} >= {"VPN_UNHEALTHY_RESTART_TIMEOUT_S", "VPN_RESTART_WINDOW_S"}
