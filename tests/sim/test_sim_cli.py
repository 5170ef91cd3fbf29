"""The simulators' command line: stdlib-only startup, configuration parsing, exit statuses, SIGTERM."""

from __future__ import annotations

import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from simtools import SRC, SimProcess, free_port, port_open, run_sim

from aceorch.sim import engine
from aceorch.sim.__main__ import main
from aceorch.sim._common import ConfigError
from support import wait_until


def test_help_runs_without_site_packages_from_a_bare_tree(tmp_path: Path) -> None:
    (tmp_path / "aceorch").mkdir()
    (tmp_path / "aceorch" / "__init__.py").write_text("")
    shutil.copytree(SRC / "aceorch" / "sim", tmp_path / "aceorch" / "sim")
    for args in (["--help"], ["engine", "--help"], ["gluetun", "--help"]):
        result = subprocess.run(
            [sys.executable, "-S", "-m", "aceorch.sim", *args],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout


def test_engine_serves_from_a_bare_tree_without_site_packages(tmp_path: Path) -> None:
    (tmp_path / "aceorch").mkdir()
    (tmp_path / "aceorch" / "__init__.py").write_text("")
    shutil.copytree(SRC / "aceorch" / "sim", tmp_path / "aceorch" / "sim")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-S", "-m", "aceorch.sim", "engine"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "CONF": f"--http-port={port}\n--bind-all", "SIM_HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: port_open(port))
        response = httpx.get(f"http://127.0.0.1:{port}/server/api?api_version=3&method=get_status", timeout=5)
        assert response.json()["result"]["version"]["version"] == "3.1.70"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_main_returns_help_status_instead_of_exiting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "engine" in capsys.readouterr().out
    assert main(["nonsense"]) == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SIM_TIME_SCALE", "fast"),
        ("HTTP_PORT", "70000"),
        ("SIM_HANG", "sometimes"),
        ("SIM_CONTENT_MODES", '{"*": "explode"}'),
        ("SIM_MAX_SESSIONS", "-1"),
        ("BIND_ALL", "maybe"),
        ("CONF", "--http-port=abc"),
        ("SIM_FAIL_START", "300"),
    ],
)
def test_bad_engine_value_exits_2_with_one_line_naming_the_variable(variable: str, value: str) -> None:
    env = {"HTTP_PORT": str(free_port()), variable: value}
    result = run_sim(["engine"], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]


def test_bad_gluetun_value_exits_2_naming_the_variable() -> None:
    result = run_sim(["gluetun"], {"SIM_FORWARDED_PORT": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "SIM_FORWARDED_PORT" in result.stderr


def test_fail_start_exits_with_the_given_status_without_opening_the_port() -> None:
    port = free_port()
    started = time.monotonic()
    result = run_sim(["engine"], {"HTTP_PORT": str(port), "SIM_FAIL_START": "7", "SIM_STARTUP_DELAY_S": "0.3"})
    assert result.returncode == 7
    assert time.monotonic() - started >= 0.3
    assert len(result.stderr.strip().splitlines()) == 1
    assert "SIM_FAIL_START" in result.stderr
    assert not port_open(port)


def test_fail_start_true_exits_with_status_1() -> None:
    result = run_sim(["engine"], {"HTTP_PORT": str(free_port()), "SIM_FAIL_START": "true"})
    assert result.returncode == 1


def test_sigterm_stops_the_engine_promptly_even_with_a_hung_connection(
    start_engine: Callable[..., SimProcess],
) -> None:
    sim = start_engine({"SIM_HANG": "1"})
    with socket.create_connection(("127.0.0.1", sim.port)) as hung:
        hung.sendall(b"GET /server/api?api_version=3&method=get_status HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: sim.state()["counters"]["hung_requests"] == 1)
        started = time.monotonic()
        assert sim.terminate() == 0
        assert time.monotonic() - started < 3


def test_sigterm_stops_the_gluetun_simulator_with_status_0(start_gluetun: Callable[..., SimProcess]) -> None:
    sim = start_gluetun()
    assert sim.terminate() == 0


def test_sigterm_during_startup_delay_exits_0(start_engine: Callable[..., SimProcess]) -> None:
    sim = start_engine({"SIM_STARTUP_DELAY_S": "30"}, ready=False)
    assert sim.proc.stderr is not None
    # The simulator announces the delay once its SIGTERM handler is in place.
    readable, _, _ = select.select([sim.proc.stderr], [], [], 10)
    assert readable
    assert "opening the port in" in sim.proc.stderr.readline()
    started = time.monotonic()
    assert sim.terminate() == 0
    assert time.monotonic() - started < 3
    assert not port_open(sim.port)


def test_port_comes_from_conf_before_http_port_before_default() -> None:
    cfg = engine.load_config({"CONF": "--http-port=40001\n--https-port=45001\n--bind-all", "HTTP_PORT": "19000"})
    assert (cfg.http_port, cfg.https_port, cfg.bind_all) == (40001, 45001, True)
    cfg = engine.load_config({"HTTP_PORT": "19000", "HTTPS_PORT": "19001", "P2P_PORT": "5914"})
    assert (cfg.http_port, cfg.https_port, cfg.p2p_port, cfg.bind_all) == (19000, 19001, 5914, False)
    assert engine.load_config({}).http_port == 6878


def test_flags_override_the_environment() -> None:
    cfg = engine.load_config(
        {"CONF": "--http-port=40001", "SIM_TIME_SCALE": "2"}, {"HTTP_PORT": "40002", "SIM_TIME_SCALE": "0.5"}
    )
    assert cfg.http_port == 40002
    assert cfg.time_scale == 0.5


def test_conf_lists_unknown_flags_and_skips_blank_lines() -> None:
    cfg = engine.load_config({"CONF": "  --http-port=40001 \n\n--cache-dir=/x\n--bind-all\n", "BIND_ALL": "false"})
    assert cfg.ignored_flags == ["--cache-dir=/x"]
    assert cfg.bind_all is True
    assert engine.load_config({"BIND_ALL": "TRUE"}).bind_all is True


def test_empty_values_count_as_unset() -> None:
    cfg = engine.load_config({"SIM_HANG_AFTER_S": "", "HTTP_PORT": ""})
    assert cfg.hang_after_s is None
    assert cfg.http_port == 6878


def test_hang_and_fail_start_values() -> None:
    assert engine.load_config({"SIM_HANG": "ACE"}).engine_mode == "hang_ace"
    assert engine.load_config({"SIM_HANG": "yes"}).engine_mode == "hang"
    assert engine.load_config({"SIM_HANG": "off"}).engine_mode == "ok"
    assert engine.load_config({"SIM_FAIL_START": "0"}).fail_start is None
    assert engine.load_config({"SIM_FAIL_START": "42"}).fail_start == 42
    with pytest.raises(ConfigError) as info:
        engine.load_config({"SIM_STARTUP_DELAY_S": "-1"})
    assert info.value.name == "SIM_STARTUP_DELAY_S"
