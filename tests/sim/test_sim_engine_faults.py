"""The engine simulator's fault injection and its /__sim control API."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from simtools import SimProcess, port_open

from aceorch.sim import engine
from support import wait_until

CID = "90f7" + "a" * 32 + "9373"
CID2 = "0a48" + "b" * 32 + "8141"
STATUS = "/server/api?api_version=3&method=get_status"

StartEngine = Callable[..., SimProcess]


def path_of(url: str) -> str:
    split = urllib.parse.urlsplit(url)
    return split.path + ("?" + split.query if split.query else "")


def getstream(sim: SimProcess, content: str = CID, key: str = "id", **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = sim.get("/ace/getstream", params={"format": "json", key: content}, **kwargs).json()
    return result


def stat(sim: SimProcess, session: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = sim.get(path_of(session["stat_url"])).json()
    return result


def times_out(sim: SimProcess, path: str, timeout: float = 0.4) -> bool:
    try:
        sim.get(path, timeout=timeout)
    except httpx.ReadTimeout:
        return True
    return False


def test_startup_delay_keeps_the_port_closed(start_engine: StartEngine) -> None:
    started = time.monotonic()
    sim = start_engine({"SIM_STARTUP_DELAY_S": "0.8"}, ready=False)
    wait_until(lambda: sim.proc.poll() is None)
    assert not port_open(sim.port)  # refused, not hanging
    with pytest.raises(httpx.ConnectError):
        sim.get(STATUS)
    wait_until(lambda: port_open(sim.port), timeout=5)
    assert time.monotonic() - started >= 0.8
    assert sim.get(STATUS).status_code == 200


def test_hang_mode_answers_no_engine_endpoint_but_the_control_api(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_HANG": "1"})
    results: list[bool] = []
    # Several hung requests at once must not block anyone else.
    threads = [threading.Thread(target=lambda: results.append(times_out(sim, STATUS, 0.8))) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: sim.state()["counters"]["hung_requests"] == 4)
    started = time.monotonic()
    assert sim.state()["engine_mode"] == "hang"
    assert time.monotonic() - started < 0.5
    for thread in threads:
        thread.join()
    assert results == [True] * 4
    assert times_out(sim, "/webui/api/service?method=get_version")
    assert sim.post_state({"engine_mode": "ok"}).status_code == 200
    assert sim.get(STATUS).status_code == 200


def test_hang_ace_hangs_only_playback_endpoints(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_HANG": "ace"})
    assert sim.get(STATUS).json()["result"]["playlist_loaded"] is True
    assert sim.get("/server/api?api_version=3&method=get_network_connection_status").status_code == 200
    assert times_out(sim, f"/ace/getstream?format=json&id={CID}")


def test_hang_after_is_healthy_then_hangs(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_HANG_AFTER_S": "1.0"})
    started = time.monotonic()
    assert sim.get(STATUS).status_code == 200
    wait_until(lambda: times_out(sim, STATUS, 0.3), timeout=5)
    assert time.monotonic() - started >= 0.3
    assert sim.state()["engine_mode"] == "hang"


def test_crash_after_exits_with_status_1(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_CRASH_AFTER_S": "1.0"})
    assert sim.get(STATUS).status_code == 200
    assert sim.wait_exit(timeout=5) == 1
    assert not port_open(sim.port)


def test_crash_after_can_be_armed_at_run_time(start_engine: StartEngine) -> None:
    sim = start_engine()
    assert sim.post_state({"crash_after_s": 0.1}).json()["config"]["crash_after_s"] == 0.1
    assert sim.wait_exit(timeout=5) == 1


def test_no_peers_stays_in_prebuf_and_playback_never_answers(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2", "SIM_CONTENT_MODES": f'{{"{CID}": "no_peers"}}'})
    session = getstream(sim)["response"]
    ok_session = getstream(sim, CID2)["response"]
    wait_until(lambda: stat(sim, ok_session)["response"]["status"] == "dl")
    response = stat(sim, session)["response"]
    assert (response["status"], response["peers"], response["downloaded"]) == ("prebuf", 0, 0)
    assert times_out(sim, path_of(session["playback_url"]), 0.4)


def test_dead_with_peers_has_peers_but_no_data(start_engine: StartEngine) -> None:
    infohash = engine.derive_infohash(CID)
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2", "SIM_CONTENT_MODES": f'{{"{infohash.upper()}": "dead_with_peers"}}'})
    session = getstream(sim)["response"]
    ok_session = getstream(sim, CID2)["response"]  # started later, so its dl proves time_to_dl has passed
    wait_until(lambda: stat(sim, ok_session)["response"]["status"] == "dl")
    response = stat(sim, session)["response"]
    assert response["status"] == "prebuf" and response["peers"] > 0
    assert response["downloaded"] == 0 and response["speed_down"] == 0


def test_failed_content_errors_after_the_scaled_delay(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_SCALE": "0.05", "SIM_CONTENT_MODES": '{"*": "failed"}'})
    started = time.monotonic()
    assert getstream(sim) == {"response": None, "error": "failed to load content"}
    by_id = time.monotonic() - started
    assert by_id >= 0.2 * 0.9
    started = time.monotonic()
    assert getstream(sim, "c" * 40, key="infohash")["error"] == "failed to load content"
    assert time.monotonic() - started >= 1.4 * 0.9
    raw = sim.get("/ace/getstream", params={"id": CID})
    assert raw.status_code == 500 and raw.headers["Content-Type"] == "text/plain"
    assert sim.state()["counters"]["getstream_failed"] == 3


def test_malformed_ids_always_fail(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_CONTENT_MODES": '{"*": "ok"}'})
    assert getstream(sim, "not-a-hash")["error"] == "failed to load content"
    assert getstream(sim, "0" * 39)["error"] == "failed to load content"


def read_until_quiet(sim: SimProcess, content: str, quiet_s: float) -> tuple[int, str]:
    """Read the stream until it ends ("closed") or sends nothing for ``quiet_s`` ("stalled")."""
    received = 0
    try:
        with sim.client.stream("GET", content, timeout=httpx.Timeout(5, read=quiet_s)) as stream:
            for chunk in stream.iter_bytes():
                received += len(chunk)
    except httpx.ReadTimeout:
        return received, "stalled"
    return received, "closed"


def test_stall_streams_then_goes_silent_with_speed_zero(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2", "SIM_CONTENT_MODES": f'{{"{CID}": "stall:0.6"}}'})
    session = getstream(sim)["response"]
    wait_until(lambda: stat(sim, session)["response"]["status"] == "dl")
    content = path_of(sim.get(path_of(session["playback_url"])).headers["Location"])
    received, outcome = read_until_quiet(sim, content, 0.8)
    assert outcome == "stalled"
    assert received > 0
    response = stat(sim, session)["response"]
    assert response["status"] == "dl" and response["speed_down"] == 0


def test_cut_streams_then_closes_the_connection(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2", "SIM_CONTENT_MODES": f'{{"{CID}": "cut:0.5"}}'})
    session = getstream(sim)["response"]
    wait_until(lambda: stat(sim, session)["response"]["status"] == "dl")
    content = path_of(sim.get(path_of(session["playback_url"])).headers["Location"])
    received, outcome = read_until_quiet(sim, content, 3)
    assert outcome == "closed"
    assert received > 0


def test_content_mode_changes_apply_to_running_sessions(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2", "SIM_CONTENT_MODES": f'{{"{CID}": "no_peers"}}'})
    session = getstream(sim)["response"]
    wait_until(lambda: stat(sim, session)["response"]["status"] == "prebuf")
    new_state = sim.post_state({"content_modes": {CID: None, "*": "ok"}}).json()
    assert new_state["content_modes"] == {"*": "ok"}
    wait_until(lambda: stat(sim, session)["response"]["status"] == "dl")


def test_engine_modes_503_and_reset_still_leave_the_control_api(start_engine: StartEngine) -> None:
    sim = start_engine()
    sim.post_state({"engine_mode": "503"})
    response = sim.get(STATUS)
    assert response.status_code == 503 and response.headers["Content-Type"] == "text/plain"
    sim.post_state({"engine_mode": "reset"})
    with pytest.raises(httpx.TransportError):
        sim.get(STATUS)
    with socket.create_connection(("127.0.0.1", sim.port), timeout=2) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            assert raw.recv(100) == b""
        except ConnectionResetError:
            pass
    assert sim.state()["engine_mode"] == "reset"
    sim.post_state({"engine_mode": "ok"})
    assert sim.get(STATUS).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"engine_mode": "sleepy"},
        {"content_modes": {CID: "explode"}},
        {"content_modes": [1]},
        {"time_to_dl_s": -1},
        {"max_sessions": "two"},
        {"reset_counters": "yes"},
        {"unknown_field": 1},
        [1, 2],
    ],
)
def test_bad_control_input_gets_400_and_changes_nothing(start_engine: StartEngine, body: Any) -> None:
    sim = start_engine()
    before = sim.state()
    response = sim.client.post("/__sim/state", json=body)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    after = sim.state()
    assert (after["engine_mode"], after["content_modes"], after["config"]) == (
        before["engine_mode"],
        before["content_modes"],
        before["config"],
    )


def test_control_state_reports_config_and_resets_counters(start_engine: StartEngine) -> None:
    sim = start_engine({"CONF": "--https-port=45001\n--bind-all\n--log-debug=1", "P2P_PORT": "5914"})
    sim.get(STATUS)
    state = sim.state()
    assert state["config"]["http_port"] == sim.port
    assert state["config"]["https_port"] == 45001
    assert state["config"]["p2p_port"] == 5914
    assert state["config"]["bind_all"] is True
    assert state["config"]["ignored_flags"] == ["--log-debug=1"]
    assert state["config"]["time_to_dl_s"] == pytest.approx(9 * 0.05)
    assert state["counters"]["requests"]["get_status"] == 1
    updated = sim.post_state({"reset_counters": True, "time_to_dl_s": 2, "max_sessions": 3}).json()
    assert updated["counters"]["requests"]["get_status"] == 0
    assert (updated["config"]["time_to_dl_s"], updated["config"]["max_sessions"]) == (2, 3)


def test_restart_drops_sessions_closes_the_port_and_keeps_counters(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_PLAYLIST_DELAY_S": "0.3"})
    session = getstream(sim)["response"]
    wait_until(lambda: sim.get(STATUS).json()["result"]["playlist_loaded"])
    response = sim.client.post("/__sim/restart", json={"down_s": 0.6})
    assert response.status_code == 202
    wait_until(lambda: not port_open(sim.port), timeout=3)
    with pytest.raises(httpx.ConnectError):
        sim.get(STATUS)
    wait_until(lambda: port_open(sim.port), timeout=5)
    assert sim.get(STATUS).json()["result"]["playlist_loaded"] is False
    assert stat(sim, session)["error"] == "unknown playback session id"
    state = sim.state()
    assert state["sessions"] == []
    assert state["counters"]["sessions_opened"] == 1
    assert state["counters"]["sessions_dropped"] == 1
    assert sim.client.post("/__sim/restart", json={"down_s": -1}).status_code == 400
