"""Helpers of the deployment tests: a compose project in a temporary directory, Docker and HTTP probes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "your-api-key"  # the seed's curl loop sends exactly this
#: Environment names the compose files substitute; the developer's own values must not leak into a test.
COMPOSE_VARS = (
    "UID", "GID", "DOCKER_GID", "APP_PORT", "DOCKER_NETWORK", "VPN_ENGINE_PORTS", "GLUETUN_CONTROL_HOST_PORT",
    "GLUETUN_API_PORT", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "ACEORCH_ORCH_CONTEXT",
)


@dataclass(frozen=True)
class DeployTools:
    compose: list[str]
    docker_gid: int


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def inspect(container: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker("inspect", container).stdout)
    return data[0]


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON or text); never raises for HTTP error statuses."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, dict(exc.headers), exc.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode(errors="replace")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_block(size: int, rng: Any) -> int:
    """First port of ``size`` consecutive ports, all free now, in 20000-39999 (clear of aceorch's other ranges)."""
    for _ in range(200):
        start = rng.randrange(20000, 40000 - size)
        if all(_port_free(p) for p in range(start, start + size)):
            return start
    raise AssertionError("no block of free ports found")


@dataclass
class ComposeProject:
    tools: DeployTools
    directory: Path
    token: str
    uid: int
    gid: int
    app_port: int
    engine_ports: tuple[int, int]
    gluetun_port: int
    vpn: bool
    files: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"aceorchdeploy{self.token}"

    @property
    def label(self) -> tuple[str, str]:
        return "aceorch.deploytest", self.token

    @property
    def network(self) -> str:
        return f"aceorch-deploytest-{self.token}"

    @property
    def orchestrator(self) -> str:
        return f"orchestrator-deploytest-{self.token}"

    @property
    def gluetun(self) -> str:
        return f"gluetun-deploytest-{self.token}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS}
        env["ACEORCH_ORCH_CONTEXT"] = str(ROOT / ".cache" / "orch-context")
        if self.vpn:
            env["COMPOSE_PROFILES"] = "vpn"
        return env

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*self.tools.compose, "-p", self.name, "--project-directory", str(self.directory)]
        for path in self.files:
            cmd += ["-f", str(path)]
        result = subprocess.run(
            [*cmd, *args], cwd=self.directory, env=self.env(), capture_output=True, text=True, timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def shell(self, code: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run a command line verbatim (e.g. the seed's ``docker-compose restart orchestrator``) in the project
        directory; the project name and files come from COMPOSE_PROJECT_NAME and COMPOSE_FILE."""
        env = self.env()
        env["COMPOSE_PROJECT_NAME"] = self.name
        env["COMPOSE_FILE"] = os.pathsep.join(str(p) for p in self.files)
        result = subprocess.run(["bash", "-o", "pipefail", "-c", code], cwd=self.directory, env=env,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"{code} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def logs(self) -> str:
        result = self.compose("logs", "--no-color", "orchestrator", check=False)
        return result.stdout + result.stderr

    def set_env(self, **values: str) -> None:
        """Append settings to the project's .env (a later line wins in python-dotenv, as in an edited file)."""
        with (self.directory / ".env").open("a", encoding="utf-8") as fh:
            for key, value in values.items():
                fh.write(f"{key}={value}\n")

    def engine_ids(self) -> set[str]:
        key, value = self.label
        out = docker("ps", "-aq", "--no-trunc", "--filter", f"label={key}={value}").stdout
        return set(out.split())


def write_project(project: ComposeProject) -> None:
    d = project.directory
    first, last = project.engine_ports
    lines = [
        "# written by tests/deploy",
        f"API_KEY={API_KEY}",
        "TARGET_IMAGE=aceorch/engine-sim:latest",
        f"CONTAINER_LABEL={project.label[0]}={project.label[1]}",
        f"APP_PORT={project.app_port}",
        f"DOCKER_NETWORK={project.network}",
        f"PORT_RANGE_HOST={first}-{last}",
        "MIN_REPLICAS=0",
        "MIN_FREE_REPLICAS=0",
        "MIN_PROVISION_INTERVAL_S=0",
        "STARTUP_TIMEOUT_S=30",
        "DEBUG_MODE=false",
        "DEBUG_LOG_DIR=./debug_logs",
        f"UID={project.uid}",
        f"GID={project.gid}",
        f"DOCKER_GID={project.tools.docker_gid}",
    ]
    if project.vpn:
        pool = 4
        lines += [
            f"MAX_ACTIVE_REPLICAS={pool}",
            f"VPN_ENGINE_PORTS={first}-{first + pool - 1}",
            f"GLUETUN_CONTROL_HOST_PORT={project.gluetun_port}",
            "GLUETUN_HEALTH_CHECK_INTERVAL_S=1",
            "GLUETUN_STARTUP_WAIT_S=10",
        ]
    (d / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The seed's folder, made by the user before `up` (docs/deployment.md), owned by the host user.
    (d / "debug_logs").mkdir()
    os.chown(d / "debug_logs", project.uid, project.gid)
    # Unique container names, so that the test never meets a real deployment's `orchestrator`/`gluetun`.
    names = [
        "services:",
        "  orchestrator:",
        f"    container_name: {project.orchestrator}",
    ]
    if project.vpn:
        names += [
            "    environment:",
            f"      GLUETUN_CONTAINER_NAME: {project.gluetun}",
            "  gluetun:",
            f"    container_name: {project.gluetun}",
        ]
    (d / "names.override.yml").write_text("\n".join(names) + "\n", encoding="utf-8")
    project.files = [ROOT / "docker-compose.yml"]
    if project.vpn:
        project.files.append(ROOT / "docker-compose.gluetun.yml")
    project.files += [ROOT / "docker-compose.test.yml", d / "names.override.yml"]


def cleanup(project: ComposeProject) -> None:
    project.compose("down", "--remove-orphans", "--timeout", "5", check=False)
    ids = project.engine_ids()
    if ids:
        docker("rm", "-f", *sorted(ids), check=False, timeout=120)
    docker("rm", "-f", project.orchestrator, project.gluetun, check=False)
    docker("network", "rm", project.network, check=False)
    shutil.rmtree(project.directory, ignore_errors=True)
