"""``docs/aceorch-debug.lnav.json``: lnav installs it and reads the records through it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import sessiongen as gen

LNAV = "/usr/bin/lnav"
FORMAT = Path(__file__).resolve().parents[2] / "docs" / "aceorch-debug.lnav.json"


def lnav(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "TERM": "dumb"}
    return subprocess.run([LNAV, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_lnav_accepts_the_format_and_queries_records(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    installed = lnav(home, "-i", str(FORMAT))
    assert installed.returncode == 0, installed.stderr
    assert (home / ".lnav" / "formats" / "installed" / "aceorch_debug_log.json").is_file()

    b = gen.vpn_incident(tmp_path / "logs")
    prov = tmp_path / "logs" / f"{b.session_id}_provisioning.jsonl"
    stress = tmp_path / "logs" / f"{b.session_id}_stress.jsonl"
    lines = prov.read_text().splitlines()

    count = lnav(home, "-n", "-c", ";SELECT count(*) AS n FROM aceorch_debug_log", str(prov))
    assert count.returncode == 0, count.stderr
    assert count.stdout.split()[-1] == str(len(lines))

    # request_id is the operation id.
    with_rid = sum(1 for line in lines if json.loads(line).get("request_id"))
    opids = lnav(
        home, "-n", "-c", ";SELECT count(*) AS n FROM aceorch_debug_log WHERE log_opid IS NOT NULL", str(prov)
    )
    assert opids.stdout.split()[-1] == str(with_rid)

    # severity is the level: one critical (vpn_disconnection) in the stress file.
    levels = lnav(
        home, "-n", "-c", ";SELECT count(*) AS n FROM aceorch_debug_log WHERE log_level = 'critical'", str(stress)
    )
    assert levels.stdout.split()[-1] == "1"
