"""Past MAX_UNATTACHED_STREAMS, a stream event for an engine aceorch does not manage is 429 with a clear detail."""

from __future__ import annotations

from typing import Any

AUTH = {"Authorization": "Bearer test-key-123"}


def event(i: int) -> dict[str, Any]:
    return {"engine": {"host": "203.0.113.9", "port": 1000 + i}, "stream": {"key_type": "infohash", "key": f"k{i}"},
            "session": {"playback_session_id": f"pb{i}", "stat_url": "", "command_url": "", "is_live": 1}}


def test_the_cap_answers_429_with_retry_after(app_client: Any) -> None:
    client = app_client(max_unattached_streams=3, stream_unattached_ttl_s=600)
    for i in range(3):
        r = client.post("/events/stream_started", json=event(i), headers=AUTH)
        assert r.status_code == 200, r.text
    r = client.post("/events/stream_started", json=event(99), headers=AUTH)
    assert r.status_code == 429, r.text
    assert "MAX_UNATTACHED_STREAMS" in r.json()["detail"]
    assert 1 <= int(r.headers["retry-after"]) <= 600
    assert len(client.get("/streams", headers=AUTH).json()) == 3
    # A stream already started is only refreshed, cap or not.
    assert client.post("/events/stream_started", json=event(0), headers=AUTH).status_code == 200
