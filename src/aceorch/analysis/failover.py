"""The failover finding of ``diagnose``: a VPN of several dropped, its engines (and streams) moved to the others,
and whether its Gluetun was restarted or the restart breaker held it."""

from __future__ import annotations

from aceorch.analysis.evidence import EVIDENCE_CAP, Evidence, Finding

__all__ = ["failover_finding"]


def failover_finding(ev: Evidence) -> Finding | None:
    """One finding for every ``vpn_failover`` in the stress records, with the forced Gluetun restarts; or None."""
    moves = [r for r in ev.stress if r.get("event_type") == "vpn_failover"]
    if not moves:
        return None
    restarts = [r for r in ev.stress if r.get("event_type") == "vpn_gluetun_restart"]
    chain: list[str] = []
    evidence = []
    for r in moves:
        engines = list(r.get("engines") or [])
        streams = list(r.get("streams") or [])
        to = ", ".join(r.get("to") or []) or "no other VPN (all down)"
        chain.append(f"VPN {r.get('vpn')} dropped at {r.get('timestamp')}: {len(engines)} engine(s) marked "
                     f"unhealthy at once and {len(streams)} stream(s) moved to {to}")
        evidence.append({"timestamp": r.get("timestamp"), "type": "vpn_failover", "detail": (
            f"{r.get('vpn')}: engines {', '.join(engines) or 'none'}; streams {', '.join(streams) or 'none'}")})
    for r in restarts:
        done = "restarted" if r.get("restarted") else "not restarted (the restart breaker held it)"
        chain.append(f"Gluetun {r.get('vpn')} {done}: {r.get('reason')}")
        evidence.append({"timestamp": r.get("timestamp"), "type": "vpn_gluetun_restart",
                         "detail": f"{r.get('vpn')}: {done}"})
    refused = any(not r.get("restarted") for r in restarts)
    vpns = sorted({str(r.get("vpn")) for r in moves})
    return Finding(
        kind="vpn_failover",
        severity="critical" if refused else "warning",
        title=f"VPN failover: {', '.join(vpns)} dropped and the other VPN(s) carried the engines",
        chain=chain,
        evidence=evidence[:EVIDENCE_CAP],
        first_seen=str(moves[0].get("timestamp")) if moves[0].get("timestamp") else None,
        settings=[
            {"name": "VPN_UNHEALTHY_RESTART_TIMEOUT_S",
             "advice": "how long a Gluetun may stay unhealthy before aceorch restarts it (0 never)"},
            {"name": "VPN_RESTART_WINDOW_S",
             "advice": "a second failure within this window is not restarted again: check that tunnel's provider"},
            {"name": "VPN_RECOVERY_STABILIZE_S",
             "advice": "how long the VPN must hold before its engines restart behind it"},
        ],
    )
