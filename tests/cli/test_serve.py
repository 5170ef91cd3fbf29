"""``aceorch serve`` binds its port first, and binds 127.0.0.1 only when no API key is set (process runtime)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from orchestrator_proc import free_port  # noqa: E402

from aceorch.cli.serve import listen_host  # noqa: E402
from aceorch.config import Settings  # noqa: E402
from support import wait_until  # noqa: E402


def base_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
        "RUNTIME": "process", "APP_PORT": str(port), "MIN_REPLICAS": "0", "MIN_FREE_REPLICAS": "0",
        "DB_URL": f"sqlite:///{tmp_path}/orch.db", "DEBUG_MODE": "true", "DEBUG_LOG_DIR": str(tmp_path / "dl"),
        **extra,
    }


def test_a_taken_port_is_one_line_exit_2_and_nothing_created(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        proc = subprocess.run([sys.executable, "-m", "aceorch", "serve"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, env=base_env(tmp_path, port, APP_HOST="127.0.0.1"))
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith(f"aceorch: cannot listen on 127.0.0.1:{port}: the port is already in use")
    assert "APP_PORT" in err[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "dl").exists(), "no debug folder or session file"
    assert not (tmp_path / "orch.db").exists(), "the store was not touched"


def listening(port: int) -> set[str]:
    """The local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            addr, hexport = cols[1].rsplit(":", 1)
            if cols[3] == "0A" and int(hexport, 16) == port:
                if name == "tcp":
                    found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
                else:
                    found.add(addr)
    return found


def serve_and_look(tmp_path: Path, **env: str) -> tuple[set[str], str]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "aceorch", "serve"], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT, env=base_env(tmp_path, port, DEBUG_MODE="false", **env),
                                start_new_session=True)
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, what="aceorch to answer")
        return listening(port), log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_no_key_binds_loopback_only_and_says_so(tmp_path: Path) -> None:
    addresses, log = serve_and_look(tmp_path, APP_HOST="0.0.0.0")
    assert addresses == {"127.0.0.1"}
    said = [line for line in log.splitlines() if "API_KEY is not set" in line]
    assert len(said) == 1 and "127.0.0.1" in said[0] and "ALLOW_UNAUTHENTICATED=true" in said[0]


def test_allow_unauthenticated_binds_app_host_with_one_warning(tmp_path: Path) -> None:
    addresses, log = serve_and_look(tmp_path, APP_HOST="0.0.0.0", ALLOW_UNAUTHENTICATED="true")
    assert addresses == {"0.0.0.0"}
    said = [line for line in log.splitlines() if "API_KEY is not set" in line]
    assert len(said) == 1 and "WARNING" in said[0] and "open to anyone" in said[0]


def test_a_key_binds_app_host_quietly(tmp_path: Path) -> None:
    addresses, log = serve_and_look(tmp_path, APP_HOST="0.0.0.0", API_KEY="k-serve-test")
    assert addresses == {"0.0.0.0"}
    assert "API_KEY is not set" not in log


@pytest.mark.parametrize(("env", "host"), [
    ({"app_host": "0.0.0.0"}, "127.0.0.1"),
    ({"app_host": "0.0.0.0", "allow_unauthenticated": True}, "0.0.0.0"),
    ({"app_host": "0.0.0.0", "api_key": "k"}, "0.0.0.0"),
    ({"app_host": "localhost"}, "localhost"),
])
def test_listen_host(env: dict[str, object], host: str) -> None:
    settings = Settings(_env_file=None, **env)  # type: ignore[call-arg]
    assert listen_host(settings)[0] == host
