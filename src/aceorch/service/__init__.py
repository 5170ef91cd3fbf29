"""The service layer: :class:`~aceorch.service.core.Service` owns the runtime, store, debug log and loops."""

from aceorch.service.core import Service

__all__ = ["Service"]
