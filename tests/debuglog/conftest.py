"""Fixtures for the debug-mode writer and stress detector tests: settings, a fake clock, a DebugLog."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from debuglog_helpers import FakeClock

from aceorch.config import Settings
from aceorch.debuglog.writer import DebugLog

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    for name in list(os.environ):
        if name.startswith(("DEBUG_", "API_KEY", "GLUETUN_", "STARTUP_TIMEOUT")):
            monkeypatch.delenv(name, raising=False)

    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("debug_log_dir", str(tmp_path / "debug_logs"))
        return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]

    return factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def debuglog(make_settings: SettingsFactory) -> Iterator[DebugLog]:
    log = DebugLog(make_settings(), version="0.1.0-test", runtime_name="fake")
    yield log
    log.close()
