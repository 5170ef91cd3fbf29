"""A start refused for the request's own input is recorded as the client's error and counted by no breaker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from service_parts import Parts

from aceorch.control.admission import ProvisionRequest
from aceorch.errors import InputRejected, ProvisioningFailed, RuntimeFailure, SpecRefused

PartsFactory = Callable[..., Awaitable[Parts]]


async def test_a_refused_spec_is_recorded_as_rejected_input_and_counts_toward_no_breaker(
    parts: PartsFactory,
) -> None:
    p = await parts()
    for source in ("api", "replacement"):
        p.runtime.fail_next("create", SpecRefused("create acestream-1: invalid environment variable: =x"))
        with pytest.raises(InputRejected) as caught:
            await p.provisioning.provision(ProvisionRequest(source=source))
        assert (caught.value.error, caught.value.code) == ("provisioning_rejected", "rejected_input")
    failed = [r for r in p.ops("provisioning") if r["operation"] == "start_acestream_failed"]
    assert [r["reason"] for r in failed] == ["rejected_input", "rejected_input"]
    assert (p.breakers["general"].failure_count, p.breakers["replacement"].failure_count) == (0, 0)
    assert await p.runtime.list() == []


async def test_a_runtime_failure_still_counts(parts: PartsFactory) -> None:
    p = await parts()
    p.runtime.fail_next("create", RuntimeFailure("create acestream-1: OCI runtime exploded"))
    with pytest.raises(ProvisioningFailed):
        await p.provisioning.provision(ProvisionRequest())
    assert p.breakers["general"].failure_count == 1


async def test_a_half_open_trial_refused_for_its_input_hands_the_trial_back(parts: PartsFactory) -> None:
    p = await parts()
    breaker = p.breakers["general"]
    for _ in range(breaker.failure_threshold):
        breaker.record(False)
    breaker.recovery_timeout = 0
    assert breaker.peek().trial
    p.runtime.fail_next("create", SpecRefused("create acestream-1: invalid port specification"))
    with pytest.raises(InputRejected):
        await p.provisioning.provision(ProvisionRequest())
    assert breaker.peek().trial and not breaker.trial_running
    engine = await p.engine()
    assert engine.container_id and breaker.state == "closed"
