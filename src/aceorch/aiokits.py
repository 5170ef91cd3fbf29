"""Small asyncio helpers every layer may use: the request's context variables, guarded background loops,
kept-referenced fire-and-forget tasks, interruptible sleeps and poll-until waits, and stopping tasks."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

__all__ = [
    "request_id_var",
    "trace_id_var",
    "create_guarded_task",
    "stop_tasks",
    "sleep_or_stop",
    "poll_until",
]

logger = logging.getLogger(__name__)

#: The request id of the API request on whose behalf the current code runs (None outside requests).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("aceorch_request_id", default=None)
#: The W3C trace id of that request, when the caller sent a valid ``traceparent``.
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("aceorch_trace_id", default=None)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep for ``seconds`` unless ``stop`` is set first. Returns True if stopping."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True


async def poll_until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    interval: float | Callable[[], float] = 0.2,
    stop: asyncio.Event | None = None,
) -> bool:
    """Await ``check()`` every ``interval`` seconds until it is true (returns True), or time or ``stop`` ends it.

    Returns False when ``timeout`` seconds pass or ``stop`` is set first. The deadline is on the monotonic clock;
    ``check`` is always tried at least once. A callable ``interval`` is asked for each pause (a backoff).
    """
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if stop is not None and stop.is_set():
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        pause = min(interval() if callable(interval) else interval, left)
        if stop is not None:
            if await sleep_or_stop(stop, pause):
                return False
        else:
            await asyncio.sleep(pause)


def create_guarded_task(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    stop: asyncio.Event,
    interval: float | Callable[[], float],
    on_error: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[None]:
    """Run ``body`` every ``interval`` seconds until ``stop`` is set; an exception is logged, never fatal."""

    async def guarded() -> None:
        while not stop.is_set():
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a loop must survive its body's failures
                logger.exception("background task %r failed; it will run again", name)
                if on_error is not None:
                    on_error(exc)
            wait = interval() if callable(interval) else interval
            if await sleep_or_stop(stop, wait):
                break

    return asyncio.create_task(guarded(), name=name)


def spawn(coro: Coroutine[Any, Any, Any], *, name: str, tasks: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
    """Start a fire-and-forget task that is kept referenced in ``tasks`` until it ends."""
    task = asyncio.create_task(coro, name=name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], *, timeout: float = 2.0) -> None:
    """Give tasks ``timeout`` seconds to end by themselves, then cancel the stragglers and wait for them."""
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=timeout)
    for task in still:
        task.cancel()
    if still:
        await asyncio.wait(still, timeout=timeout)
