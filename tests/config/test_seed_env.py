"""The seed's .env fragments (Step 1 and "Common Patterns") are valid settings, inline comments included."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "seed"))

from seedblocks import blocks  # noqa: E402

from aceorch.config import load_settings  # noqa: E402


def test_every_env_fragment_of_the_seed_loads(tmp_path: Path) -> None:
    fragments = [b.code for b in blocks() if b.lang == "bash" and all(
        line.startswith("#") or "=" in line and " " not in line.split("=")[0] for line in b.code.splitlines()
        if line.strip())]
    assert len(fragments) == 3
    env = tmp_path / ".env"
    env.write_text("".join(fragments))
    s = load_settings(env)
    assert s.debug.debug_mode is True and s.debug.debug_log_dir == "./debug_logs"
    assert s.vpn.gluetun_health_check_interval_s == 3
    assert s.breaker.circuit_breaker_failure_threshold == 10
    assert s.breaker.circuit_breaker_recovery_timeout_s == 180
