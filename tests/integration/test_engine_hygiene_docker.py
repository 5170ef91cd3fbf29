"""Engine hygiene on real Docker: limits in docker inspect, CPU and memory of a streaming engine, and the idle
cache clean-up, visible in the simulator's stat and in last_cache_cleanup."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchestrator_proc import Orchestrator

from aceorch.errors import ContainerNotFound, RuntimeFailure
from aceorch.runtime.base import ContainerSpec
from support import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streams"))
from aceorch_live import acexy_started_body, get_stream  # noqa: E402

pytestmark = pytest.mark.docker

CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"


def inspect(container_id: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "inspect", container_id], capture_output=True, text=True, timeout=60, check=True)
    data: list[dict[str, Any]] = json.loads(out.stdout)
    return data[0]


def cache_stats(session: dict[str, Any]) -> dict[str, Any]:
    body = httpx.get(session["stat_url"], timeout=5).json()
    assert body["error"] is None, body
    stats: dict[str, Any] = body["response"]["disk_cache_stats"]
    return stats


def engine(o: Orchestrator, cid: str) -> dict[str, Any]:
    r = o.client.get(f"/engines/{cid}")
    r.raise_for_status()
    found: dict[str, Any] = r.json()["engine"]
    return found


def play(url: str, stop: threading.Event) -> None:
    """Read the engine's MPEG-TS as a player would, until ``stop``."""
    with httpx.stream("GET", url, timeout=30, follow_redirects=True) as response:
        for _ in response.iter_bytes():
            if stop.is_set():
                return


def test_limits_usage_and_the_idle_cache_clean_up(orch: Callable[..., Orchestrator]) -> None:
    o = orch(ENGINE_MEMORY_LIMIT="256m", ENGINE_CPUS="0.5", ENGINE_CACHE_CLEANUP_IDLE_S="4", COLLECT_INTERVAL_S="1")
    created = o.provision({"env": {"SIM_TIME_TO_DL_S": "1"}})
    assert created.status_code == 200, created.text
    cid, port = created.json()["container_id"], created.json()["host_http_port"]

    # limits, as docker inspect shows them
    host_config = inspect(cid)["HostConfig"]
    assert host_config["Memory"] == 256 << 20 and host_config["NanoCpus"] == 500_000_000

    # a stream: getstream, stream_started, and a player reading the content
    session = get_stream(port, CONTENT)
    started = o.client.post("/events/stream_started", json=acexy_started_body("localhost", port, CONTENT, session))
    assert started.status_code == 200, started.text
    stream_id = started.json()["id"]
    wait_until(lambda: httpx.get(session["stat_url"], timeout=5).json()["response"]["status"] == "dl", timeout=20,
               what="the session in dl")
    stop = threading.Event()
    player = threading.Thread(target=play, args=(session["playback_url"], stop), daemon=True)
    player.start()
    try:
        # the cache grows while it streams, and stat shows it
        grown = wait_until(lambda: (n := cache_stats(session)["active_inuse"]) > 500_000 and n, timeout=30,
                           what="the cache to grow while streaming")
        du = subprocess.run(["docker", "exec", cid, "du", "-sb", "/root/.ACEStream/.acestream_cache"],
                            capture_output=True, text=True, timeout=60, check=True)
        assert int(du.stdout.split()[0]) >= grown

        # CPU and memory of the streaming engine, sampled in the background
        usage = wait_until(lambda: (e := engine(o, cid))["cpu_percent"] and e["memory_bytes"] and e, timeout=30,
                           what="non-zero cpu_percent and memory_bytes")
        assert usage["cpu_percent"] > 0 and usage["memory_bytes"] > 1 << 20
        assert usage["memory_bytes"] < 256 << 20
        listed = {e["container_id"]: e for e in o.engines()}[cid]
        assert listed["memory_bytes"] and listed["cpu_percent"] is not None
        assert usage["last_cache_cleanup"] is None  # serving a stream: its cache stays
    finally:
        stop.set()
        player.join(timeout=10)

    # the stream ends (the engine's session lives on, so its stat stays readable); after the idle time the
    # orchestrator empties the cache through docker exec
    ended = o.client.post("/events/stream_ended", json={"stream_id": stream_id, "reason": "handler_exit"})
    assert ended.status_code == 200 and ended.json()["updated"] is True
    cleaned = wait_until(lambda: (e := engine(o, cid))["last_cache_cleanup"] and e, timeout=30,
                         what="last_cache_cleanup to be set")
    assert cleaned["cache_size_bytes"] == 0
    after = cache_stats(session)
    assert after["active_inuse"] == 0, after
    listing = subprocess.run(["docker", "exec", cid, "ls", "-A", "/root/.ACEStream/.acestream_cache"],
                             capture_output=True, text=True, timeout=60, check=True)
    assert listing.stdout.strip() == ""
    assert "cleared the cache of" in o.logs()


async def test_the_docker_runtime_samples_and_clears_inside_a_container(
    docker_runtime: Any, engine_image: str, test_labels: dict[str, str], unique_name: Callable[[str], str]
) -> None:
    info = await docker_runtime.create(ContainerSpec(
        name=unique_name("hygiene"), image=engine_image, labels=test_labels, memory_limit=128 << 20, cpus=0.25,
        command=["--cache-dir", "/var/cache/engine"],
    ))
    fill = "mkdir -p /var/cache/engine/sub && head -c 300000 /dev/zero > /var/cache/engine/sub/a && touch " \
        "/var/cache/engine/.h"
    await asyncio.to_thread(subprocess.run, ["docker", "exec", info.id, "sh", "-c", fill], check=True, timeout=60)

    usage = await docker_runtime.stats(info.id)
    assert usage.memory_bytes is not None and 0 < usage.memory_bytes < 128 << 20
    assert usage.cpu_percent is not None and usage.cpu_percent >= 0

    await docker_runtime.clear_cache(info.id, "/var/cache/engine")
    await docker_runtime.clear_cache(info.id, "/no/such/dir")  # nothing to clear is no failure
    left = await asyncio.to_thread(subprocess.run, ["docker", "exec", info.id, "ls", "-A", "/var/cache/engine"],
                                   capture_output=True, text=True, check=True, timeout=60)
    assert left.stdout == ""

    await docker_runtime.stop(info.id, timeout=1)
    with pytest.raises(RuntimeFailure):
        await docker_runtime.clear_cache(info.id, "/var/cache/engine")
    await docker_runtime.remove(info.id)
    with pytest.raises(ContainerNotFound):
        await docker_runtime.stats(info.id)
