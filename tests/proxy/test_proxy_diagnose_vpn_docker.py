"""Real Docker: a standalone proxy and an ``aceorch serve`` behind a gluetun-sim VPN, both in debug mode, laid out
as the user's document expects. The VPN drops; a viewer asking for a new channel is refused (503
vpn_disconnected); the VPN comes back; the viewer asks again and the channel's provision runs after the drop.
``debug diagnose`` then names the VPN drop as the cause of that channel's slow start, with the viewers' request
ids, and ``debug correlate`` shows the viewers' time to first byte."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_control_docker import Gluetun  # noqa: E402
from test_proxy_debug import CHANNELS, watch  # noqa: E402

from support import wait_until  # noqa: E402

pytestmark = pytest.mark.docker


def run(cwd: Path, *args: str) -> str:
    """``aceorch debug …`` in the orchestrator's folder, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "aceorch", "debug", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=True).stdout


def test_diagnose_names_the_vpn_drop_and_the_viewers_it_kept_waiting(orch: Callable[..., Any],
                                                                      standalone: Callable[..., Any]) -> None:
    pool = range(19600, 19605)
    g = Gluetun(f"aceorch.test.vpn=viewers-{uuid.uuid4().hex[:8]}", pool)
    try:
        o = orch(DEBUG_MODE="true", DEBUG_LOG_DIR="./debug_logs", MIN_REPLICAS="0", MIN_FREE_REPLICAS="0",
                 GLUETUN_CONTAINER_NAME=g.name, GLUETUN_API_URL=f"http://127.0.0.1:{g.control_port}",
                 PORT_RANGE_HOST=f"{pool.start}-19699", MAX_ACTIVE_REPLICAS="5",
                 GLUETUN_HEALTH_CHECK_INTERVAL_S="1", GLUETUN_STARTUP_WAIT_S="20", VPN_RECOVERY_STABILIZE_S="2",
                 MAX_STREAMS_PER_ENGINE="1")  # a new channel always needs a new engine
        vpn = lambda: o.client.get("/vpn/status").json()["connected"]  # noqa: E731
        wait_until(vpn, timeout=30, what="VPN connected")
        pdir = o.cwd.parent / "proxy" / "debug_logs"
        p = standalone(o, DEBUG_MODE="true", PROXY_DEBUG_LOG_DIR=str(pdir), PROXY_LINGER_S="60")
        url = f"http://127.0.0.1:{p.port}/ace/getstream?id="
        watch(url + CHANNELS[0], "v-ok")  # a channel started before the drop: no finding about it

        g.vpn("down")
        wait_until(lambda: not vpn(), timeout=15, what="VPN down")
        refused = []
        for rid in ("v-drop-1", "v-drop-2"):
            r = httpx.get(url + CHANNELS[1], headers={"X-Request-ID": rid}, timeout=30)
            assert r.status_code == 503 and r.json()["code"] == "vpn_disconnected", r.text
            assert r.headers["retry-after"]
            refused.append(rid)
        g.vpn("up")
        wait_until(vpn, timeout=20, what="VPN back")
        watch(url + CHANNELS[1], "v-after")  # the player asks again: the provision runs after the drop
        p.close()
        o.close()
    finally:
        g.remove()

    for path in [*pdir.glob("*.jsonl"), *(o.cwd / "debug_logs").glob("*.jsonl")]:
        with path.open() as f:
            subprocess.run(["jq", "-c", "."], stdin=f, capture_output=True, check=True, timeout=30)

    # No --proxy-dir: diagnose finds ../proxy/debug_logs beside ./debug_logs, as the document lays them out.
    result = json.loads(run(o.cwd, "diagnose", "--json"))
    assert result["proxy"]["embedded"] is False and result["proxy"]["refused"] == 2
    viewers = [f for f in result["findings"] if f["kind"].startswith("viewer_wait")]
    assert [f["kind"] for f in viewers] == ["viewer_wait_vpn"], result["findings"]
    f = viewers[0]
    assert f["severity"] == "critical" and "VPN" in f["title"] and f"channel {CHANNELS[1][:16]}" in f["title"]
    assert f["request_ids"] == ["v-drop-1", "v-drop-2", "v-after"], f
    assert f["chain"][0].startswith("VPN disconnected at ")
    assert any("refused with 503 vpn_disconnected" in step and "v-drop-1, v-drop-2" in step for step in f["chain"])
    assert any(step.startswith("v-after asked again at ") and "the orchestrator's start of it began" in step
               for step in f["chain"]), f["chain"]
    channel = f["channels"][0]
    assert channel["stream_key"] == CHANNELS[1] and channel["served_request_id"] == "v-after"
    assert channel["wait_ms"] > 0 and "v-ok" not in f["request_ids"]
    print("\n" + f["title"] + "\n  " + "\n  ".join(f["chain"]))  # the figures, for the report

    text = run(o.cwd, "diagnose")
    assert "Request ids: v-drop-1, v-drop-2, v-after" in text and "vpn_disconnected" in text

    corr = json.loads(run(o.cwd, "correlate", "--json"))
    rows = {v["request_id"]: v for v in corr["viewer_requests"]}
    assert rows["v-drop-1"]["status"] == 503 and rows["v-drop-1"]["error_code"] == "vpn_disconnected"
    assert rows["v-after"]["ttfb_ms"] > 0 and rows["v-ok"]["ttfb_ms"] > 0
    assert corr["viewers"] == {"total": 4, "served": 2, "refused": 2, "provisioned": 4}
    assert corr["matched"]["unmatched"] == 0 and corr["matched"]["request_id"] == 4
