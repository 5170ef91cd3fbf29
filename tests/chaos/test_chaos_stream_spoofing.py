"""Spoofed stream events against the real ``aceorch serve``: 2,000 ``stream_started`` for engines aceorch does not
manage keep at most MAX_UNATTACHED_STREAMS (the rest 429), and they do not outlive STREAM_UNATTACHED_TTL_S, across a
restart too. Loopback only: 2,000 requests and a cap of 1,000 under ``-m chaos`` (the probe as it was run), 300 and
150 in the default run (each event is a store write: about 50 ms).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from orchestrator_proc import Orchestrator

from support import wait_until

pytestmark = pytest.mark.chaos

#: (events, MAX_UNATTACHED_STREAMS): under ``-m chaos``, and in the default run.
CHAOS_RUN, DEFAULT_RUN = (2000, 1000), (300, 150)


def event(i: int) -> dict[str, Any]:
    return {"engine": {"host": "203.0.113.7", "port": 1 + i % 65535},
            "stream": {"key_type": "infohash", "key": f"made-up-{i}"},
            "session": {"playback_session_id": f"pb-{i}", "stat_url": "", "command_url": "", "is_live": 1}}


def test_spoofed_stream_events_are_capped_and_expire_across_a_restart(
    orch_factory: Callable[..., Orchestrator], request: pytest.FixtureRequest,
) -> None:
    chaos_run = "chaos" in (request.config.getoption("markexpr", "") or "")
    spoofed, cap = CHAOS_RUN if chaos_run else DEFAULT_RUN
    o = orch_factory(STREAM_UNATTACHED_TTL_S="3600", MAX_UNATTACHED_STREAMS=str(cap))
    statuses: Counter[int] = Counter()
    refusal: dict[str, Any] = {}
    for i in range(spoofed):
        r = o.client.post("/events/stream_started", json=event(i), headers=o.auth)
        statuses[r.status_code] += 1
        if r.status_code == 429 and not refusal:
            refusal = {"detail": r.json()["detail"], "retry_after": int(r.headers["retry-after"])}
    assert statuses == {200: cap, 429: spoofed - cap}, statuses
    assert "MAX_UNATTACHED_STREAMS" in refusal["detail"] and 1 <= refusal["retry_after"] <= 3600
    # With no stat_url the collector ends them as stale soon; ended or not, they count until their TTL.
    assert len(o.client.get("/streams", headers=o.auth).json()) == cap
    assert o.client.post("/gc", headers=o.auth).status_code == 200
    assert len(o.client.get("/streams", headers=o.auth).json()) == cap, "/gc keeps what has not expired yet"
    # A restart with a one-second TTL: the stored streams are older than that, so they are ended and forgotten.
    o.stop()
    o.env["STREAM_UNATTACHED_TTL_S"] = "1"
    o.start()
    wait_until(lambda: o.client.get("/streams", headers=o.auth).json() == [], timeout=30,
               what="the stored unattached streams to expire")
    o.stop()
    o.start()
    assert o.client.get("/streams", headers=o.auth).json() == [], "expired streams are not loaded again"
    assert o.client.post("/events/stream_started", json=event(0), headers=o.auth).status_code == 200
