"""``debug diagnose`` reads both sides: a channel viewers waited for, its cause joined from the orchestrator's
records (a VPN drop, slow provisioning after it, an open breaker), and the viewers' request ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from aceorch.analysis.proxy_side import Viewer
from aceorch.analysis.viewer_findings import channel_waits
from aceorch.cli.debug import app as debug_app

SID = "20251018_144400"
KEY = "0a4848271c91ce2d8965ce416267c25047000001"


def ts(second: float) -> str:
    return f"2025-10-18T14:{44 + int(second // 60):02d}:{second % 60:09.6f}Z"


class Logs:
    """One orchestrator session and one standalone proxy session, in the debug-mode guide's layout."""

    def __init__(self, root: Path) -> None:
        self.orch = root / "work" / "debug_logs"
        self.proxy = root / "proxy" / "debug_logs"
        self.files: dict[Path, list[dict[str, Any]]] = {}
        self.seq = 0
        self.add(self.orch, "session", 0, operation="session_start", config={})

    def add(self, folder: Path, category: str, t: float, **fields: Any) -> None:
        self.seq += 1
        rec = {"session_id": SID, "timestamp": ts(t), "elapsed_seconds": t, "seq": self.seq, **fields}
        self.files.setdefault(folder / f"{SID}_{category}.jsonl", []).append(rec)

    def vpn(self, t: float, connected: bool) -> None:
        self.add(self.orch, "vpn", t, operation="health_check", connected=connected, signal="control_server")

    def start(self, rid: str, t: float, took_s: float, reason: str | None = None) -> None:
        self.add(self.orch, "provisioning", t, operation="start_acestream_begin", request_id=rid)
        if reason:
            self.add(self.orch, "provisioning", t + took_s, operation="start_acestream_failed", request_id=rid,
                     reason=reason, success=False, duration_ms=took_s * 1000)
        else:
            self.add(self.orch, "provisioning", t + took_s, operation="start_acestream_success", request_id=rid,
                     container_name=f"acestream-{rid}", success=True, duration_ms=took_s * 1000)

    def viewer(self, rid: str, t: float, *, ttfb_s: float | None = None, refused: str | None = None,
               provision_s: float | None = None) -> None:
        if provision_s is not None:
            self.add(self.proxy, "provisioning", t, operation="provision_request", request_id=rid, stream_key=KEY)
            self.add(self.proxy, "provisioning", t + provision_s, operation="provision_response", request_id=rid,
                     stream_key=KEY, success=refused is None, duration_ms=provision_s * 1000,
                     **({"error_code": refused} if refused else {}))
        if refused:
            self.add(self.proxy, "requests", t + 0.03, operation="viewer_request", request_id=rid,
                     path="/ace/getstream", method="GET", status=503, error_code=refused, duration_ms=30.0,
                     stream_key=KEY)
        if ttfb_s is not None:
            self.add(self.proxy, "requests", t + ttfb_s, operation="first_byte_ready", request_id=rid,
                     stream_key=KEY, duration_ms=ttfb_s * 1000)

    def write(self) -> None:
        for path, records in self.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            records.sort(key=lambda r: r["timestamp"])
            path.write_text("".join(json.dumps(r) + "\n" for r in records))


def diagnose(logs: Logs, *extra: str) -> dict[str, Any]:
    logs.write()
    res = CliRunner().invoke(debug_app, ["diagnose", "--dir", str(logs.orch), "--json", *extra])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.output)
    return out


