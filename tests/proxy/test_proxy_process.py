"""The embedded proxy against simulator engines of the process runtime (no Docker): streaming and the stream
state, the token, the refusals and linger's end of the stream."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streams"))
from aceorch_live import AUTH, LiveServer, live_server, live_settings  # noqa: E402
from viewers import stalled_viewer  # noqa: E402

from support import wait_until  # noqa: E402

CONTENT = "0a4848271c91ce2d8965ce416267c25047dc8141"


@pytest.fixture(autouse=True)
def fast_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine processes inherit the environment: playback starts half a second after getstream."""
    monkeypatch.setenv("SIM_TIME_TO_DL_S", "0.5")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``serve(**settings)``: an aceorch (process runtime) with those settings, stopped at teardown."""
    with ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(live_server(live_settings(tmp_path, **overrides)))


def read_some(url: str, n: int, **kw: Any) -> tuple[httpx.Response, bytes]:
    """Open a stream, read at least ``n`` bytes, leave."""
    with httpx.stream("GET", url, timeout=30, **kw) as resp:
        data = b""
        if resp.status_code == 200:
            for chunk in resp.iter_raw():
                data += chunk
                if len(data) >= n:
                    break
        else:
            data = resp.read()
        return resp, data


def test_a_viewer_gets_packets_and_the_stream_is_in_the_orchestrators_state(serve: Callable[..., LiveServer]) -> None:
    server = serve(proxy_linger_s=1)
    resp, data = read_some(f"{server.url}/ace/getstream?id={CONTENT}&pid=mine", 188 * 100)
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/MP2T"
    assert "content-length" not in resp.headers
    assert data[0] == 0x47 and data[188] == 0x47 and data[1:3] == b"\x40\x00"  # starts on a PAT
    [stream] = server.get("/streams")
    assert stream["key"] == CONTENT and stream["key_type"] == "content_id" and stream["labels"] == {"proxy": "aceorch"}
    [engine] = server.get("/engines")
    assert engine["container_id"] == stream["container_id"]
    status = server.get("/ace/status")
    assert status["status"] == "ok" and status["sessions_started"] == 1 and status["bytes_in"] > 0
    # The viewer left: after PROXY_LINGER_S the session stops and the stream ends with no_viewers.
    ended = wait_until(lambda: [s for s in server.get("/streams") if s["status"] == "ended"], timeout=15)
    assert ended[0]["end_reason"] == "no_viewers"
    assert server.get("/ace/status")["streams"] == 0


def test_a_request_without_a_source_is_a_400(serve: Callable[..., LiveServer]) -> None:
    server = serve()
    resp = httpx.get(f"{server.url}/ace/getstream?pid=1", timeout=10)
    assert resp.status_code == 400 and resp.json()["code"] == "missing_source"


def test_a_channel_with_no_engine_to_be_had_is_a_503_with_retry_after(serve: Callable[..., LiveServer]) -> None:
    server = serve(max_replicas=1)
    with httpx.stream("GET", f"{server.url}/ace/getstream?id={CONTENT}", timeout=30) as first:
        assert first.status_code == 200
        next(first.iter_raw())
        resp = httpx.get(f"{server.url}/ace/getstream?infohash={'ab' * 20}", timeout=30)
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    body = resp.json()
    assert body["code"] == "max_capacity" and body["error"] == "provisioning_blocked"


def test_proxy_api_key_is_checked_as_a_token(serve: Callable[..., LiveServer]) -> None:
    server = serve(proxy_api_key="tok-1")
    assert httpx.get(f"{server.url}/ace/status", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/ace/status?token=nope", timeout=10).status_code == 403
    assert httpx.get(f"{server.url}/ace/getstream?id={CONTENT}", timeout=10).status_code == 401
    ok = httpx.get(f"{server.url}/ace/status?token=tok-1", timeout=10)
    assert ok.status_code == 200 and ok.json()["status"] == "ok"


def test_proxy_streams_needs_the_api_key(serve: Callable[..., LiveServer]) -> None:
    server = serve()
    assert httpx.get(f"{server.url}/proxy/streams", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/proxy/streams", headers={"Authorization": "Bearer x"},
                     timeout=10).status_code == 403
    assert httpx.get(f"{server.url}/proxy/streams", headers=AUTH, timeout=10).json() == []


def test_a_slow_viewer_is_moved_to_the_live_edge_and_does_not_slow_the_others(
    serve: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIM_STREAM_KBPS", "3000")
    server = serve(proxy_buffer_mb=0.25, proxy_client_stall_s=60)
    path = f"/ace/getstream?id={CONTENT}"
    port = int(server.url.rsplit(":", 1)[1])
    done = threading.Event()
    slow = stalled_viewer(port, path)

    def trickle() -> None:  # about 0.6 MB/s: a fifth of the stream's rate
        while not done.wait(0.05):
            try:
                slow.recv(32768)
            except OSError:
                return

    reader = threading.Thread(target=trickle, daemon=True)
    reader.start()
    try:
        with httpx.stream("GET", f"{server.url}{path}", timeout=30) as fast:
            chunks = fast.iter_raw()
            got = 0
            began = time.monotonic()

            def lagged() -> bool:
                nonlocal got
                for _ in range(10):
                    got += len(next(chunks))
                [stream] = server.get("/proxy/streams", headers=AUTH)
                return bool(stream["lagged"] >= 1)

            wait_until(lagged, timeout=60, interval=0.01, what="the slow viewer moved to the live edge")
            elapsed = time.monotonic() - began
            [stream] = server.get("/proxy/streams", headers=AUTH)
    finally:
        done.set()
        slow.close()
        reader.join(5)
    assert stream["clients_total"] == 2 and stream["stalled"] == 0
    assert got / elapsed > 2_000_000  # the fast viewer kept the stream's rate (3 MB/s) meanwhile
