"""Circuit breakers with closed, open and half-open states, and the named pair that guards engine starts.

``open`` lasts ``recovery_timeout`` seconds after the last failure, then the breaker is ``half_open``: the next start
goes through as the single trial; its success closes the breaker, its failure reopens it. Every start is recorded,
whoever asked. Transitions are reported to ``on_transition(name, old, new, breaker)``. :class:`Breakers` holds the
``general`` breaker (every start but replacements) and the ``replacement`` one.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from aceorch.models import utcnow

__all__ = ["BreakerState", "CircuitBreaker", "Admission", "Breakers"]


class BreakerState(enum.StrEnum):
    """closed: starts pass; open: starts are refused; half_open: one trial start passes."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Admission:
    """The answer of :meth:`CircuitBreaker.admit`: allowed, or blocked with an ETA in seconds."""

    allowed: bool
    state: BreakerState
    eta_s: int | None = None
    trial: bool = False


TransitionHook = Callable[[str, BreakerState, BreakerState, "CircuitBreaker"], None]


class CircuitBreaker:
    """Counts failed starts; opens at the threshold and half-opens after the recovery timeout."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        recovery_timeout: int,
        trial_eta: int = 25,
        on_transition: TransitionHook | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.trial_eta = trial_eta
        self.on_transition = on_transition
        self._monotonic = monotonic
        self._clock = clock
        self._state = BreakerState.CLOSED
        self.failure_count = 0
        self.last_failure_time: datetime | None = None
        self.last_success_time: datetime | None = None
        self._opened_at: float | None = None
        self._trial_running = False

    # -- state ------------------------------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The current state; an ``open`` breaker whose timeout has passed reads (and becomes) ``half_open``."""
        if self._state is BreakerState.OPEN and self._opened_at is not None:
            if self._monotonic() - self._opened_at >= self.recovery_timeout:
                self._set(BreakerState.HALF_OPEN)
        return self._state

    @property
    def trial_running(self) -> bool:
        """A half-open trial start is in flight."""
        return self._trial_running

    def seconds_until_half_open(self) -> int:
        """Seconds until an open breaker half-opens (0 when not open)."""
        if self._opened_at is None:
            return 0
        left = self.recovery_timeout - (self._monotonic() - self._opened_at)
        return max(0, int(left + 0.999))

    def _set(self, new: BreakerState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        if self.on_transition is not None:
            self.on_transition(self.name, old, new, self)

    # -- decisions --------------------------------------------------------------------------------------------
    def peek(self) -> Admission:
        """Would a start be allowed now? Changes nothing (except the time-driven open → half_open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Admission(True, state)
        if state is BreakerState.OPEN:
            return Admission(False, state, eta_s=self.seconds_until_half_open())
        if self._trial_running:
            return Admission(False, state, eta_s=self.trial_eta)
        return Admission(True, state, trial=True)

    def admit(self) -> Admission:
        """Like :meth:`peek`, but a half-open admission claims the single trial."""
        adm = self.peek()
        if adm.allowed and adm.trial:
            self._trial_running = True
        return adm

    def record(self, success: bool) -> None:
        """Record the outcome of a start (a trial or not)."""
        self._trial_running = False
        now = self._clock()
        if success:
            self.last_success_time = now
            self.failure_count = 0
            self._opened_at = None
            self._set(BreakerState.CLOSED)
            return
        self.last_failure_time = now
        self.failure_count += 1
        state = self.state
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self.failure_count >= self.failure_threshold
        ):
            self._opened_at = self._monotonic()
            self._set(BreakerState.OPEN)
        elif state is BreakerState.OPEN:
            self._opened_at = self._monotonic()

    def record_rejected(self) -> None:
        """A start refused for the caller's own input: no failure is counted, and a claimed trial is handed back."""
        self._trial_running = False

    def release_trial(self) -> None:
        """A claimed trial that never started (e.g. refused later for capacity) gives its place back."""
        self._trial_running = False

    def reset(self) -> None:
        """Force-close: failure_count 0, trial cleared; last_failure_time is kept."""
        self.failure_count = 0
        self._trial_running = False
        self._opened_at = None
        self._set(BreakerState.CLOSED)


class Breakers(Mapping[str, CircuitBreaker]):
    """The breakers by name (``general`` and ``replacement``); a manual reset is recorded."""

    def __init__(self, breakers: list[CircuitBreaker], *, record: Callable[..., None]) -> None:
        self._by_name = {b.name: b for b in breakers}
        self._record = record

    def __getitem__(self, name: str) -> CircuitBreaker:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def for_source(self, source: str) -> CircuitBreaker:
        """The breaker that guards starts asked for by ``source``."""
        return self._by_name["replacement" if source == "replacement" else "general"]

    def reset(self, name: str | None = None) -> list[str]:
        """Force-close one breaker (or all, for None); the names reset. Raises KeyError for an unknown name."""
        if name is not None and name not in self._by_name:
            raise KeyError(name)
        done: list[str] = []
        for key, breaker in self._by_name.items():
            if name in (None, key):
                breaker.reset()
                self._record("circuit_breaker", operation="manual_reset", operation_type=key)
                done.append(key)
        return done
