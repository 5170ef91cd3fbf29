"""aceorch's own error tree. Backend errors are translated into these at the boundary, ``from`` the original.

::

    AceorchError
    ├── ConfigError                 invalid settings; carries one line per problem
    ├── RuntimeFailure              anything a container runtime reports
    │   ├── RuntimeUnavailable      the Docker engine (or process runtime) does not answer
    │   ├── ContainerNotFound       no such container
    │   ├── ImageNotFound           the image is neither present nor pullable
    │   ├── NameConflict            a container of that name exists already
    │   └── PortUnavailable         a host port cannot be bound
    ├── DebugDirError               DEBUG_LOG_DIR cannot be created or written
    └── ProvisioningError           the documented ProvisioningError body (api.md), with its HTTP status
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AceorchError",
    "ConfigError",
    "RuntimeFailure",
    "RuntimeUnavailable",
    "ContainerNotFound",
    "ImageNotFound",
    "NameConflict",
    "PortUnavailable",
    "DebugDirError",
    "ProvisioningError",
]


class AceorchError(Exception):
    """Base of every error aceorch raises on purpose."""


class ConfigError(AceorchError):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class RuntimeFailure(AceorchError):
    """A container runtime failed; ``str(exc)`` is safe to show."""


class RuntimeUnavailable(RuntimeFailure):
    pass


class ContainerNotFound(RuntimeFailure):
    pass


class ImageNotFound(RuntimeFailure):
    pass


class NameConflict(RuntimeFailure):
    pass


class PortUnavailable(RuntimeFailure):
    pass


class DebugDirError(AceorchError):
    pass


class ProvisioningError(AceorchError):
    """The api.md ProvisioningError: ``{"error","code","message","recovery_eta_seconds","can_retry","should_wait"}``."""

    def __init__(
        self,
        *,
        status: int,
        error: str,
        code: str,
        message: str,
        recovery_eta_seconds: int | None = None,
        can_retry: bool = False,
        should_wait: bool = False,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.code = code
        self.message = message
        self.recovery_eta_seconds = recovery_eta_seconds
        self.can_retry = can_retry
        self.should_wait = should_wait
        # The debug-log `reason` of start_acestream_failed (debug-log.md); defaults to the code.
        self.reason = reason or code

    def detail(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "code": self.code,
            "message": self.message,
            "recovery_eta_seconds": self.recovery_eta_seconds,
            "can_retry": self.can_retry,
            "should_wait": self.should_wait,
        }

    def retry_after(self) -> int | None:
        if self.status != 503:
            return None
        eta = self.recovery_eta_seconds
        return max(1, eta) if eta is not None else 30
