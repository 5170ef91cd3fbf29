"""API tests run the whole app in-process (TestClient runs the lifespan) against the in-memory runtime.

The client sends the API key on every request (reads need it too); a test that wants a keyless request passes
``headers=NO_AUTH``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aceorch.api import create_app
from aceorch.config import Settings
from aceorch.runtime.fake import InMemoryRuntime

API_KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: Per-request headers that drop the client's default key.
NO_AUTH = {"Authorization": ""}


@pytest.fixture
def fake_runtime() -> InMemoryRuntime:
    return InMemoryRuntime()


@pytest.fixture
def app_client(
    make_settings: Callable[..., Settings], fake_runtime: InMemoryRuntime
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {"api_key": API_KEY, "provision_wait_for": "running", "runtime": "docker"}
        values.update(overrides)
        settings = make_settings(**values)
        client = TestClient(create_app(settings, runtime=fake_runtime), headers=AUTH)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)
