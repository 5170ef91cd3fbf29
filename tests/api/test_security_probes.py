"""The hostile probes of a running service, rerun against the app on the in-memory runtime: each is refused with
its status, and none starts a container."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from aceorch.api.middleware import RequestContextMiddleware
from aceorch.runtime.fake import InMemoryRuntime

AUTH = {"Authorization": "Bearer test-key-123"}
NO_AUTH = {"Authorization": ""}
EVIL = {"Origin": "http://evil.example"}


def created(runtime: InMemoryRuntime) -> int:
    """How many containers the runtime was asked to create."""
    return runtime.call_names().count("create")


def refused(r: Any, status: int, *words: str) -> None:
    """``r`` has ``status`` and a ``{"detail": ...}`` body mentioning every word."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"detail"}, body
    text = json.dumps(body["detail"])
    for word in words:
        assert word in text, (word, text)


# ---------------------------------------------------------------- 1: no key, CORS, simple requests
@pytest.mark.parametrize("api_key", [None, "test-key-123"])
def test_a_cross_origin_simple_post_starts_nothing(app_client: Any, fake_runtime: InMemoryRuntime,
                                                   api_key: str | None) -> None:
    client = app_client(api_key=api_key)
    r = client.post("/scale/1", headers={**EVIL, "Content-Type": "text/plain"})
    refused(r, 415, "Content-Type", "application/json")
    assert "access-control-allow-origin" not in r.headers
    refused(client.post("/scale/1", headers=EVIL), 403, "CORS_ORIGINS")
    refused(client.post("/provision/acestream", content=b"{}", headers={**EVIL, "Content-Type": "application/json"}),
            403, "evil.example")
    preflight = client.options("/scale/1", headers={**EVIL, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    assert created(fake_runtime) == 0


def test_json_bodies_only_and_body_less_posts_still_work(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client()
    refused(client.post("/provision/acestream", content=b"{}"), 415, "missing Content-Type", "application/json")
    refused(client.post("/provision/acestream", content=b"{}", headers={"Content-Type": "text/plain"}), 415,
            "Content-Type")
    refused(client.post("/events/stream_ended", content=b"stream_id=x",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}), 415, "Content-Type")
    assert created(fake_runtime) == 0
    # no body and no Content-Type: as before
    assert client.post("/provision/acestream").status_code == 200
    assert client.post("/scale/0").status_code == 200
    assert client.post("/gc").status_code == 200
    # JSON with parameters, and the seed's own request
    r = client.post("/provision/acestream", content=b'{"labels":{"test":"stress"}}',
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
    # a same-origin page (the dashboard) passes the origin check
    r = client.post("/gc", headers={"Origin": "http://testserver"})
    assert r.status_code == 200, r.text


def test_listed_origins_get_cors_and_may_write(app_client: Any) -> None:
    client = app_client(cors_origins="https://panel.example, http://lan.example:8080/")
    r = client.options("/scale/0", headers={"Origin": "https://panel.example", "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "authorization,content-type"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://panel.example"
    r = client.post("/scale/0", headers={"Origin": "http://lan.example:8080"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://lan.example:8080"
    r = client.post("/scale/0", headers=EVIL)
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------- 2: what a key holder may ask for
@pytest.mark.parametrize("body, where", [
    ({"env": {"PYTHONWARNINGS": "ignore::0:os.system('id > /tmp/pwned')"}}, "PYTHONWARNINGS"),
    ({"env": {"BROWSER": "sh -c id"}}, "BROWSER"),
    ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, "LD_PRELOAD"),
    ({"env": {"PATH": "/tmp"}}, "PATH"),
    ({"env": {"PERL5OPT": "-e1"}}, "PERL5OPT"),
    ({"env": {"BASH_ENV": "/tmp/x"}}, "BASH_ENV"),
    ({"env": {"NODE_OPTIONS": "--require /tmp/x"}}, "NODE_OPTIONS"),
    ({"env": {"UNLISTED": "1"}}, "ENGINE_ENV_ALLOW"),
    ({"env": {"SIM_MODE": "a\u0000b"}}, "NUL"),
    ({"env": {"SIM_MODE": "a\nb"}}, "line break"),
    ({"env": {"CONF": "--http-port=0"}}, "--http-port"),
    ({"env": {"CONF": "--http-port=99999"}}, "--http-port"),
    ({"env": {"CONF": "--bind-all\nrm -rf /"}}, "--option"),
    ({"image": "aceorch/orchestrator:latest"}, "ALLOWED_IMAGES"),
    ({"image": "sha256:" + "a" * 64}, "ALLOWED_IMAGES"),
    ({"host_port": 8080}, "PORT_RANGE_HOST"),
    ({"privileged": True}, "extra_forbidden"),
    ({"volumes": ["/:/host"]}, "extra_forbidden"),
    ({"command": ["sh"]}, "extra_forbidden"),
    ({"labels": {"host.https_port": "19001"}}, "reserved"),
    ({"labels": {"aceorch.p2p_port": "8621"}}, "reserved"),
    ({"labels": {"acestream.http_port": "40000"}}, "reserved"),
    ({"labels": {"com.docker.compose.project": "x"}}, "reserved"),
    ({"labels": {"ondemand.app": "myservice"}}, "CONTAINER_LABEL"),
    ({"labels": {"big": "x" * 900_000}}, "1024"),
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "64"),
    ({"labels": {"k" * 129: "v"}}, "128"),
    ({"host_port": 1e309}, "host_port"),
    ({"host_port": float("nan")}, "host_port"),
])
def test_provision_refuses_what_it_may_not_ask_for(app_client: Any, fake_runtime: InMemoryRuntime,
                                                   body: dict[str, Any], where: str) -> None:
    client = app_client()
    content = json.dumps(body).replace("Infinity", "1e309").encode()  # the probe's 1e309 and NaN, verbatim
    r = client.post("/provision/acestream", content=content, headers={"Content-Type": "application/json"})
    refused(r, 422, where)
    assert created(fake_runtime) == 0


@pytest.mark.parametrize("body, where", [
    ({"image": "aceorch/orchestrator:latest"}, "ALLOWED_IMAGES"),
    ({"ports": {"80/tcp": 8080}}, "PORT_RANGE_HOST"),
    ({"ports": {"99999/tcp": None}}, "65535"),
    ({"ports": {"80/tcp": 1e309}}, "ports"),
    ({"env": {"PYTHONSTARTUP": "/tmp/x"}}, "PYTHONSTARTUP"),
    ({"privileged": True}, "extra_forbidden"),
    ({"labels": {"aceorch.kind": "engine"}}, "reserved"),
])
def test_generic_provision_refuses_it_too(app_client: Any, fake_runtime: InMemoryRuntime,
                                          body: dict[str, Any], where: str) -> None:
    client = app_client()
    content = json.dumps(body).replace("Infinity", "1e309").encode()
    refused(client.post("/provision", content=content, headers={"Content-Type": "application/json"}), 422, where)
    assert created(fake_runtime) == 0


def test_what_stays_allowed(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client(allowed_images="busybox", engine_env_allow="CONF,SIM_*,EXTRA_ONE")
    r = client.post("/provision/acestream", json={"env": {"CONF": "--http-port=40100\n--bind-all", "SIM_X": "1",
                                                          "EXTRA_ONE": "yes"},
                                                  "labels": {"team": "a", "stream_key": "k"}, "host_port": 19100})
    assert r.status_code == 200, r.text
    assert r.json()["host_http_port"] == 19100 and r.json()["container_http_port"] == 40100
    assert client.post("/provision/acestream", json={"image": "acestream/engine:latest"}).status_code == 200
    r = client.post("/provision", json={"image": "busybox", "ports": {"80/tcp": 19200}})
    assert r.status_code == 200, r.text
    assert created(fake_runtime) == 3


# ---------------------------------------------------------------- 3: reads need the key; secrets masked
def test_reads_need_the_key_and_secret_labels_are_masked(app_client: Any) -> None:
    client = app_client()
    eng = client.post("/provision/acestream", json={"labels": {"db_password": "hunter2", "API_TOKEN": "t0k3n",
                                                               "team": "blue"}}).json()
    cid = eng["container_id"]
    for path in ("/engines", f"/engines/{cid}", f"/containers/{cid}", "/streams", "/health/status", "/vpn/status",
                 "/debug/status", "/debug/stress", "/metrics", "/streams/x/stats"):
        refused(client.get(path, headers=NO_AUTH), 401, "missing bearer token")
        refused(client.get(path, headers={"Authorization": "Bearer wrong"}), 403, "invalid token")
    for path in ("/healthz", "/readyz", "/orchestrator/status", "/panel/"):
        assert client.get(path, headers=NO_AUTH).status_code == 200, path
    for path in ("/engines", f"/engines/{cid}", f"/containers/{cid}", "/by-label?key=team&value=blue"):
        r = client.get(path)
        assert r.status_code == 200 and "hunter2" not in r.text and "t0k3n" not in r.text, (path, r.text)
        assert '"db_password":"***"' in r.text and '"API_TOKEN":"***"' in r.text and '"team":"blue"' in r.text


def test_metrics_auth_none_opens_metrics_only(app_client: Any) -> None:
    client = app_client(metrics_auth="none")
    assert client.get("/metrics", headers=NO_AUTH).status_code == 200
    assert client.get("/engines", headers=NO_AUTH).status_code == 401


def test_without_a_key_reads_stay_open(app_client: Any) -> None:
    client = app_client(api_key=None)
    assert client.get("/engines", headers=NO_AUTH).status_code == 200
    assert client.get("/metrics", headers=NO_AUTH).status_code == 200


# ---------------------------------------------------------------- 7: bad input never makes a 500
def test_a_chunked_body_over_1_mib_is_413(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client()

    def chunks() -> Iterator[bytes]:
        yield b'{"labels": {"a": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    r = client.post("/provision/acestream", content=chunks(), headers={"Content-Type": "application/json"})
    refused(r, 413, "too large")
    assert created(fake_runtime) == 0


def test_stream_labels_are_capped(app_client: Any) -> None:
    client = app_client()
    event = {"engine": {"host": "127.0.0.1", "port": 19000}, "stream": {"key_type": "content_id", "key": "k"},
             "session": {"playback_session_id": "p"}, "labels": {"big": "x" * 900_000}}
    refused(client.post("/events/stream_started", json=event), 422, "1024")


async def test_a_body_that_does_not_arrive_is_408() -> None:
    """A client sends half a body and stalls: the middleware answers 408 after REQUEST_BODY_TIMEOUT_S."""
    reached = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.set()

    sent: list[dict[str, Any]] = []
    stall = asyncio.Event()
    parts = [{"type": "http.request", "body": b'{"labels":', "more_body": True}]

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop(0)
        await stall.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    mw = RequestContextMiddleware(app, record=lambda *a, **k: None, body_timeout_s=0.2)
    scope = {"type": "http", "method": "POST", "path": "/provision/acestream",
             "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]}
    await asyncio.wait_for(mw(scope, receive, send), timeout=5)
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert "within 0.2 s" in json.loads(sent[1]["body"])["detail"]
    assert not reached.is_set()


def test_the_validation_body_of_infinity_is_json(app_client: Any) -> None:
    client = app_client()
    r = client.post("/provision/acestream", content=b'{"host_port": -1e309, "labels": {"a": NaN}}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert all(isinstance(e["input"], (str, int, dict, list, type(None))) for e in r.json()["detail"])


def test_every_response_of_the_probes_carries_a_request_id(app_client: Any) -> None:
    client = app_client()
    r = client.post("/scale/1", headers={**EVIL, "Content-Type": "text/plain"})
    assert r.headers.get("x-request-id")


def test_a_stalled_body_over_a_real_socket_gets_408_and_the_connection_closes(
    make_settings: Any, tmp_path: Any
) -> None:
    """The same through uvicorn: half a body, then nothing; the answer comes after the timeout, then EOF."""
    import socket
    import threading
    import time

    import uvicorn

    from aceorch.api import create_app
    from support import wait_until

    settings = make_settings(api_key="k", runtime="docker", request_body_timeout_s=0.5,
                             db_url=f"sqlite:///{tmp_path}/o.db", debug_log_dir=str(tmp_path / "d"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, runtime=InMemoryRuntime()), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "uvicorn to start", timeout=10)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"POST /provision/acestream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"labels\":")
            begin = time.monotonic()
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            took = time.monotonic() - begin
        assert data.startswith(b"HTTP/1.1 408") and b"connection: close" in data.lower(), data
        assert b"within 0.5 s" in data and 0.4 <= took < 4, took
    finally:
        server.should_exit = True
        thread.join(10)
