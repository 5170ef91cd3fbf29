"""`.env.example` is the generated file, documents every setting with its real default, and is a valid `.env`."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from aceorch.config import Settings, load_settings
from aceorch.config.example import render_env_example

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
#: Defaults that depend on the machine, shown empty on purpose.
DYNAMIC = {"ENGINE_COMMAND"}
#: Read by docker-compose's substitution only.
COMPOSE_ONLY = {
    "UID", "GID", "DOCKER_GID", "VPN_ENGINE_PORTS", "GLUETUN_CONTROL_HOST_PORT", "VPN_SERVICE_PROVIDER", "VPN_TYPE",
    "WIREGUARD_PRIVATE_KEY", "WIREGUARD_ADDRESSES", "OPENVPN_USER", "OPENVPN_PASSWORD", "SERVER_COUNTRIES",
    "VPN_PORT_FORWARDING",
}


def _entries() -> dict[str, tuple[bool, str]]:
    """NAME -> (commented, value) for every KEY=VALUE line, commented or not."""
    found: dict[str, tuple[bool, str]] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = LINE.match(line.strip())
        if match:
            found[match.group(2)] = (match.group(1) is not None, match.group(3))
    return found


def test_every_setting_is_listed_once_and_nothing_unknown() -> None:
    entries = _entries()
    settings = set(Settings.env_names())
    assert settings - entries.keys() == set(), "settings missing from .env.example"
    assert entries.keys() - settings - COMPOSE_ONLY == set(), "names that neither aceorch nor compose reads"
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in settings:
        assert len(re.findall(rf"^#?\s*{name}=", text, flags=re.M)) == 1, name


def test_commented_values_are_the_real_defaults(tmp_path: Path) -> None:
    """Uncommenting every line changes nothing: the file shows aceorch's actual defaults."""
    entries = _entries()
    commented = {n for n, (c, _) in entries.items() if c and n not in DYNAMIC}
    lines = [f"{n}={v}" for n, (_, v) in entries.items() if n not in DYNAMIC]
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_settings(env)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    checked = 0
    for name in commented - COMPOSE_ONLY:
        assert loaded.value_of(name) == defaults.value_of(name), f"{name}: .env.example shows a wrong default"
        checked += 1
    assert checked >= 50


def test_shipped_file_is_valid_and_warns_about_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = tmp_path / ".env"
    env.write_bytes(EXAMPLE.read_bytes())
    with caplog.at_level(logging.WARNING):
        settings = load_settings(env)
    assert settings.api.api_key is not None and settings.api.api_key.get_secret_value() == "your-api-key"
    assert settings.debug.debug_log_dir == "./debug_logs"
    assert not [r for r in caplog.records if "unknown setting" in r.getMessage()]
    # The compose-only names, uncommented, must not look like misspelt settings either.
    env.write_text("\n".join(f"{n}=1" for n in sorted(COMPOSE_ONLY)) + "\n", encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_settings(env)
    assert [r.getMessage() for r in caplog.records if "unknown setting" in r.getMessage()] == []


def test_committed_file_is_the_generated_one() -> None:
    """``.env.example`` is generated from the field descriptions: regenerate it after changing a setting."""
    assert EXAMPLE.read_text(encoding="utf-8") == render_env_example(), (
        "out of date: run `python -m aceorch.config --write .env.example`"
    )
