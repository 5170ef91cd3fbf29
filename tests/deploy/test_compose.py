"""The shipped compose files, really run: docker-compose up, the seed's curl loop, restart with DEBUG_MODE, down.

Both tests follow the seed's Steps 1-3 (edit .env, `docker-compose restart orchestrator`, the 5 x POST loop with
`Authorization: Bearer your-api-key`) against the orchestrator image built offline, with the engine simulator
as TARGET_IMAGE and, for VPN mode, the Gluetun simulator in place of qmcgaw/gluetun.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "seed"))
from deploy_helpers import ComposeProject, docker, http, http_ok, inspect
from seedblocks import find  # noqa: E402

from support import wait_until  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

DEBUG_LINE = "Debug mode enabled. Logs will be written to: ./debug_logs"
SEED_FILES = ("session", "provisioning", "health", "vpn", "stress", "performance")
SESSION_FILE = re.compile(r"^(\d{8}_\d{6})_([a-z_]+)\.jsonl$")


def _engine_status(port: int) -> bool:
    return http_ok(f"http://127.0.0.1:{port}/server/api?api_version=3&method=get_status")


def _provision(project: ComposeProject, labels: dict[str, str]) -> tuple[int, dict[str, str], object]:
    return http("POST", f"{project.base_url}/provision/acestream", {"labels": labels}, headers=project.auth)


def _engines(project: ComposeProject) -> list[dict[str, object]]:
    status, _, body = http("GET", f"{project.base_url}/engines", headers=project.auth)
    assert status == 200 and isinstance(body, list), (status, body)
    return body


def _sessions(folder: Path) -> dict[str, set[str]]:
    """session prefix -> categories present."""
    found: dict[str, set[str]] = {}
    for path in folder.iterdir():
        match = SESSION_FILE.match(path.name)
        if match:
            found.setdefault(match.group(1), set()).add(match.group(2))
    return found


def _readable_as(uid: int, gid: int, path: Path) -> bool:
    """True when ``path`` can be read by uid:gid with no supplementary groups (the host user, not root)."""
    if os.getuid() == uid:
        return os.access(path, os.R_OK)
    result = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "cat", str(path)],
        capture_output=True, timeout=10, check=False,
    )
    return result.returncode == 0


def test_compose_up_provision_restart_with_debug_mode_and_down(
    compose_project: Callable[..., ComposeProject],
) -> None:
    project = compose_project()

    # `docker-compose up -d`: the orchestrator container runs as the host user (plus the socket's group).
    project.compose("up", "-d", "--no-build")
    wait_until(lambda: http_ok(f"{project.base_url}/healthz"), "the orchestrator's /healthz", timeout=45)
    orch = inspect(project.orchestrator)
    assert orch["Config"]["User"] == f"{project.uid}:{project.gid}"
    assert str(project.tools.docker_gid) in (orch["HostConfig"]["GroupAdd"] or [])
    assert orch["Config"]["WorkingDir"] == "/app"
    assert "ACEORCH_IN_CONTAINER=1" in orch["Config"]["Env"]
    mounts = {m["Destination"]: m for m in orch["Mounts"]}
    assert mounts["/app/.env"]["RW"] is False
    assert mounts["/var/run/docker.sock"]["Source"] == "/var/run/docker.sock"
    assert Path(mounts["/app/debug_logs"]["Source"]) == project.directory / "debug_logs"
    assert DEBUG_LINE not in project.logs()
    assert list((project.directory / "debug_logs").iterdir()) == []

    # Seed Step 3: five provisions from the host, through the mounted socket.
    provisioned: dict[str, dict[str, object]] = {}
    for _ in range(5):
        status, _, body = _provision(project, {"test": "stress"})
        assert status == 200, body
        assert isinstance(body, dict)
        provisioned[str(body["container_id"])] = body
    assert len(provisioned) == 5
    assert project.engine_ids() == set(provisioned)

    started_at: dict[str, str] = {}
    for cid, answer in provisioned.items():
        info = inspect(cid)
        started_at[cid] = info["State"]["StartedAt"]
        assert info["State"]["Running"] is True
        assert info["Config"]["Labels"][project.label[0]] == project.label[1]
        assert info["Config"]["Labels"]["test"] == "stress"
        assert info["Config"]["Image"] == "aceorch/engine-sim:latest"
        assert project.network in info["NetworkSettings"]["Networks"]
        # Each answers on its host port, published by Docker.
        assert _engine_status(int(str(answer["host_http_port"]))), answer

    # /engines lists them, advertised as <container name>:<container port> (ENGINE_ADVERTISE_HOST=auto in the image).
    listed = {str(e["container_id"]): e for e in _engines(project)}
    assert set(listed) == set(provisioned)
    for cid, engine in listed.items():
        assert engine["host"] == engine["container_name"] == provisioned[cid]["container_name"]
        assert engine["port"] == provisioned[cid]["container_http_port"]

    # The image's HEALTHCHECK (python urllib on /healthz) turns the container healthy.
    wait_until(
        lambda: inspect(project.orchestrator)["State"].get("Health", {}).get("Status") == "healthy",
        "the orchestrator container's health to be healthy",
        timeout=60,
        interval=0.5,
    )

    # Seed Steps 1-2: DEBUG_MODE=true into .env, then `docker-compose restart orchestrator`.
    project.set_env(DEBUG_MODE="true")
    orch_id = orch["Id"]
    seed_restart = find("bash", "docker-compose restart orchestrator").code.splitlines()[0]
    assert seed_restart == "docker-compose restart orchestrator"
    project.shell(seed_restart)  # verbatim, as the user types it
    assert inspect(project.orchestrator)["Id"] == orch_id  # restarted, not recreated: the .env mount did it
    wait_until(lambda: DEBUG_LINE in project.logs(), "the debug-mode line in the logs", timeout=45)
    wait_until(lambda: http_ok(f"{project.base_url}/healthz"), "the orchestrator's /healthz after restart", timeout=45)

    # A new session file set in the mounted folder, owned by and readable for the host user.
    folder = project.directory / "debug_logs"
    sessions = wait_until(
        lambda: {k: v for k, v in _sessions(folder).items() if set(SEED_FILES) <= v}, "a session file set", timeout=30
    )
    assert len(sessions) == 1, sessions
    for path in folder.iterdir():
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (project.uid, project.gid), path
        assert _readable_as(project.uid, project.gid, path), path

    # The running engines were adopted: same containers, never restarted, listed again, still answering.
    listed_after = wait_until(
        lambda: {str(e["container_id"]) for e in _engines(project)} == set(provisioned),
        "the adopted engines in /engines",
        timeout=30,
    )
    assert listed_after
    assert project.engine_ids() == set(provisioned)
    for cid, answer in provisioned.items():
        assert inspect(cid)["State"]["StartedAt"] == started_at[cid]
        assert _engine_status(int(str(answer["host_http_port"])))
    assert "adopted running engine" in project.logs()

    # `docker-compose down` removes what compose created (the orchestrator container) and nothing of aceorch's:
    # the engines keep running (adopted at the next `up`), and the external network stays.
    project.compose("down", "--timeout", "10")
    assert docker("inspect", project.orchestrator, check=False).returncode != 0
    assert project.engine_ids() == set(provisioned)
    assert all(inspect(cid)["State"]["Running"] for cid in provisioned)
    assert docker("network", "inspect", project.network, check=False).returncode == 0


def test_compose_gluetun_engines_share_its_namespace_and_vpn_flap_blocks_provisioning(
    compose_project: Callable[..., ComposeProject],
) -> None:
    project = compose_project(vpn=True)
    project.compose("up", "-d", "--no-build")
    wait_until(lambda: http_ok(f"{project.base_url}/healthz"), "the orchestrator's /healthz", timeout=45)
    gluetun = inspect(project.gluetun)
    assert gluetun["Config"]["Image"] == "aceorch/gluetun-sim:latest"
    control = f"http://127.0.0.1:{project.gluetun_port}"

    def vpn_connected() -> object:
        status, _, body = http("GET", f"{project.base_url}/vpn/status", headers=project.auth)
        return status == 200 and isinstance(body, dict) and body.get("connected")

    wait_until(vpn_connected, "aceorch to see the VPN connected", timeout=30)

    ids: list[str] = []
    for _ in range(2):
        status, _, body = _provision(project, {"test": "stress"})
        assert status == 200, body
        assert isinstance(body, dict)
        ids.append(str(body["container_id"]))
        # VPN mode: the pool port on both sides, published on the Gluetun container.
        assert body["host_http_port"] == body["container_http_port"]
        assert _engine_status(int(str(body["host_http_port"])))
    for cid in ids:
        info = inspect(cid)
        assert info["HostConfig"]["NetworkMode"] == f"container:{gluetun['Id']}"
        assert info["Config"]["Labels"][project.label[0]] == project.label[1]
    listed = {str(e["container_id"]): e for e in _engines(project)}
    assert set(listed) == set(ids)
    assert {e["host"] for e in listed.values()} == {project.gluetun}

    # VPN flap: down -> 503 vpn_disconnected (with Retry-After), up -> 200 again.
    status, _, _ = http("POST", f"{control}/__sim/state", {"vpn": "down"})
    assert status == 200
    wait_until(lambda: not vpn_connected(), "aceorch to see the VPN down", timeout=30)
    status, headers, body = _provision(project, {"test": "stress"})
    assert status == 503, body
    assert isinstance(body, dict)
    assert body["detail"]["code"] == "vpn_disconnected"
    assert "retry-after" in {k.lower() for k in headers}
    assert project.engine_ids() == set(ids)

    status, _, _ = http("POST", f"{control}/__sim/state", {"vpn": "up"})
    assert status == 200
    wait_until(vpn_connected, "aceorch to see the VPN up again", timeout=30)
    status, _, body = _provision(project, {"test": "stress"})
    assert status == 200, body
    assert isinstance(body, dict)
    assert inspect(str(body["container_id"]))["HostConfig"]["NetworkMode"] == f"container:{gluetun['Id']}"
    assert _engine_status(int(str(body["host_http_port"])))
