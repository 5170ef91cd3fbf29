"""R5: every Bearer route (reads included) refuses a missing key (401) and a wrong one (403), secret-looking label
values leave every response masked, and the key never reaches a log line, a debug record, a bundle or the SQLite
store of the run."""

from __future__ import annotations

import io
import re
import tarfile
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from chaos_helpers import run_of
from orchestrator_proc import Orchestrator

pytestmark = pytest.mark.chaos

STREAM_EVENT = {
    "engine": {"host": "localhost", "port": 1},
    "stream": {"key_type": "content_id", "key": "r5"},
    "session": {"playback_session_id": "p1", "stat_url": "", "command_url": "", "is_live": 1},
}

#: (method, path, a valid body) of every route that needs the key: all but OPEN_ROUTES.
BEARER_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/engines", None),
    ("GET", "/engines/acestream-999", None),
    ("POST", "/engines/acestream-999/health-report", {"reason": "r5"}),
    ("GET", "/containers/acestream-999", None),
    ("GET", "/streams", None),
    ("GET", "/streams/r5%7Cp1/stats", None),
    ("GET", "/health/status", None),
    ("GET", "/vpn/status", None),
    ("GET", "/debug/status", None),
    ("GET", "/debug/stress", None),
    ("GET", "/metrics", None),
    ("POST", "/provision/acestream", {}),
    ("POST", "/provision", {}),
    ("POST", "/scale/0", None),
    ("POST", "/gc", None),
    ("DELETE", "/containers/acestream-999", None),
    ("GET", "/by-label?key=a&value=b", None),
    ("POST", "/events/stream_started", STREAM_EVENT),
    ("POST", "/events/stream_ended", {"stream_id": "r5|p1"}),
    ("POST", "/health/circuit-breaker/reset", None),
    ("POST", "/debug/enable", None),
    ("POST", "/debug/disable", None),
    ("GET", "/debug/bundle", None),
    ("DELETE", "/streams/r5%7Cp1", None),
]

#: What proxies and probes read keyless (no label values), and the dashboard's files.
OPEN_ROUTES = ["/orchestrator/status", "/healthz", "/readyz", "/panel/"]
#: The embedded proxy's viewer routes (``/ace/...``, the playlist): guarded by PROXY_API_KEY (tests/proxy), not API_KEY.
PROXY_TOKEN_PREFIXES = ("/ace/", "/playlist.m3u")


def template(path: str) -> str:
    first = path.split("?")[0]
    known = {"/scale/0": "/scale/{demand}", "/containers/acestream-999": "/containers/{container_id}",
             "/streams/r5%7Cp1": "/streams/{stream_id}", "/engines/acestream-999": "/engines/{container_id}",
             "/engines/acestream-999/health-report": "/engines/{container_id}/health-report",
             "/streams/r5%7Cp1/stats": "/streams/{stream_id}/stats"}
    for concrete, templ in known.items():
        if first == concrete:
            return templ
    return first


