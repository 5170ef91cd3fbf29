"""R6: an unwritable DEBUG_LOG_DIR, and a full filesystem under it.

aceorch keeps serving and provisioning, and says so once in its own log. Tests run as root, so ``chmod 000``
would not stop the writes: the drills use a path below a regular file, a read-only tmpfs, and a 2 MB tmpfs
filled to the last byte.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from chaos_helpers import mount_tmpfs, run_of, umount
from orchestrator_proc import Orchestrator

from support import wait_until

pytestmark = pytest.mark.chaos


@pytest.fixture
def mounts() -> Iterator[Callable[..., Path]]:
    made: list[Path] = []

    def mount(target: Path, *options: str) -> Path:
        mount_tmpfs(target, *options)
        made.append(target)
        return target

    yield mount
    for target in reversed(made):
        umount(target)


def serve_and_provision(o: Orchestrator) -> None:
    """The API answers from memory, promptly, and a provision still succeeds."""
    for _ in range(50):
        begin = time.monotonic()
        r = o.client.get("/orchestrator/status")
        assert r.status_code == 200
        assert time.monotonic() - begin < 1.0
    assert o.client.get("/engines").status_code == 200
    r = o.provision({})
    assert r.status_code == 200, r.text
    assert o.client.get(f"/engines/{r.json()['container_id']}").status_code == 200


@pytest.mark.parametrize("kind", ["below_a_file", "read_only_mount"])
def test_unwritable_debug_log_dir(orch_factory: Callable[..., Orchestrator], mounts: Callable[..., Path],
                                  tmp_path: Path, kind: str) -> None:
    if kind == "below_a_file":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder\n")
        log_dir = blocker / "debug_logs"
    else:
        log_dir = mounts(tmp_path / "ro", "ro", "size=1m") / "debug_logs"
    o = orch_factory(DEBUG_MODE="true", DEBUG_LOG_DIR=str(log_dir))
    serve_and_provision(o)
    status = o.client.get("/debug/status").json()
    assert status["enabled"] is False and status["files"] == []
    errors = run_of(o).log_lines("DEBUG_LOG_DIR")
    assert len(errors) == 1, errors
    assert " ERROR " in errors[0] and str(log_dir) in errors[0]
    assert "Debug mode enabled" not in o.logs()

    # Switching it on at run time is refused with the documented 503, and nothing else breaks.
    r = o.client.post("/debug/enable", headers=o.auth)
    assert r.status_code == 503, r.text
    assert r.json()["detail"].startswith(f"cannot write to DEBUG_LOG_DIR '{log_dir}'"), r.text
    assert r.headers["retry-after"] == "30"
    assert o.client.get("/debug/status").json()["enabled"] is False
    serve_and_provision(o)
    assert not log_dir.exists()


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


def test_full_filesystem_under_debug_log_dir(orch_factory: Callable[..., Orchestrator],
                                             mounts: Callable[..., Path], tmp_path: Path) -> None:
    disk = mounts(tmp_path / "tiny", "size=2m")
    log_dir = disk / "debug_logs"
    o = orch_factory(DEBUG_MODE="true", DEBUG_LOG_DIR=str(log_dir), DEBUG_FLUSH_INTERVAL_MS="50")
    assert o.client.get("/debug/status").json()["enabled"] is True
    filler = fill(disk)

    # Traffic that produces records the writer can no longer store.
    with httpx.Client(base_url=f"http://127.0.0.1:{o.port}", timeout=10) as c:
        for i in range(300):
            assert c.get("/healthz", headers={"X-Request-ID": f"full-{i}"}).status_code == 200
    wait_until(lambda: o.client.get("/debug/status").json()["last_error"], timeout=10,
               what="/debug/status to show the write error")
    serve_and_provision(o)
    # Many flushes later (records keep coming), the error has still been reported exactly once.
    flushes: set[str] = set()
    with httpx.Client(base_url=f"http://127.0.0.1:{o.port}", timeout=10) as c:

        def flushed_ten_more_times() -> bool:
            assert c.get("/healthz").status_code == 200
            flushes.add(o.client.get("/debug/status").json()["last_flush_at"])
            return len(flushes) > 10

        wait_until(flushed_ten_more_times, "ten more flushes of the full debug log", timeout=15)
    failures = run_of(o).log_lines("debug log write failed")
    assert len(failures) == 1, failures
    assert " ERROR " in failures[0] and "No space left on device" in failures[0], failures
    assert o.client.get("/debug/status").json()["enabled"] is True

    # Space comes back: the writer resumes, and new records reach the disk.
    filler.unlink()
    assert o.client.get("/healthz", headers={"X-Request-ID": "after-full"}).status_code == 200

    def recorded() -> bool:
        return any(r.get("request_id") == "after-full" for r in run_of(o).records("performance", complete_only=True))

    wait_until(recorded, timeout=10, what="records to be written again after space came back")
    wait_until(lambda: run_of(o).log_lines("debug log writes recovered"), timeout=10, what="the recovery line")
    assert len(run_of(o).log_lines("debug log write failed")) == 1
    # The line torn by the full disk was completed: every line of every file is whole JSON again.
    for category in ("performance", "session", "provisioning"):
        assert run_of(o).records(category)
    errors = run_of(o).records("errors")
    assert any(e.get("component") == "debuglog" and "No space left" in (e.get("error_message") or "")
               for e in errors), errors
