"""Port bookkeeping: which host and container ports are taken. Always rebuildable from container labels."""

from __future__ import annotations

from collections.abc import Iterable

from aceorch.config import PortRange

__all__ = ["PortAllocator", "PortConflict", "PortPoolExhausted", "ports_from_labels"]


class PortConflict(Exception):
    """A requested port is taken or outside its pool."""


class PortPoolExhausted(Exception):
    """No free port is left in a pool."""


class PortAllocator:
    """Hands out ports from ranges, never the same port twice until it is released.

    Allocation walks each range from just after the last port handed out, so a port that was just released is not
    reused at once (a dying engine may still hold its socket).
    """

    def __init__(self) -> None:
        self._taken: set[int] = set()
        self._cursor: dict[tuple[int, int], int] = {}

    @property
    def taken(self) -> frozenset[int]:
        """Every port held now."""
        return frozenset(self._taken)

    def is_free(self, port: int) -> bool:
        """The port is not held."""
        return port not in self._taken

    def claim(self, port: int, pool: PortRange | Iterable[int]) -> int:
        """Claim a specific port, which must be inside ``pool`` and free."""
        if port not in pool:
            raise PortConflict(f"port {port} is outside its pool")
        if port in self._taken:
            raise PortConflict(f"port {port} is already in use")
        self._taken.add(port)
        return port

    def take(self, pool: PortRange | list[int]) -> int:
        """Take the next free port of ``pool``."""
        ports = list(pool)
        if not ports:
            raise PortPoolExhausted("empty port pool")
        key = (ports[0], ports[-1])
        start = self._cursor.get(key, -1) + 1
        n = len(ports)
        for i in range(n):
            idx = (start + i) % n
            port = ports[idx]
            if port not in self._taken:
                self._taken.add(port)
                self._cursor[key] = idx
                return port
        raise PortPoolExhausted(f"no free port in {ports[0]}-{ports[-1]}")

    def mark(self, ports: Iterable[int | None]) -> None:
        """Hold these ports."""
        for port in ports:
            if port is not None:
                self._taken.add(port)

    def release(self, ports: Iterable[int | None]) -> None:
        """Give these ports back (None entries are ignored)."""
        for port in ports:
            if port is not None:
                self._taken.discard(port)

    def reset(self, ports: Iterable[int | None]) -> None:
        """Hold exactly these ports."""
        self._taken = {p for p in ports if p is not None}


def _int_label(labels: dict[str, str], key: str) -> int | None:
    value = labels.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def ports_from_labels(labels: dict[str, str]) -> dict[str, int | None]:
    """The four port labels of an engine container: container and host, HTTP and HTTPS."""
    return {
        "container_http": _int_label(labels, "acestream.http_port"),
        "container_https": _int_label(labels, "acestream.https_port"),
        "host_http": _int_label(labels, "host.http_port"),
        "host_https": _int_label(labels, "host.https_port"),
    }
