"""Instrumentation wrappers: every runtime call and every outgoing HTTP call is timed into ``performance``."""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from aceorch.runtime.base import (
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ListsNodes,
    Runtime,
    RuntimeEvent,
    RuntimeNode,
)

__all__ = ["TimedRuntime", "TimedTransport"]

Recorder = Callable[..., None]


class TimedRuntime:
    """A Runtime that records the duration of each call of the runtime it wraps."""

    def __init__(self, inner: Runtime, record: Recorder) -> None:
        self.inner = inner
        self.name = inner.name
        self._record = record

    async def _timed(self, op: str, coro: Any, **fields: Any) -> Any:
        begin = time.perf_counter()
        error: str | None = None
        try:
            return await coro
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._record(
                "performance",
                operation=f"runtime.{op}",
                kind="runtime",
                backend=self.name,
                duration_ms=(time.perf_counter() - begin) * 1000,
                success=error is None,
                error=error,
                **fields,
            )

    async def ping(self) -> None:
        """The wrapped runtime's ``ping``, timed."""
        await self._timed("ping", self.inner.ping())

    async def image_exists(self, image: str) -> bool:
        """The wrapped runtime's ``image_exists``, timed."""
        result: bool = await self._timed("image_exists", self.inner.image_exists(image), image=image)
        return result

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """The wrapped runtime's ``create``, timed."""
        result: ContainerInfo = await self._timed("create", self.inner.create(spec), container_name=spec.name)
        return result

    async def inspect(self, container_id: str) -> ContainerInfo:
        """The wrapped runtime's ``inspect``, timed."""
        result: ContainerInfo = await self._timed(
            "inspect", self.inner.inspect(container_id), container_id=container_id
        )
        return result

    async def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """The wrapped runtime's ``list``, timed."""
        result: list[ContainerInfo] = await self._timed("list", self.inner.list(labels))
        return result

    async def nodes(self) -> builtins.list[RuntimeNode]:
        """The wrapped runtime's nodes (``ListsNodes``), timed; none for a single-host runtime."""
        if not isinstance(self.inner, ListsNodes):
            return []
        result: builtins.list[RuntimeNode] = await self._timed("nodes", self.inner.nodes())
        return result

    async def stop(self, container_id: str, timeout: float = 10) -> None:
        """The wrapped runtime's ``stop``, timed."""
        await self._timed("stop", self.inner.stop(container_id, timeout), container_id=container_id)

    async def restart(self, container_id: str, timeout: float = 10) -> None:
        """The wrapped runtime's ``restart``, timed."""
        await self._timed("restart", self.inner.restart(container_id, timeout), container_id=container_id)

    async def remove(self, container_id: str) -> None:
        """The wrapped runtime's ``remove``, timed."""
        await self._timed("remove", self.inner.remove(container_id), container_id=container_id)

    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The wrapped runtime's ``logs``, timed."""
        result: str = await self._timed("logs", self.inner.logs(container_id, tail), container_id=container_id)
        return result

    async def stats(self, container_id: str) -> ContainerStats:
        """The wrapped runtime's ``stats``, timed."""
        result: ContainerStats = await self._timed("stats", self.inner.stats(container_id), container_id=container_id)
        return result

    async def clear_cache(self, container_id: str, path: str) -> None:
        """The wrapped runtime's ``clear_cache``, timed."""
        await self._timed("clear_cache", self.inner.clear_cache(container_id, path), container_id=container_id)

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """The wrapped runtime's events (not timed: the stream is long-lived)."""
        return self.inner.events()

    async def aclose(self) -> None:
        """The wrapped runtime's ``aclose``, timed."""
        await self.inner.aclose()


class TimedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that records each request's duration (engine and Gluetun calls)."""

    def __init__(self, record: Recorder, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._record = record

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request through the inner transport and record how long it took."""
        begin = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._inner.handle_async_request(request)
            status = response.status_code
            return response
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._record(
                "performance",
                operation="http." + (request.url.path.split("/")[1] if "/" in request.url.path else "root"),
                kind="http",
                method=request.method,
                target=f"{request.url.host}:{request.url.port}",
                path=request.url.path,
                status=status,
                duration_ms=(time.perf_counter() - begin) * 1000,
                success=error is None and status is not None and status < 500,
                error=error,
            )

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