def test_viewers_refused_while_the_vpn_was_down_then_served_after_it_name_the_drop_and_the_ids(
        tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    logs.vpn(1, True)
    logs.vpn(10, False)
    logs.viewer("v-drop", 12.0, refused="vpn_disconnected", provision_s=0.02)
    logs.start("v-drop", 12.005, 0.005, reason="vpn_disconnected")
    logs.vpn(25, True)
    logs.viewer("v-after", 30.0, ttfb_s=1.8, provision_s=1.3)
    logs.start("v-after", 30.1, 1.2)
    logs.viewer("v-join", 31.0, ttfb_s=0.85)  # came while the channel started: waited with it
    out = diagnose(logs)  # no --proxy-dir: ../proxy/debug_logs beside the orchestrator's folder
    assert out["proxy"]["viewer_requests"] == 3 and out["proxy"]["refused"] == 1 and not out["proxy"]["embedded"]
    viewers = [f for f in out["findings"] if f["kind"].startswith("viewer_wait")]
    assert len(viewers) == 1
    f = viewers[0]
    assert f["kind"] == "viewer_wait_vpn" and f["severity"] == "critical"
    assert f["title"] == "Viewers waited 20 s for channel 0a4848271c91ce2d… because the VPN was down (1 refused first)"
    assert f["request_ids"] == ["v-drop", "v-after", "v-join"]
    assert f["chain"][0] == "VPN disconnected at 14:44:10 (control_server) and recovered at 14:44:25 after 15.00s"
    assert f"1 viewer request(s) for channel {KEY} refused with 503 vpn_disconnected" in f["chain"][1]
    assert f["chain"][1].endswith(": v-drop")
    assert f["chain"][2] == ("v-after asked again at 14:44:30; the orchestrator's start of it began at 14:44:30 "
                             "and took 1.20s; first byte after 1.80s")
    assert f["chain"][-1] == (f"channel {KEY} waited 19.8 s from the first request (v-drop at 14:44:12) to the "
                              "first byte (v-after at 14:44:31)")
    channel = f["channels"][0]
    assert channel["refused_request_ids"] == ["v-drop"] and channel["served_request_id"] == "v-after"
    assert abs(channel["wait_ms"] - 19800) < 1
    assert {s["name"] for s in f["settings"]} >= {"GLUETUN_CONTAINER_NAMES", "MIN_FREE_REPLICAS"}
    # The orchestrator's own VPN finding is still there beside it.
    assert any(x["kind"] == "vpn_chain" for x in out["findings"])

    text = CliRunner().invoke(debug_app, ["diagnose", "--dir", str(logs.orch)]).output
    assert "Viewers: 3 request(s) in " in text and "1 refused" in text
    assert "because the VPN was down" in text and "Request ids: v-drop, v-after, v-join" in text
    page = tmp_path / "report.html"
    res = CliRunner().invoke(debug_app, ["html-report", "--dir", str(logs.orch), "-o", str(page)])
    assert res.exit_code == 0, res.output
    html = page.read_text()
    assert "because the VPN was down" in html and "<code>v-drop</code>, <code>v-after</code>" in html


def test_a_slow_start_after_the_drop_is_slow_provisioning_after_a_vpn_drop(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    logs.vpn(1, True)
    logs.vpn(10, False)
    logs.vpn(25, True)
    logs.viewer("v-slow", 40.0, ttfb_s=19.6, provision_s=19.2)
    logs.start("v-slow", 40.1, 19.0)
    logs.viewer("v-fast", 90.0, ttfb_s=0.05)  # the channel is live by then: no wait
    out = diagnose(logs, "--proxy-dir", str(logs.proxy))
    f = next(x for x in out["findings"] if x["kind"].startswith("viewer_wait"))
    assert f["title"] == "Viewers waited 20 s for channel 0a4848271c91ce2d… because provisioning was slow after a " \
                         "VPN drop"
    assert f["request_ids"] == ["v-slow"]
    assert "took 19.00s" in f["chain"][1]


def test_an_open_breaker_and_quick_viewers(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    logs.add(logs.orch, "stress", 5, event_type="circuit_breaker_opened", severity="critical",
             operation_type="general", description="breaker opened")
    logs.viewer("v-b1", 6.0, refused="circuit_breaker", provision_s=0.01)
    logs.viewer("v-ok", 200.0, ttfb_s=0.9, provision_s=0.5)
    logs.start("v-ok", 200.1, 0.4)
    out = diagnose(logs)
    kinds = [x["kind"] for x in out["findings"]]
    assert "viewer_wait_breaker" in kinds, kinds
    f = next(x for x in out["findings"] if x["kind"] == "viewer_wait_breaker")
    assert f["title"].startswith("Viewers waited") and "because the circuit breaker was open" in f["title"]
    assert f["request_ids"] == ["v-b1", "v-ok"]


def test_quick_viewers_are_no_problem(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    logs.viewer("q1", 3.0, ttfb_s=1.1, provision_s=0.9)
    logs.start("q1", 3.1, 0.7)
    logs.viewer("q2", 3.5, ttfb_s=0.7)
    out = diagnose(logs)
    assert out["findings"] == [] and out["verdict"] == "No problems found"
    assert out["proxy"] == {"proxy_dir": str(logs.proxy), "embedded": False, "viewer_requests": 2, "served": 2,
                            "refused": 0, "slow_waits": 0}


def test_waits_per_channel_join_viewers_who_came_while_it_started() -> None:
    def v(rid: str, t: float, ttfb: float | None = None, status: int | None = None) -> Viewer:
        return Viewer(request_id=rid, t_start=t, started=ts(t), stream_key="k", ttfb_ms=ttfb, status=status)

    waits = channel_waits([v("a", 0, status=503), v("b", 5, ttfb=10_000), v("c", 6, ttfb=9_100), v("d", 40, 50)])
    assert [(w.first.request_id, w.served.request_id if w.served else None) for w in waits] == [("a", "b"),
                                                                                                 ("d", "d")]
    assert waits[0].request_ids == ["a", "b", "c"] and waits[0].wait_ms == 15_000
    assert abs(waits[1].wait_ms - 50) < 1e-6


def test_viewers_refused_and_never_served_say_for_how_long(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    logs.vpn(1, True)
    logs.vpn(10, False)  # still down at the end of the log
    logs.viewer("r1", 12.0, refused="vpn_disconnected", provision_s=0.01)
    logs.viewer("r2", 13.5, refused="vpn_disconnected", provision_s=0.01)
    out = diagnose(logs)
    f = next(x for x in out["findings"] if x["kind"] == "viewer_wait_vpn")
    assert f["title"] == "Viewers of channel 0a4848271c91ce2d… were refused for 1.5 s because the VPN was down"
    assert f["request_ids"] == ["r1", "r2"] and f["chain"][0].endswith("was still down at the end")
    assert f["chain"][-1] == f"channel {KEY} never got a first byte in the log"
