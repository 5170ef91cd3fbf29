"""Container runtimes behind one Protocol (:mod:`aceorch.runtime.base`)."""

from aceorch.runtime.base import ContainerInfo, ContainerSpec, Runtime, RuntimeEvent

__all__ = ["ContainerInfo", "ContainerSpec", "Runtime", "RuntimeEvent"]
