"""The built-in proxy across two Gluetun VPNs: real ``aceorch serve``, real Docker, two gluetun-sim containers,
engines in their namespaces. A viewer on an engine behind VPN A keeps its connection when A drops, and its bytes
come again from an engine behind VPN B: the VPN monitor marks A's engines unhealthy and the embedded proxy, told
by the service's event feed, moves the stream at once (the simulated drop does not cut the engine's data, so no
stall would ever show it). The standalone ``aceorch proxy`` does the same from its watch of ``GET /engines``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchestrator_proc import Orchestrator, docker_rm_label
from test_control_docker import Gluetun
from viewers import Reader, StandaloneProxy, client

from support import async_wait_until, wait_until

pytestmark = pytest.mark.docker

POOL_A = range(19630, 19635)
POOL_B = range(19635, 19640)
CONTENT = "feed0000feed0000feed0000feed0000feed0001"


@pytest.fixture
def two_vpns(docker_engine: None, tmp_path: Path) -> Iterator[tuple[Orchestrator, Gluetun, Gluetun]]:
    o = Orchestrator(tmp_path, {"RUNTIME": "docker", "DEBUG_MODE": "true", "MIN_REPLICAS": "1",
                                "PROXY_CLIENT_STALL_S": "60", "PROXY_UPSTREAM_STALL_S": "10",
                                "VPN_RECOVERY_STABILIZE_S": "600",
                                # The gap then measures the hand-over, not the simulator's 9 s prebuffering.
                                "ENGINE_ENV": "SIM_TIME_TO_DL_S=0.5", "HEALTH_CHECK_INTERVAL_S": "2"})
    a = Gluetun(f"aceorch.test.vpn={o.label_value}", POOL_A)
    b = Gluetun(f"aceorch.test.vpn={o.label_value}", POOL_B)
    try:
        o.env.update({
            "GLUETUN_CONTAINER_NAMES": f"{a.name},{b.name}",
            "GLUETUN_API_URLS": f"http://127.0.0.1:{a.control_port},http://127.0.0.1:{b.control_port}",
            "PORT_RANGE_HOST": f"{POOL_A.start}-{POOL_B.stop - 1}", "MAX_ACTIVE_REPLICAS": "10",
            "GLUETUN_HEALTH_CHECK_INTERVAL_S": "1", "GLUETUN_STARTUP_WAIT_S": "20",
        })
        o.start()
        yield o, a, b
    finally:
        o.close()
        a.remove()
        b.remove()
        docker_rm_label(o.label)


async def get_json(o: Orchestrator, path: str, port: int | None = None) -> Any:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port or o.port}", timeout=10, headers=o.auth) as c:
        resp = await c.get(path)
        resp.raise_for_status()
        return resp.json()


def records(folder: Path, category: str) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(folder.glob(f"*_{category}.jsonl"))
            for line in f.read_text().splitlines()]


@pytest.mark.parametrize("mode", ["embedded", "standalone"])
async def test_a_viewer_on_vpn_a_keeps_its_connection_when_a_drops_and_gets_bytes_through_b(
    two_vpns: tuple[Orchestrator, Gluetun, Gluetun], tmp_path: Path, mode: str,
) -> None:
    o, a, b = two_vpns
    proxy_logs = tmp_path / "proxy_logs"
    proxy = StandaloneProxy(o, o.cwd, {"PROXY_DEBUG_LOG_DIR": str(proxy_logs)}) if mode == "standalone" else None
    port = proxy.port if proxy else o.port
    try:
        await _drop_a_under_a_viewer(o, a, b, port, tmp_path / "debug_logs" if proxy is None else proxy_logs,
                                     embedded=proxy is None)
    finally:
        if proxy is not None:
            proxy.close()


async def _drop_a_under_a_viewer(o: Orchestrator, a: Gluetun, b: Gluetun, port: int, logs: Path, *,
                                 embedded: bool) -> None:
    wait_until(lambda: [e["labels"].get("aceorch.vpn") for e in o.engines() if e["health_status"] == "healthy"]
               == [a.name], timeout=90, what="one healthy engine, behind A")
    async with client() as c:
        viewer = Reader(c, f"http://127.0.0.1:{port}/ace/getstream?id={CONTENT}").start()
        await async_wait_until(lambda: viewer.bytes > 200_000, timeout=60, what="the viewer's first bytes")
        [stream] = await get_json(o, "/proxy/streams", port)
        on_a = stream["engine"]["container_id"]
        # A second engine: the healthy VPN with the fewest engines is B.
        # Blocking calls go to a thread: the viewer reads on this loop, and its silences are measured.
        r = await asyncio.to_thread(o.provision, {})
        assert r.status_code == 200, r.text
        on_b = r.json()["container_id"]
        engines = {e["container_id"]: e for e in await get_json(o, "/engines")}
        assert engines[on_a]["labels"]["aceorch.vpn"] == a.name and engines[on_b]["labels"]["aceorch.vpn"] == b.name

        async def b_healthy() -> bool:
            return any(e["container_id"] == on_b and e["health_status"] == "healthy"
                       for e in await get_json(o, "/engines"))

        await async_wait_until(b_healthy, timeout=60, what="B's engine healthy")
        silence_before = viewer.max_gap_s
        await asyncio.to_thread(a.vpn, "down")
        dropped = time.monotonic()
        mark = viewer.bytes

        async def moved() -> dict[str, Any] | None:
            streams = await get_json(o, "/proxy/streams", port)
            s: dict[str, Any] | None = streams[0] if streams else None
            if s and s["engine"] and s["engine"]["container_id"] == on_b and s["gaps_ms"]:
                return s
            return None

        await async_wait_until(moved, timeout=30, what="the stream on B's engine, with its gap")
        moved_after = time.monotonic() - dropped
        await async_wait_until(lambda: viewer.bytes > mark + 200_000, timeout=30, what="bytes again, through B")
        bytes_after = time.monotonic() - dropped
        [stream] = await get_json(o, "/proxy/streams", port)
        assert not viewer.ended and viewer.error is None and viewer.status == 200, (viewer.ended, viewer.error)
        engines = {e["container_id"]: e for e in await get_json(o, "/engines")}
        assert engines[on_a]["health_status"] == "unhealthy"
        assert engines[stream["engine"]["container_id"]]["labels"]["aceorch.vpn"] == b.name
        assert stream["failovers"] == 1 and stream["reconnects"] == 0 and stream["upstream_state"] == "streaming"
        await viewer.stop()
    print(f"\n{'embedded' if embedded else 'standalone'}: VPN A dropped: stream on B's engine after "
          f"{moved_after:.2f} s, 200 kB more to the viewer after {bytes_after:.2f} s; "
          f"proxy gap {stream['gaps_ms']} ms; largest silence seen by the viewer {viewer.max_gap_s:.2f} s "
          f"({silence_before:.2f} s before the drop)")
    # A keeps sending until the move, so the gap is B's start; the move follows the VPN check (1 s) at once.
    assert len(stream["gaps_ms"]) == 1 and stream["gaps_ms"][0] < 8_000
    assert moved_after < 15
    assert viewer.max_gap_s < 8, "the viewer's longest silence is the hand-over's"
    # The embedded proxy's records carry component=proxy (their operation may be prefixed proxy_); the
    # standalone proxy writes its own folder.
    def proxy_streams() -> list[dict[str, Any]]:
        return [r for r in records(logs, "streams") if r.get("component") == "proxy" or not embedded]

    def ops(name: str) -> list[dict[str, Any]]:
        return [r for r in proxy_streams() if str(r.get("operation")).removeprefix("proxy_") == name]

    wait_until(lambda: ops("upstream_gap"), timeout=10, what="the proxy's records written")
    [fo] = ops("upstream_failover")
    assert fo["reason"] == "engine_unhealthy" and fo["container_id"] == on_a
    [gap] = ops("upstream_gap")
    assert gap["container_id"] == on_b and gap["gap_ms"] == pytest.approx(stream["gaps_ms"][0], abs=0.1)
    orch_logs = o.cwd / "debug_logs"
    assert any(r.get("operation") == "failover" and r.get("vpn") == a.name for r in records(orch_logs, "vpn"))
