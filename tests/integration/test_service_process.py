"""The orchestrator under the process runtime: engines are local simulator processes."""

from __future__ import annotations

import socket
from pathlib import Path

from orchestrator_proc import Orchestrator, free_port


def test_a_host_port_held_by_another_program_is_skipped(tmp_path: Path) -> None:
    first = free_port(21000, 21990)
    holder = socket.socket()
    holder.bind(("127.0.0.1", first))
    holder.listen()
    o = Orchestrator(tmp_path, {"RUNTIME": "process", "PORT_RANGE_HOST": f"{first}-{first + 1}"}).start()
    try:
        r = o.provision({})
        assert r.status_code == 200, r.text
        assert r.json()["host_http_port"] == first + 1
        blocked = o.provision({})
        assert blocked.status_code == 503 and blocked.json()["detail"]["code"] == "max_capacity"
    finally:
        o.close()
        holder.close()
