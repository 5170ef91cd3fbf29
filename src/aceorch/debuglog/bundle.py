"""``GET /debug/bundle``: one session's files and a manifest, packed into a ``tar.gz``.

The bundle is written to a temporary file (the caller streams it and then deletes it). A live session keeps
growing while it is packed, so each file is copied up to the size it had when it was opened, and its sha256
is computed over exactly those bytes: the manifest always matches the members.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from aceorch.debuglog import records
from aceorch.models import format_time

__all__ = ["write_bundle", "bundle_file_name"]


def bundle_file_name(session_id: str) -> str:
    """The ``Content-Disposition`` file name: ``aceorch-debug-<session>.tar.gz``."""
    return f"aceorch-debug-{session_id}.tar.gz"


class _HashingReader:
    """Reads at most ``size`` bytes of ``f`` and hashes what it hands out."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def write_bundle(
    *,
    directory: Path,
    session_id: str,
    version: str,
    config: dict[str, Any],
    request_id: str | None,
    created_at: datetime,
) -> Path:
    """Pack ``session_id``'s files of ``directory`` into a new temporary ``tar.gz`` and return its path.

    Members are ``<session>/<file>`` and ``<session>/manifest.json``. Raises ``LookupError`` when the
    session has no file in ``directory`` (or the id is not a session id, which also keeps paths inside the
    folder).
    """
    not_found = LookupError(f"debug session '{session_id}' not found")
    if not records.SESSION_ID_RE.match(session_id):
        raise not_found
    found = [s for s in records.scan_sessions(directory) if s.session_id == session_id]
    if not found:
        raise not_found
    paths = found[0].paths
    fd, name = tempfile.mkstemp(prefix=f"aceorch-debug-{session_id}-", suffix=".tar.gz")
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            entries: list[dict[str, Any]] = []
            for path in paths:
                try:
                    f = open(path, "rb")  # noqa: SIM115 - closed by the with below
                except FileNotFoundError:
                    continue  # deleted between the scan and now
                with f:
                    st = os.fstat(f.fileno())
                    info = tarfile.TarInfo(f"{session_id}/{path.name}")
                    info.size = st.st_size
                    info.mtime = int(st.st_mtime)
                    info.mode = 0o600
                    reader = _HashingReader(f, st.st_size)
                    tar.addfile(info, reader)
                    entries.append({"name": path.name, "bytes": st.st_size, "sha256": reader.hexdigest()})
            if not entries:
                raise not_found
            manifest = {
                "session_id": session_id,
                "created_at": format_time(created_at),
                "aceorch_version": version,
                "request_id": request_id,
                "files": entries,
                "config": config,
            }
            data = json.dumps(manifest, indent=2, default=str).encode("utf-8")
            info = tarfile.TarInfo(f"{session_id}/manifest.json")
            info.size = len(data)
            info.mtime = int(created_at.timestamp())
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
