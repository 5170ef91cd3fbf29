"""Docker's refusals of a container's own settings become ``SpecRefused``; its refusals of aceorch's setup do not."""

from __future__ import annotations

import pytest
from aiodocker.exceptions import DockerError

from aceorch.errors import RuntimeFailure, SpecRefused
from aceorch.runtime.docker import translate_docker_error


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "invalid environment variable: =ab", SpecRefused),
        (400, 'invalid port specification: "99999"', SpecRefused),
        (400, "invalid reference format", SpecRefused),
        (
            500,
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container "
            "process: error during container init: environment variable value can't contain null(\\x00): "
            '"FOO=a\\x00b": unknown',
            SpecRefused,
        ),
        (400, "conflicting options: port publishing and the container type network mode", RuntimeFailure),
        (400, "container cannot be connected to network aceorch", RuntimeFailure),
        (500, "OCI runtime create failed: exec format error", RuntimeFailure),
    ],
)
def test_spec_refusals(status: int, message: str, expected: type[Exception]) -> None:
    error = translate_docker_error(DockerError(status, message), "create e1")
    assert type(error) is expected, error
