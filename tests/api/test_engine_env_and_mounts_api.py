"""Every engine the orchestrator starts carries ENGINE_ENV (under a provision body's env) and ENGINE_VOLUMES."""

from __future__ import annotations

from typing import Any

from aceorch.runtime.base import BindMount
from aceorch.runtime.fake import InMemoryRuntime

AUTH = {"Authorization": "Bearer test-key-123"}


def test_engines_get_engine_env_and_volumes_and_the_body_env_wins(app_client: Any,
                                                                  fake_runtime: InMemoryRuntime) -> None:
    client = app_client(engine_env="SIM_MEDIA_FILE=/media/a.ts,SIM_STREAM_KBPS=1000",
                        engine_volumes="/srv/media:/media:ro")
    resp = client.post("/provision/acestream", json={"env": {"SIM_STREAM_KBPS": "50"}}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    spec = fake_runtime._find(resp.json()["container_id"]).spec  # noqa: SLF001
    assert spec.env["SIM_MEDIA_FILE"] == "/media/a.ts" and spec.env["SIM_STREAM_KBPS"] == "50"
    assert spec.env["HTTP_PORT"] == str(resp.json()["container_http_port"])  # aceorch's own per-engine values stay
    assert spec.mounts == [BindMount("/srv/media", "/media", read_only=True)]
