import subprocess
import sys
from pathlib import Path

import pytest

from aceorch.config import load_settings
from aceorch.errors import ConfigError


def test_defaults_match_config_md() -> None:
    s = load_settings(None)
    assert s.api.app_port == 8000 and s.pool.max_replicas == 20 and s.runtime.startup_timeout_s == 25
    assert str(s.runtime.port_range_host) == "19000-19999" and s.label_pair == ("ondemand.app", "myservice")
    assert s.debug.debug_log_dir == "./debug_logs" and s.debug.debug_mode is False


def test_env_file_with_inline_comments_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nDEBUG_MODE=1\nexport CIRCUIT_BREAKER_FAILURE_THRESHOLD=10  # Increase from 5\n"
        "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S=180\nAPI_KEY=\nMAX_REPLICAS=7\n"
    )
    monkeypatch.setenv("MAX_REPLICAS", "9")
    s = load_settings(env)
    assert s.debug.debug_mode is True
    assert s.breaker.circuit_breaker_failure_threshold == 10
    assert s.breaker.circuit_breaker_recovery_timeout_s == 180
    assert s.api.api_key is None
    assert s.pool.max_replicas == 9


def test_every_invalid_variable_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_REPLICAS", "0")
    monkeypatch.setenv("STARTUP_TIMEOUT_S", "5.0")
    monkeypatch.setenv("PORT_RANGE_HOST", "200-100")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    lines = info.value.lines
    assert any(line.startswith("config error: MAX_REPLICAS='0'") for line in lines)
    assert any("STARTUP_TIMEOUT_S='5.0'" in line for line in lines)
    assert any("PORT_RANGE_HOST='200-100'" in line and "range A-B" in line for line in lines)


def test_cross_field_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_REPLICAS", "5")
    monkeypatch.setenv("MAX_REPLICAS", "3")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert info.value.lines == ["config error: MIN_REPLICAS=5: must be ≤ MAX_REPLICAS (3)"]


def test_secret_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "s3cret-value")
    s = load_settings(None)
    assert s.masked()["API_KEY"] == "***"
    assert "s3cret-value" not in repr(s)


def test_serve_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aceorch", "serve"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "MAX_REPLICAS": "abc"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["config error: MAX_REPLICAS='abc': must be an integer from 1 to 1000"]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_serve_refuses_a_missing_engine_command_under_the_process_runtime(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aceorch", "serve"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "RUNTIME": "process", "ENGINE_COMMAND": "/nonexistent/engine --x"},
    )
    assert proc.returncode == 2
    assert "config error: ENGINE_COMMAND='/nonexistent/engine --x': its first word must be an executable" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
