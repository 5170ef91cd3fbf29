"""Fixtures for the proxy-flow tests: a live aceorch server over the process runtime (see ``aceorch_live``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from aceorch_live import LiveServer, live_server, live_settings


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``live(**settings_overrides)`` starts a server; every server is stopped (and its engines) at teardown."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> LiveServer:
            return stack.enter_context(live_server(live_settings(tmp_path, **overrides)))

        yield start
