"""ProcessRuntime: child processes with Docker's lifecycle, driven by tiny Python programs."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import socket
import sys

import pytest

from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
)
from aceorch.runtime.base import ContainerSpec, Runtime, RuntimeEvent
from aceorch.runtime.process import ProcessRuntime
from support import async_wait_until

PYTHON_C = f"{shlex.quote(sys.executable)} -u -c"
SLEEP_FOREVER = "import time\nwhile True: time.sleep(1)"


def spec(name: str, code: str = SLEEP_FOREVER, **kwargs: object) -> ContainerSpec:
    return ContainerSpec(name=name, image="ignored", command=[code], **kwargs)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_process_runtime_satisfies_the_runtime_protocol() -> None:
    assert isinstance(ProcessRuntime("true"), Runtime)


async def test_a_child_gets_the_spec_environment_over_os_environ(
    process_runtime: ProcessRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACEORCH_TEST_INHERITED", "from-os")
    code = "import os; print(os.environ['HTTP_PORT'], os.environ['ACEORCH_TEST_INHERITED'])"
    info = await process_runtime.create(spec("env", code, env={"HTTP_PORT": "19123"}, restart_policy="no"))

    await async_wait_until(lambda: _status_is(process_runtime, info.id, "exited"), "the child to exit after printing")

    assert await process_runtime.logs(info.id) == "19123 from-os\n"
    done = await process_runtime.inspect(info.id)
    assert done.exit_code == 0
    assert done.image == process_runtime.image and done.image.endswith(("python", "python3", "python3.11"))


async def _status_is(runtime: Runtime, container_id: str, status: str) -> bool:
    return (await runtime.inspect(container_id)).status == status


async def supervisor_ended(name: str) -> None:
    """Wait until the task watching child ``name`` (the only code that restarts it) has ended.

    A restart starts the new watcher before the old one ends, so while a restart is possible a watcher is pending.
    """
    task_name = f"process-runtime {name}"
    await async_wait_until(
        lambda: not [t.get_name() for t in asyncio.all_tasks() if t.get_name() == task_name and not t.done()],
        f"the watcher of {name} to end",
    )


def restarts_logged(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    """The process runtime's "restarting it" log lines about child ``name``."""
    return [r.getMessage() for r in caplog.records
            if r.name == "aceorch.runtime.process" and r.getMessage().startswith(f"{name} exited with")]


