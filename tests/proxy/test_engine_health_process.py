"""Engine health under live proxy streams, over the process runtime (no Docker): the health-report route, the
embedded proxy moving a stream off an engine the orchestrator marked unhealthy (the service's event feed), and
the standalone proxy reporting a hung engine through the API and moving off one its watch sees marked unhealthy."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streams"))
from aceorch_live import AUTH, NO_AUTH, LiveServer, live_server, live_settings  # noqa: E402
from standalone import proxy_server  # noqa: E402
from viewers import sim_update  # noqa: E402

from support import wait_until  # noqa: E402

CONTENT = "0a4848271c91ce2d8965ce416267c25047dc8199"


@pytest.fixture(autouse=True)
def fast_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine processes inherit the environment: playback starts half a second after getstream."""
    monkeypatch.setenv("SIM_TIME_TO_DL_S", "0.5")


class Viewer:
    """One player reading a stream in a thread: bytes so far, the largest silence between chunks, the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bytes = 0
        self.status: int | None = None
        self.error: str | None = None
        self.ended = False
        self.max_gap_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = 0.0
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(60.0, connect=10.0)) as resp:
                self.status = resp.status_code
                for chunk in resp.iter_raw():
                    now = time.monotonic()
                    if last:
                        self.max_gap_s = max(self.max_gap_s, now - last)
                    last = now
                    self.bytes += len(chunk)
                    if self._stop.is_set():
                        return
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended = True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


def records(folder: Path, category: str) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(folder.glob(f"*_{category}.jsonl")) for line in f.read_text().splitlines()]


def stream_of(base: str) -> dict[str, Any] | None:
    streams = httpx.get(f"{base}/proxy/streams", headers=AUTH, timeout=10).json()
    return streams[0] if streams else None


def healthy_engines(server: LiveServer, n: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        engines = server.get("/engines")
        ok = [e for e in engines if e["health_status"] == "healthy"]
        return ok if len(ok) >= n else None

    out: list[dict[str, Any]] = wait_until(ready, timeout=60, what=f"{n} healthy engines")
    return out


def moved_off(base: str, cid: str) -> dict[str, Any] | None:
    s = stream_of(base)
    if s and s["engine"] and s["engine"]["container_id"] != cid and s["upstream_state"] == "streaming" and s["gaps_ms"]:
        return s
    return None


# -- the route ----------------------------------------------------------------------------------------------
def test_the_health_report_route_marks_the_engine_unhealthy_and_refuses_bad_calls(tmp_path: Path) -> None:
    settings = live_settings(tmp_path, min_replicas=1, debug_mode=True)
    with live_server(settings) as server:
        [engine] = healthy_engines(server, 1)
        cid = engine["container_id"]
        url = f"/engines/{cid}/health-report"
        assert server.client.post(url, json={"reason": "x"}, headers=NO_AUTH).status_code == 401
        assert server.client.post(url, json={}).status_code == 422
        assert server.client.post(url, json={"reason": ""}).status_code == 422
        assert server.client.post(url, json={"reason": "x" * 501}).status_code == 422
        missing = server.client.post("/engines/nope/health-report", json={"reason": "x"})
        assert missing.status_code == 404 and missing.json() == {"detail": "engine not found"}
        resp = server.client.post(f"/engines/{engine['container_name']}/health-report",
                                  json={"reason": "stalled under a live stream", "request_id": "rid-7"})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"container_id": cid, "health_status": "unhealthy", "changed": True}
        [listed] = server.get("/engines")
        assert listed["health_status"] == "unhealthy"
        again = server.client.post(url, json={"reason": "again"}).json()
        assert again["changed"] is False and again["health_status"] == "unhealthy"
        breakers = server.get("/health/status")
        assert json.dumps(breakers).count('"open"') == 0, "a report is no breaker failure"
    logs = tmp_path / "debug_logs"
    reports = [r for r in records(logs, "health") if r.get("operation") == "proxy_reported_hang"]
    assert [(r["source"], r["request_id"]) for r in reports][:1] == [("api", "rid-7")]
    transitions = [r for r in records(logs, "health") if r.get("operation") == "status_transition"
                   and r.get("source") == "api"]
    assert [(t["from"], t["to"]) for t in transitions] == [("healthy", "unhealthy")]


# -- embedded: the service's event feed ------------------------------------------------------------------------
def test_the_embedded_proxy_moves_a_stream_off_an_engine_marked_unhealthy(tmp_path: Path) -> None:
    settings = live_settings(tmp_path, min_replicas=2, debug_mode=True, proxy_client_stall_s=60)
    with live_server(settings) as server:
        healthy_engines(server, 2)
        viewer = Viewer(f"{server.url}/ace/getstream?id={CONTENT}")
        try:
            wait_until(lambda: viewer.bytes > 100_000, timeout=30, what="the viewer's first bytes")
            first = stream_of(server.url)
            assert first is not None
            cid = first["engine"]["container_id"]
            marked = time.monotonic()
            resp = server.client.post(f"/engines/{cid}/health-report", json={"reason": "test: given up"})
            assert resp.status_code == 200 and resp.json()["health_status"] == "unhealthy"
            moved = wait_until(lambda: moved_off(server.url, cid), timeout=15, what="the stream on the other engine")
            mark = viewer.bytes
            wait_until(lambda: viewer.bytes > mark + 100_000, timeout=15, what="bytes again")
            took = time.monotonic() - marked
            assert not viewer.ended and viewer.error is None and viewer.status == 200
            assert moved["failovers"] == 1 and moved["reconnects"] == 0
            print(f"\nembedded move: stream on the new engine after {took:.2f} s; gap {moved['gaps_ms']} ms; "
                  f"largest silence seen by the viewer {viewer.max_gap_s:.2f} s")
        finally:
            viewer.close()
    streams = records(tmp_path / "debug_logs", "streams")
    # The embedded proxy's records carry component=proxy (their operation may be prefixed proxy_).
    mine = [r for r in streams if r.get("component") == "proxy"]
    [fo] = [r for r in mine if str(r.get("operation")).removeprefix("proxy_") == "upstream_failover"]
    assert fo["reason"] == "engine_unhealthy" and fo["container_id"] == cid
    ended = [r for r in streams if r.get("component") != "proxy" and r.get("operation") == "stream_ended"
             and r.get("reason") == "engine_unhealthy"]
    assert ended, "the old engine's stream ended in the orchestrator with the move's reason"


# -- standalone: the health report through the API, and the watch polling /engines -------------------------
def test_the_standalone_proxy_reports_a_hang_and_its_watch_moves_off_an_unhealthy_engine(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "p").mkdir()
    orch_settings = live_settings(tmp_path / "o", min_replicas=2, debug_mode=True)
    proxy_settings = live_settings(tmp_path / "p", proxy_upstream_stall_s=1, proxy_upstream_start_timeout_s=2,
                                   proxy_client_stall_s=60)
    with live_server(orch_settings) as server, proxy_server(proxy_settings, server.url) as proxy:
        healthy_engines(server, 2)
        viewer = Viewer(f"{proxy}/ace/getstream?id={CONTENT}")
        try:
            wait_until(lambda: viewer.bytes > 100_000, timeout=30, what="the viewer's first bytes")
            first = stream_of(proxy)
            assert first is not None
            hung = first["engine"]
            sim_update(hung["host"], hung["port"], {"engine_mode": "hang", "content_modes": {"*": "stall:0"}})
            second = wait_until(lambda: moved_off(proxy, hung["container_id"]), timeout=30,
                                what="the stream off the hung engine")

            def reported() -> bool:
                [e] = [e for e in server.get("/engines") if e["container_id"] == hung["container_id"]] or [None]
                return e is None or e["health_status"] == "unhealthy"

            wait_until(reported, timeout=10, what="the hung engine unhealthy in the orchestrator")
            # The orchestrator gives up on the second engine: the watch (GET /engines every 2 s) moves the stream.
            cid = second["engine"]["container_id"]
            marked = time.monotonic()
            assert server.client.post(f"/engines/{cid}/health-report", json={"reason": "test"}).status_code == 200
            third = wait_until(lambda: (s := moved_off(proxy, cid)) and len(s["gaps_ms"]) >= 2 and s, timeout=30,
                               what="the stream off the engine marked unhealthy, bytes again")
            took = time.monotonic() - marked
            mark = viewer.bytes
            wait_until(lambda: viewer.bytes > mark + 100_000, timeout=15, what="bytes again")
            assert third["failovers"] == 2
            assert not viewer.ended and viewer.error is None
            assert third["engine"]["container_id"] not in (cid, hung["container_id"])
            print(f"\nstandalone: hang gap {third['gaps_ms'][0]} ms; moved off the engine marked unhealthy "
                  f"{took:.2f} s after the mark, gap {third['gaps_ms'][1]} ms")
        finally:
            viewer.close()
    reports = [r for r in records(tmp_path / "o" / "debug_logs", "health")
               if r.get("operation") == "proxy_reported_hang"]
    assert [r["container_id"] for r in reports if r["source"] == "api"][:1] == [hung["container_id"]]
