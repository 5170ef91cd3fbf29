"""Settings are grouped by concern, read from flat variable names, and every field documents itself."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aceorch.config import SETTING_GROUPS, PoolSettings, RuntimeKind, Settings, flat_fields, load_settings
from aceorch.config.example import shown_default

GROUPS = {"api", "runtime", "pool", "health", "breaker", "streams", "vpn", "debug", "proxy"}


def test_groups_and_flat_variable_names() -> None:
    assert set(Settings.model_fields) == GROUPS
    assert set(SETTING_GROUPS.values()) == GROUPS
    names = Settings.env_names()
    assert len(names) == len(set(names)) == 92  # every setting of .env.example
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) and "__" not in n for n in names)
    assert SETTING_GROUPS["min_replicas"] == "pool" and SETTING_GROUPS["runtime"] == "runtime"


def test_flat_variables_set_grouped_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("MIN_REPLICAS=2\nRUNTIME=Process\nDEBUG_MODE=yes  # inline comment\n")
    monkeypatch.setenv("MAX_REPLICAS", "9")
    s = load_settings(env)
    assert s.pool.min_replicas == 2 and s.pool.max_replicas == 9
    assert s.runtime.kind is RuntimeKind.PROCESS
    assert s.debug.debug_mode is True


def test_keyword_arguments_win_and_may_be_flat_or_grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_REPLICAS", "3")
    monkeypatch.setenv("MAX_REPLICAS", "9")
    s = Settings(_env_file=None, min_replicas=0, runtime="docker")  # type: ignore[call-arg]
    assert (s.pool.min_replicas, s.pool.max_replicas, s.runtime.kind) == (0, 9, RuntimeKind.DOCKER)
    g = Settings(_env_file=None, pool=PoolSettings(min_replicas=4, max_replicas=5))  # type: ignore[call-arg]
    assert (g.pool.min_replicas, g.pool.max_replicas) == (4, 5)


def test_value_of_takes_either_spelling() -> None:
    s = Settings(_env_file=None, startup_timeout_s=40)  # type: ignore[call-arg]
    assert s.value_of("STARTUP_TIMEOUT_S") == s.value_of("startup_timeout_s") == 40


def test_every_field_gives_its_default_and_its_range() -> None:
    for name, (_, _, field) in flat_fields().items():
        text = field.description or ""
        assert len(text) > 20, name
        shown = shown_default(field)
        if field.default_factory is not None:
            assert "Default:" in text, name
        elif shown:
            assert f"default {shown}" in text, f"{name}: description does not give the default {shown}"
        else:
            assert "default unset" in text, name
        for meta in field.metadata:
            for key in ("ge", "gt", "le", "lt"):
                bound = getattr(meta, key, None)
                if bound is not None:
                    assert re.search(rf"(?<![\d.]){bound}(?![\d.])", text), f"{name}: bound {key}={bound}"


def test_a_misspelt_variable_gets_a_hint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = tmp_path / ".env"
    env.write_text("MAX_REPLICA=5\nCOLOUR=blue\n")
    with caplog.at_level(logging.WARNING, logger="aceorch.config"):
        load_settings(env)
    hints = [r.getMessage() for r in caplog.records]
    assert hints == [f"unknown setting MAX_REPLICA in {env}; did you mean MAX_REPLICAS?"]


def test_the_generator_checks_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / ".env.example"
    stale.write_text("# old\n")
    run = [sys.executable, "-m", "aceorch.config"]
    assert subprocess.run([*run, "--check", str(stale)], capture_output=True).returncode == 1
    assert subprocess.run([*run, "--write", str(stale)], capture_output=True).returncode == 0
    assert subprocess.run([*run, "--check", str(stale)], capture_output=True).returncode == 0
