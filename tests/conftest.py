"""Shared fixtures: a clean environment for settings, and a settings factory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aceorch.config import Settings

#: Fixtures for tests against the real Docker engine (docker_engine, docker_runtime, ...), for every folder.
pytest_plugins = ["docker_fixtures"]


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test is influenced by the developer's own environment or .env."""
    names = set(Settings.env_names())
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key, raising=False)
    yield


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "db_url": f"sqlite:///{tmp_path}/orch.db",
            "debug_log_dir": str(tmp_path / "debug_logs"),
            "min_replicas": 0,
            "min_free_replicas": 0,
            "min_provision_interval_s": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory
