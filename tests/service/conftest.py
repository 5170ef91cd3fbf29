"""Fixtures for the service components: ``parts(**settings)`` (see :mod:`service_parts`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from service_parts import Parts, build_parts, close_parts

from aceorch.config import Settings


@pytest.fixture
async def parts(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Awaitable[Parts]]]:
    """``await parts(**settings_overrides)``: the components, ready; everything is closed at teardown."""
    built: list[Parts] = []

    async def build(**overrides: Any) -> Parts:
        p = await build_parts(make_settings, **overrides)
        built.append(p)
        return p

    yield build
    for p in built:
        await close_parts(p)