def test_bearer_routes_refuse_and_the_key_never_leaks(orch_factory: Callable[..., Orchestrator]) -> None:
    key = f"R5key-{uuid.uuid4().hex}"
    wrong = f"R5wrong-{uuid.uuid4().hex}"
    o = orch_factory(api_key=key, DEBUG_MODE="true", LOG_LEVEL="DEBUG")

    # Every operation of the OpenAPI document but the open ones is checked: the mutating ones are listed above
    # (with a valid body; a new one must be added there), every other read is taken from the document.
    spec = o.client.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if p not in OPEN_ROUTES and not p.startswith(PROXY_TOKEN_PREFIXES)}
    covered = {(m, template(p)) for m, p, _ in BEARER_ROUTES}
    mutating = {(m, p) for m, p in operations if m != "GET"}
    assert mutating <= covered, f"mutating routes not covered by R5: {sorted(mutating - covered)}"
    routes = BEARER_ROUTES + [("GET", re.sub(r"\{[^}]+\}", "acestream-999", p), None)
                              for m, p in sorted(operations - covered)]

    bare = httpx.Client(base_url=o.client.base_url, timeout=60)  # o.client sends the key on every request
    failures: list[str] = []
    for method, path, body in routes:
        cases: list[tuple[str, dict[str, str], Any, int, str]] = [
            ("no header", {}, body, 401, "missing bearer token"),
            ("Basic scheme", {"Authorization": f"Basic {key}"}, body, 401, "missing bearer token"),
            ("wrong key", {"Authorization": f"Bearer {wrong}"}, body, 403, "invalid token"),
            ("key with a suffix", {"Authorization": f"Bearer {key}x"}, body, 403, "invalid token"),
            ("lower-case scheme, wrong key", {"Authorization": f"bearer {wrong}"}, body, 403, "invalid token"),
        ]
        if method == "POST" and body is not None:
            # Auth runs before validation: an unauthenticated bad body is still 401/403, never 422.
            cases.append(("no header, bad body", {}, {"labels": [1], "engine": 5}, 401, "missing bearer token"))
            cases.append(("wrong key, bad body", {"Authorization": f"Bearer {wrong}"}, {"labels": [1], "engine": 5},
                          403, "invalid token"))
        for what, headers, payload, status, detail in cases:
            r = bare.request(method, path, headers=headers, json=payload)
            got = (r.status_code, r.json() if r.headers.get("content-type", "").startswith("application/json")
                   else r.text)
            if got != (status, {"detail": detail}):
                failures.append(f"{method} {path} ({what}): expected {status} {detail!r}, got {got}")
            elif status == 401 and r.headers.get("www-authenticate", "").lower() != "bearer":
                failures.append(f"{method} {path} ({what}): 401 without WWW-Authenticate: Bearer")
    assert not failures, "\n".join(failures)

    # Open endpoints ignore Authorization, even a wrong key.
    for path in OPEN_ROUTES:
        r = bare.get(path, headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 200, (path, r.status_code, r.text)

    # With the key: exercise the routes that log and record most, so a leak has every chance to show.
    auth = o.auth
    assert o.client.get("/engines", headers=auth).status_code == 200
    prov = o.client.post("/provision/acestream", headers=auth,
                         json={"labels": {"who": "r5", "db_password": "hunter2-r5"}})
    assert prov.status_code == 200, prov.text
    # Secret-looking label values leave every response masked, as in the debug log.
    cid = prov.json()["container_id"]
    for path in ("/engines", f"/engines/{cid}", f"/containers/{cid}", "/by-label?key=who&value=r5"):
        r = o.client.get(path, headers=auth)
        assert r.status_code == 200 and "hunter2-r5" not in r.text and '"db_password":"***"' in r.text, (path, r.text)
    port = prov.json()["host_http_port"]
    event = {**STREAM_EVENT, "engine": {"host": "localhost", "port": port}}
    assert o.client.post("/events/stream_started", headers=auth, json=event).status_code == 200
    assert o.client.post("/events/stream_ended", headers=auth, json={"stream_id": "r5|p1"}).status_code == 200
    assert o.client.get("/by-label?key=who&value=r5", headers=auth).status_code == 200
    assert o.client.post("/health/circuit-breaker/reset", headers=auth).status_code == 200
    assert o.client.post("/gc", headers=auth).status_code == 200
    assert o.client.post("/debug/disable", headers=auth).json()["changed"] is True
    assert o.client.post("/debug/enable", headers=auth).json()["changed"] is True
    bundle = o.client.get("/debug/bundle", headers=auth)
    assert bundle.status_code == 200, bundle.text
    assert o.client.delete(f"/containers/{prov.json()['container_id']}", headers=auth).status_code == 200
    o.stop()

    # The bundle: every member, manifest included.
    leaks: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(bundle.content), mode="r:gz") as tar:
        members = tar.getmembers()
        assert any(m.name.endswith("/manifest.json") for m in members)
        for m in members:
            f = tar.extractfile(m)
            data = f.read() if f else b""
            for secret in (key, wrong):
                if secret.encode() in data:
                    leaks.append(f"bundle member {m.name} holds {'the key' if secret == key else 'the wrong key'}")
    # Every file of the run: the service log, every debug file, the SQLite store (and its journals).
    run = run_of(o)
    files = [p for p in run.dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert "aceorch.log" in names and "orchestrator.db" in names
    assert len(list(run.debug_dir.glob("*.jsonl"))) >= 20, "two debug sessions' files"
    for p in files:
        data = p.read_bytes()
        for secret in (key, wrong):
            if secret.encode() in data:
                leaks.append(f"{p.relative_to(run.dir)} holds {'the key' if secret == key else 'the wrong key'}")
    assert not leaks, leaks
    assert "Bearer" not in o.logs()
    bare.close()


@pytest.mark.docker
def test_a_web_page_cannot_drive_a_keyless_orchestrator(
    docker_engine: None, orch_factory: Callable[..., Orchestrator]
) -> None:
    """The hostile probe: a "simple" cross-origin POST (no preflight) to an orchestrator without API_KEY."""
    from orchestrator_proc import docker_ids

    o = orch_factory("docker", api_key="", TARGET_IMAGE="aceorch/engine-sim:latest")
    evil = {"Origin": "http://evil.example"}
    r = o.client.post("/scale/1", headers={**evil, "Content-Type": "text/plain"})
    assert r.status_code == 415 and "Content-Type" in r.json()["detail"], r.text
    assert "access-control-allow-origin" not in r.headers
    # the same page without a Content-Type (a body-less "simple" request) is refused for its origin
    r = o.client.post("/scale/1", headers=evil)
    assert r.status_code == 403 and "CORS_ORIGINS" in r.json()["detail"], r.text
    assert "access-control-allow-origin" not in r.headers
    r = o.client.options("/scale/1", headers={**evil, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    assert o.client.get("/orchestrator/status").json()["engines"]["total"] == 0
    assert docker_ids(o.label) == []
