from aceorch.control.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(threshold: int = 3, timeout: int = 10) -> tuple[CircuitBreaker, Clock, list[tuple[str, str]]]:
    clock = Clock()
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "general", failure_threshold=threshold, recovery_timeout=timeout, monotonic=clock,
        on_transition=lambda name, old, new, b: seen.append((old.value, new.value)),
    )
    return breaker, clock, seen


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _, seen = make(threshold=3)
    for _ in range(2):
        breaker.record(False)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    assert seen == [("closed", "open")]
    adm = breaker.admit()
    assert not adm.allowed and adm.eta_s == 10


def test_a_success_resets_the_failure_count() -> None:
    breaker, _, _ = make(threshold=3)
    breaker.record(False)
    breaker.record(False)
    breaker.record(True)
    breaker.record(False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_count == 1


def test_half_open_lets_exactly_one_trial_through_and_success_closes() -> None:
    breaker, clock, seen = make(threshold=1, timeout=10)
    breaker.record(False)
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    first = breaker.admit()
    second = breaker.admit()
    assert first.allowed and first.trial
    assert not second.allowed and second.state is BreakerState.HALF_OPEN
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_trial_reopens_for_a_full_timeout() -> None:
    breaker, clock, seen = make(threshold=1, timeout=10)
    breaker.record(False)
    clock.now += 11
    assert breaker.admit().trial
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    assert breaker.seconds_until_half_open() == 10
    assert seen[-1] == ("half_open", "open")


def test_reset_force_closes_and_keeps_last_failure_time() -> None:
    breaker, _, _ = make(threshold=1)
    breaker.record(False)
    last = breaker.last_failure_time
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_count == 0
    assert breaker.last_failure_time is not None and last is not None


def test_released_trial_can_be_claimed_again() -> None:
    breaker, clock, _ = make(threshold=1, timeout=1)
    breaker.record(False)
    clock.now += 1
    assert breaker.admit().trial
    breaker.release_trial()
    assert breaker.admit().trial
