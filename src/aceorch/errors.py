"""aceorch's own error tree. Backend errors are translated into these at the boundary, ``from`` the original.

The tree says *what* went wrong; the API's exception handlers decide the HTTP status and ``Retry-After``.

::

    AceorchError
    ├── ConfigError                 invalid settings; carries one line per problem
    ├── RuntimeFailure              anything a container runtime reports
    │   ├── RuntimeUnavailable      the Docker engine (or process runtime) does not answer
    │   ├── ContainerNotFound       no such container
    │   ├── ImageNotFound           the image is neither present nor pullable
    │   ├── NameConflict            a container of that name exists already
    │   ├── PortUnavailable         a host port cannot be bound
    │   └── SpecRefused             the runtime refuses the container's own settings (Docker 400, invalid env)
    ├── DebugDirError               DEBUG_LOG_DIR cannot be created or written
    ├── TooManyStreams              the cap on streams of engines aceorch does not manage is reached
    └── ProvisioningError           a start that did not happen, with the fields of the error body
        ├── ProvisioningBlocked     a gate is closed now; waiting may help
        │   ├── RuntimeBlocked      runtime_unavailable: the runtime does not answer
        │   ├── VpnBlocked          vpn_disconnected: the VPN is required and down
        │   ├── BreakerBlocked      circuit_breaker: too many failed starts
        │   └── CapacityBlocked     max_capacity: no engine slot or host port left
        ├── ProvisioningRejected    the request itself cannot be served
        │   ├── PortInUse           port_conflict: a requested port is taken
        │   ├── ImageMissing        image_not_found: the requested image is not present
        │   ├── InputRejected       rejected_input: the runtime refused the request's own input
        │   └── RuntimeUnsupported  unsupported_runtime: the runtime cannot run this kind of container
        └── ProvisioningFailed      general_error: the start was admitted and then failed
            ├── ImageUnavailable    image_not_found: the engine image is neither present nor pullable
            └── VpnFailure          vpn_error: it failed because of the VPN network
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AceorchError",
    "ConfigError",
    "RuntimeFailure",
    "RuntimeUnavailable",
    "ContainerNotFound",
    "ImageNotFound",
    "NameConflict",
    "PortUnavailable",
    "SpecRefused",
    "DebugDirError",
    "TooManyStreams",
    "ProvisioningError",
    "ProvisioningBlocked",
    "RuntimeBlocked",
    "VpnBlocked",
    "BreakerBlocked",
    "CapacityBlocked",
    "ProvisioningRejected",
    "PortInUse",
    "ImageMissing",
    "ImageUnavailable",
    "InputRejected",
    "RuntimeUnsupported",
    "ProvisioningFailed",
    "VpnFailure",
]


class AceorchError(Exception):
    """Base of every error aceorch raises on purpose."""


class ConfigError(AceorchError):
    """Invalid settings; ``lines`` holds one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class RuntimeFailure(AceorchError):
    """A container runtime failed; ``str(exc)`` is safe to show."""


class RuntimeUnavailable(RuntimeFailure):
    """The container runtime does not answer."""


class ContainerNotFound(RuntimeFailure):
    """No such container."""


class ImageNotFound(RuntimeFailure):
    """The image is neither present nor pullable."""


class NameConflict(RuntimeFailure):
    """A container of that name exists already."""


class PortUnavailable(RuntimeFailure):
    """A host port cannot be bound."""


class SpecRefused(RuntimeFailure):
    """The runtime refuses the container's own settings (an invalid env entry, a bad port): the caller's input."""


class DebugDirError(AceorchError):
    """DEBUG_LOG_DIR cannot be created or written."""


class TooManyStreams(AceorchError):
    """The cap on started streams of unmanaged engines is reached; ``retry_after_s`` is when one expires."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class ProvisioningError(AceorchError):
    """A start that did not happen, with the error-body fields and the debug-log ``reason``.

    ``error`` (the family) and ``code`` (the kind) come from the class; ``reason`` defaults to the code.
    """

    error: ClassVar[str] = "provisioning_failed"
    default_code: ClassVar[str] = "general_error"

    def __init__(
        self,
        message: str,
        *,
        recovery_eta_seconds: int | None = None,
        can_retry: bool = False,
        should_wait: bool = False,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = self.default_code
        self.message = message
        self.recovery_eta_seconds = recovery_eta_seconds
        self.can_retry = can_retry
        self.should_wait = should_wait
        self.reason = reason or self.code


class ProvisioningBlocked(ProvisioningError):
    """A provisioning gate is closed; the start may succeed later."""

    error = "provisioning_blocked"


class RuntimeBlocked(ProvisioningBlocked):
    """The container runtime does not answer."""

    default_code = "runtime_unavailable"


class VpnBlocked(ProvisioningBlocked):
    """The VPN is required and not connected."""

    default_code = "vpn_disconnected"


class BreakerBlocked(ProvisioningBlocked):
    """The circuit breaker is open (or its trial is running)."""

    default_code = "circuit_breaker"


class CapacityBlocked(ProvisioningBlocked):
    """No engine slot (or no host port) is left."""

    default_code = "max_capacity"


class ProvisioningRejected(ProvisioningError):
    """The request cannot be served as asked."""

    error = "provisioning_rejected"


class PortInUse(ProvisioningRejected):
    """A requested port is taken."""

    default_code = "port_conflict"


class ImageMissing(ProvisioningRejected):
    """The requested image is not present locally."""

    default_code = "image_not_found"


class InputRejected(ProvisioningRejected):
    """The runtime refused the request's own input (env, CONF, ports): the caller's error, not the engine's."""

    default_code = "rejected_input"


class RuntimeUnsupported(ProvisioningRejected):
    """The runtime cannot run this kind of container."""

    default_code = "unsupported_runtime"


class ProvisioningFailed(ProvisioningError):
    """The start was admitted, then failed."""


class ImageUnavailable(ProvisioningFailed):
    """The start was admitted, then the engine image turned out to be neither present nor pullable."""

    default_code = "image_not_found"


class VpnFailure(ProvisioningFailed):
    """The start failed because of the VPN's network."""

    default_code = "vpn_error"