async def test_ports_are_reported_in_dockers_shape_on_loopback(process_runtime: ProcessRuntime) -> None:
    info = await process_runtime.create(spec("ports", ports={"19555/tcp": None, "6878": None}))
    assert info.ports == {"19555/tcp": None, "6878/tcp": None}
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        free = sock.getsockname()[1]
    published = await process_runtime.create(spec("published", ports={f"{free}/tcp": free}))
    assert published.ports == {f"{free}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(free)}]}
    assert published.ip == "127.0.0.1"


async def test_a_non_zero_exit_is_recorded_and_the_no_policy_does_not_restart(
    process_runtime: ProcessRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aceorch.runtime.process")
    events = process_runtime.events()
    info = await process_runtime.create(spec("crash", "import sys; sys.exit(7)", restart_policy="no"))

    seen: list[RuntimeEvent] = []
    async for event in events:
        seen.append(event)
        if event.action == "die":
            break
    await supervisor_ended("crash")

    assert restarts_logged(caplog, "crash") == []
    final = await process_runtime.inspect(info.id)
    assert final.status == "exited" and final.exit_code == 7
    assert [e.action for e in seen] == ["create", "start", "die"]
    assert seen[-1].attributes["exitCode"] == "7"


async def test_unless_stopped_restarts_a_dead_child_with_the_same_id(process_runtime: ProcessRuntime) -> None:
    code = "import sys, time; print('run', flush=True); time.sleep(0.2); sys.exit(3)"
    events = process_runtime.events()
    info = await process_runtime.create(spec("flappy", code))

    starts = 0
    async for event in events:
        if event.container_id == info.id and event.action == "start":
            starts += 1
            if starts == 3:
                break

    assert (await process_runtime.inspect(info.id)).id == info.id
    assert (await process_runtime.logs(info.id)).count("run\n") >= 2


async def test_on_failure_restarts_only_after_a_failure(
    process_runtime: ProcessRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aceorch.runtime.process")
    clean = await process_runtime.create(spec("clean", "pass", restart_policy="on-failure"))
    await async_wait_until(lambda: _status_is(process_runtime, clean.id, "exited"), "the clean exit")
    await supervisor_ended("clean")
    assert restarts_logged(caplog, "clean") == []
    assert (await process_runtime.inspect(clean.id)).status == "exited"

    events = process_runtime.events()
    failing = await process_runtime.create(spec("failing", "import sys; sys.exit(1)", restart_policy="on-failure"))
    starts = 0
    async for event in events:
        if event.container_id == failing.id and event.action == "start":
            starts += 1
            if starts == 2:
                break
    assert starts == 2
    assert len(restarts_logged(caplog, "failing")) >= 1


async def test_stop_terminates_the_process_group_and_prevents_a_restart(
    process_runtime: ProcessRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aceorch.runtime.process")
    # The child starts a grandchild; both must go.
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    info = await process_runtime.create(spec("parent", code))
    await async_wait_until(lambda: _has_output(process_runtime, info.id), "the grandchild's pid")
    grandchild = int((await process_runtime.logs(info.id)).split()[0])
    assert alive(grandchild)

    await process_runtime.stop(info.id, timeout=5)

    stopped = await process_runtime.inspect(info.id)
    assert stopped.status == "exited"
    assert stopped.exit_code == 128 + signal.SIGTERM
    await async_wait_until(lambda: not alive(grandchild), "the grandchild to die")
    await supervisor_ended("parent")
    assert restarts_logged(caplog, "parent") == []
    assert (await process_runtime.inspect(info.id)).status == "exited"


async def _has_output(runtime: Runtime, container_id: str) -> bool:
    return bool((await runtime.logs(container_id)).strip())


async def test_stop_kills_a_child_that_ignores_sigterm_after_the_timeout(
    process_runtime: ProcessRuntime,
) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    info = await process_runtime.create(spec("stubborn", code))
    await poll_logs(process_runtime, info.id, "ready")

    loop = asyncio.get_running_loop()
    started = loop.time()
    await process_runtime.stop(info.id, timeout=0.5)

    assert 0.4 <= loop.time() - started < 5
    assert (await process_runtime.inspect(info.id)).exit_code == 128 + signal.SIGKILL


async def poll_logs(runtime: Runtime, container_id: str, text: str) -> None:
    """Wait until ``text`` appears in the container's output."""

    async def seen() -> bool:
        return text in await runtime.logs(container_id)

    await async_wait_until(seen, f"{text!r} in the logs of {container_id[:12]}")


async def test_restart_starts_a_new_process_under_the_same_id(process_runtime: ProcessRuntime) -> None:
    info = await process_runtime.create(spec("again", "import os; print(os.getpid(), flush=True)\n" + SLEEP_FOREVER))
    await poll_logs(process_runtime, info.id, "\n")

    await process_runtime.restart(info.id, timeout=2)

    async def two_pids() -> bool:
        return len((await process_runtime.logs(info.id)).split()) == 2

    await async_wait_until(two_pids, "the second run's pid")

    first, second = (await process_runtime.logs(info.id)).split()
    assert first != second
    again = await process_runtime.inspect(info.id)
    assert again.running and again.id == info.id
    assert again.started_at is not None and info.started_at is not None and again.started_at > info.started_at


async def test_names_are_unique_and_remove_frees_the_name(process_runtime: ProcessRuntime) -> None:
    first = await process_runtime.create(spec("engine-1"))
    with pytest.raises(NameConflict):
        await process_runtime.create(spec("engine-1"))

    await process_runtime.remove("engine-1")
    with pytest.raises(ContainerNotFound):
        await process_runtime.inspect(first.id)
    with pytest.raises(ContainerNotFound):
        await process_runtime.remove(first.id)
    second = await process_runtime.create(spec("engine-1"))
    assert second.id != first.id


async def test_inspect_accepts_a_unique_prefix_and_list_filters_by_labels(
    process_runtime: ProcessRuntime,
) -> None:
    a = await process_runtime.create(spec("a", labels={"app": "x", "role": "engine"}))
    b = await process_runtime.create(spec("b", labels={"app": "x"}))

    assert (await process_runtime.inspect(a.id[:10])).name == "a"
    assert [i.name for i in await process_runtime.list({"app": "x", "role": "engine"})] == ["a"]
    assert {i.id for i in await process_runtime.list({"app": "x"})} == {a.id, b.id}
    assert await process_runtime.list({"app": "y"}) == []
    with pytest.raises(ContainerNotFound):
        await process_runtime.inspect("")


async def test_joining_another_containers_network_is_refused(process_runtime: ProcessRuntime) -> None:
    with pytest.raises(RuntimeFailure, match="Docker runtime"):
        await process_runtime.create(spec("vpn-engine", network="container:gluetun"))
    assert await process_runtime.list() == []


async def test_a_missing_executable_is_image_not_found_and_nothing_is_registered() -> None:
    runtime = ProcessRuntime("/nonexistent/aceorch-engine --flag")
    try:
        assert runtime.image == "/nonexistent/aceorch-engine"
        assert await runtime.image_exists("anything")
        with pytest.raises(ImageNotFound):
            await runtime.create(spec("engine"))
        assert await runtime.list() == []
    finally:
        await runtime.aclose()


async def test_a_taken_host_port_is_port_unavailable(process_runtime: ProcessRuntime) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortUnavailable):
            await process_runtime.create(spec("engine", ports={f"{port}/tcp": port}))
    assert await process_runtime.list() == []
    assert (await process_runtime.create(spec("engine", ports={f"{port}/tcp": port}))).running


async def test_logs_keep_only_the_last_lines_of_the_ring_buffer() -> None:
    runtime = ProcessRuntime(PYTHON_C, log_lines=5)
    try:
        info = await runtime.create(spec("chatty", "for i in range(20): print(i)", restart_policy="no"))
        await async_wait_until(lambda: _status_is(runtime, info.id, "exited"), "the chatty child to exit")
        assert await runtime.logs(info.id) == "15\n16\n17\n18\n19\n"
        assert await runtime.logs(info.id, tail=2) == "18\n19\n"
        assert await runtime.logs(info.id, tail=0) == ""
    finally:
        await runtime.aclose()


async def test_aclose_stops_every_child_ends_event_streams_and_refuses_new_work() -> None:
    runtime = ProcessRuntime(PYTHON_C, kill_after=0.5)
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)\n"
    )
    a = await runtime.create(spec("a", code))
    b = await runtime.create(spec("b"))
    await poll_logs(runtime, a.id, "up")
    events = runtime.events()
    pids = [c.process.pid for c in runtime._children.values() if c.process is not None]
    assert len(pids) == 2

    await asyncio.wait_for(runtime.aclose(), timeout=5)
    await runtime.aclose()  # idempotent

    assert not any(alive(pid) for pid in pids)
    assert [e.action async for e in events] == ["die", "die"]
    with pytest.raises(RuntimeUnavailable):
        await runtime.ping()
    with pytest.raises(RuntimeUnavailable):
        await runtime.create(spec("c"))
    assert [e async for e in runtime.events()] == []
    del b
