"""The orchestrator, as a real process, provisioning simulator engines on the real Docker engine."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import wait_until

pytestmark = pytest.mark.docker


def get_status(port: int) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{port}/server/api", params={"api_version": 3, "method": "get_status"}, timeout=5)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def test_seed_step3_loop_yields_five_ready_engines(orch: Any) -> None:
    o = orch()
    replies = []
    for _ in range(5):
        r = o.provision({"labels": {"test": "stress"}})
        assert r.status_code == 200, r.text
        replies.append(r.json())
    assert len({r["host_http_port"] for r in replies}) == 5
    for reply in replies:
        assert get_status(reply["host_http_port"])["result"]["playlist_loaded"] is True
        assert len(reply["container_id"]) == 64
    engines = o.engines()
    assert sorted(e["container_id"] for e in engines) == sorted(r["container_id"] for r in replies)
    for e in engines:
        assert e["first_seen"].endswith("Z") and e["labels"]["test"] == "stress"
    assert sorted(o.containers(running_only=True)) == sorted(r["container_id"] for r in replies)
    # The container summary has Docker's ports shape, and deletion removes the container.
    c = o.client.get(f"/containers/{replies[0]['container_id'][:12]}").json()
    assert c["ports"][f"{replies[0]['container_http_port']}/tcp"][0]["HostPort"] == str(replies[0]["host_http_port"])
    assert o.client.delete(f"/containers/{replies[0]['container_id']}", headers=o.auth).status_code == 200
    assert replies[0]["container_id"] not in o.containers()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"SIM_FAIL_START": "3"}, "engine_exited"),
        ({"SIM_STARTUP_DELAY_S": "30"}, "startup_timeout"),
    ],
)
def test_failed_start_leaves_no_container_and_no_port(
    orch: Any, env: dict[str, str], reason: str, tmp_path: Path
) -> None:
    # A two-port pool: a leaked port would make the later provisions fail.
    o = orch(STARTUP_TIMEOUT_S="4", PORT_RANGE_HOST="19500-19501", DEBUG_MODE="true")
    for _ in range(3):
        r = o.provision({"env": env})
        assert r.status_code == 500, r.text
        assert r.json()["detail"]["code"] == "general_error"
        assert o.containers() == []
    ok = [o.provision({}) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    records = [
        json.loads(line)
        for f in (tmp_path / "debug_logs").glob("*_provisioning.jsonl")
        for line in f.read_text().splitlines()
    ]
    failed = [r for r in records if r["operation"] == "start_acestream_failed"]
    assert [r["reason"] for r in failed] == [reason] * 3


def test_missing_images(orch: Any) -> None:
    o = orch(ALLOWED_IMAGES="aceorch/does-not-exist:1")  # listed, so that the check for a present image answers
    r = o.provision({"image": "aceorch/does-not-exist:1"})
    assert r.status_code == 400 and r.json()["detail"]["code"] == "image_not_found"
    assert o.containers() == []
    o.close()
    o2 = orch(TARGET_IMAGE="aceorch/does-not-exist:1")
    r = o2.provision({})
    assert r.status_code == 500 and r.json()["detail"]["code"] == "image_not_found"
    assert o2.containers() == []


def test_max_replicas_is_503_and_nothing_leaks(orch: Any) -> None:
    o = orch(MAX_REPLICAS="2")
    assert [o.provision({}).status_code for _ in range(2)] == [200, 200]
    r = o.provision({})
    assert r.status_code == 503 and r.json()["detail"]["code"] == "max_capacity"
    assert r.headers["retry-after"] == "30"
    assert len(o.containers()) == 2


def test_twenty_concurrent_provisions_get_distinct_ports(orch: Any) -> None:
    o = orch(MAX_CONCURRENT_PROVISIONS="20", MAX_REPLICAS="25")

    def one(_: int) -> httpx.Response:
        return o.provision({})

    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(one, range(20)))
    assert [r.status_code for r in replies] == [200] * 20, [r.text for r in replies if r.status_code != 200]
    ports = [r.json()["host_http_port"] for r in replies]
    assert len(set(ports)) == 20
    assert len(o.containers(running_only=True)) == 20
    metrics = o.client.get("/metrics").text
    lag = [line for line in metrics.splitlines() if line.startswith("orch_event_loop_lag_max_seconds ")]
    assert lag, "the loop-lag gauge is exported"
    stall_ms = float(lag[0].split()[1]) * 1000
    print(f"\nlargest event-loop stall during 20 concurrent provisions: {stall_ms:.1f} ms")
    assert stall_ms < 250


def test_kill9_during_provisions_then_restart_adopts_or_reaps(orch: Any, tmp_path: Path) -> None:
    o = orch(MAX_CONCURRENT_PROVISIONS="10", MAX_REPLICAS="20")

    def one(_: int) -> int:
        try:
            return o.provision({"env": {"SIM_STARTUP_DELAY_S": "1"}}, timeout=30).status_code
        except httpx.HTTPError:
            return -1

    pool = ThreadPoolExecutor(10)
    futures = [pool.submit(one, i) for i in range(10)]
    wait_until(lambda: len(o.containers()) >= 3, timeout=30, what="some containers to exist")
    o.kill9()
    pool.shutdown(wait=True)
    assert len(futures) == 10
    # Restart on the same label, store and port.
    o.start()
    def consistent() -> bool:  # every container adopted as a ready engine, or removed (possibly all of them)
        return sorted(e["container_id"] for e in o.engines()) == o.containers(running_only=True)

    wait_until(consistent, timeout=30, what="/engines to equal docker ps")
    engines = o.engines()
    assert o.containers() == o.containers(running_only=True), "exited leftovers are reaped"
    ports = [e["port"] for e in engines]
    assert len(ports) == len(set(ports))
    for e in engines:
        assert get_status(e["port"])["result"]["playlist_loaded"] is True
    # New provisions never reuse a port that an adopted engine holds.
    r = o.provision({})
    assert r.status_code == 200 and r.json()["host_http_port"] not in ports


def test_container_removed_behind_our_back_leaves_the_state(orch: Any) -> None:
    o = orch(MONITOR_INTERVAL_S="30")
    cid = o.provision({}).json()["container_id"]
    subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)
    wait_until(
        lambda: all(e["container_id"] != cid for e in o.engines()),
        timeout=10,
        what="the removed engine to leave /engines (runtime events)",
    )
