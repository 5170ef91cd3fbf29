"""scripts/sweep-settings.py turns flat settings reads into the grouped form, and only those."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sweep-settings.py"


@pytest.fixture(scope="module")
def sweep() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sweep_settings", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("before", "after"), [
    ("n = self.settings.min_replicas", "n = self.settings.pool.min_replicas"),
    ("s.api_key or service.settings.debug_mode", "s.api.api_key or service.settings.debug.debug_mode"),
    ("kind = RuntimeKind(settings.runtime)", "kind = RuntimeKind(settings.runtime.kind)"),
    ("f'{settings.runtime.value}'", "f'{settings.runtime.kind.value}'"),
    ("cmd = self._settings.runtime.engine_command", "cmd = self._settings.runtime.engine_command"),
    ("x = settings.pool.min_replicas", "x = settings.pool.min_replicas"),
    ("self.runtime.name, gate.max_replicas", "self.runtime.name, gate.max_replicas"),
    ("settings.vpn_enabled", "settings.vpn_enabled"),
    ("make_settings(min_replicas=0)", "make_settings(min_replicas=0)"),
    ("us.min_replicas, x.s.min_replicas", "us.min_replicas, x.s.min_replicas"),
])
def test_rewrites(sweep: ModuleType, before: str, after: str) -> None:
    rx = sweep.pattern([], bare_s=True)
    attrs = sweep.group_attributes()
    assert sweep.rewrite_line(before, rx, attrs) == after
    assert sweep.rewrite_line(after, rx, attrs) == after, "a second sweep changes nothing"


def test_check_mode_reports_and_writes_nothing(sweep: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("a = settings.idle_ttl_s\n")
    assert sweep.main(["--check", str(source)]) == 1
    assert source.read_text() == "a = settings.idle_ttl_s\n"
    assert sweep.main([str(source)]) == 0
    assert source.read_text() == "a = settings.pool.idle_ttl_s\n"
    assert sweep.main(["--check", str(source)]) == 0
