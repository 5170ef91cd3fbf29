"""Test support shared by every test folder: waiting, with a deadline, for a condition to hold.

Importable as ``support`` from any test module: the rootdir conftest puts ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["async_wait_until", "wait_until"]

T = TypeVar("T")

#: How long a wait lasts unless the caller says otherwise, in seconds.
DEFAULT_TIMEOUT_S = 10.0
#: How long to pause between two tries, in seconds.
DEFAULT_INTERVAL_S = 0.05


def _describe(check: Callable[..., object]) -> str:
    """What a check waits for, when the caller gave no words for it: its source line, or its name."""
    try:
        source = " ".join(inspect.getsource(check).split())
    except (OSError, TypeError):
        return getattr(check, "__qualname__", repr(check))
    return source if len(source) <= 200 else source[:197] + "..."


def _timed_out(check: Callable[..., object], what: str | None, timeout: float, last: object) -> AssertionError:
    return AssertionError(
        f"timed out after {timeout:g} s waiting for {what or _describe(check)}; last value: {last!r}"
    )


def wait_until(
    check: Callable[[], T],
    what: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = DEFAULT_INTERVAL_S,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``check`` until it returns something truthy, and return that; fail the test at the deadline.

    ``check`` is always tried at least once. An exception it raises fails the wait at once, unless it is one of
    ``ignoring`` (then it counts as a failed try and is reported as the last value). The failure message names
    ``what`` was awaited (the check's source when not given) and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: object = check()
        except ignoring as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(check, what, timeout, last)
        time.sleep(interval)


async def async_wait_until(
    check: Callable[[], Awaitable[T] | T],
    what: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = DEFAULT_INTERVAL_S,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """:func:`wait_until` for async tests: ``check`` may be a coroutine function, and the pauses do not block
    the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: object = check()
            if inspect.isawaitable(last):
                last = await last
        except ignoring as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(check, what, timeout, last)
        await asyncio.sleep(interval)
