"""The fan-out buffer: packet alignment, joins at a PAT, bounded memory, lagging viewers, shared chunks."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest
from starlette.types import Message

from aceorch.proxy.buffer import PACKET, FanoutBuffer, find_sync
from aceorch.proxy.latency import DELAY_BUCKETS_S, DelayHistogram, quantile
from aceorch.proxy.routes import TSResponse
from aceorch.proxy.session import StreamSession, Viewer
from aceorch.sim.mpegts import TSGenerator


def video(n: int, gen: TSGenerator | None = None) -> bytes:
    """``n`` packets: the generator's chunk, PAT and PMT first."""
    return (gen or TSGenerator()).chunk(n)


def test_writes_become_whole_packets_and_partial_ones_wait() -> None:
    buf = FanoutBuffer(1 << 20)
    data = video(10)
    assert buf.write(data[:300]) == PACKET
    assert buf.head == PACKET
    assert buf.write(data[300:]) == 9 * PACKET
    cur = buf.cursor()
    assert cur.pos == 0  # the PAT opens the data
    assert b"".join(buf.read(cur)) == data


def test_garbage_before_the_sync_is_skipped() -> None:
    buf = FanoutBuffer(1 << 20)
    data = video(5)
    buf.write(b"\x00\x01junk" + data)
    assert buf.bytes_skipped == 6
    assert b"".join(buf.read(buf.cursor())) == data
    assert find_sync(b"\x47xx" + data) == 3


def test_a_new_viewer_joins_at_the_last_pat_on_a_packet_boundary() -> None:
    buf = FanoutBuffer(1 << 20)
    gen = TSGenerator()
    first, second = video(50, gen), video(50, gen)
    buf.write(first)
    buf.write(second[:PACKET * 20])
    cur = buf.cursor()
    assert cur.pos == len(first)  # the PAT that opens the second chunk
    assert cur.pos % PACKET == 0
    got = b"".join(buf.read(cur))
    assert got[:4] == second[:4] and got[1:3] == b"\x40\x00"


def test_the_buffer_stays_within_its_capacity_and_a_lagging_viewer_jumps_to_the_edge() -> None:
    buf = FanoutBuffer(100 * PACKET)
    gen = TSGenerator()
    slow = buf.cursor()
    for _ in range(20):
        buf.write(video(20, gen))
    assert buf.size <= 100 * PACKET
    assert buf.tail > 0
    pieces = buf.read(slow)
    assert slow.lagged == 1
    assert pieces and pieces[0][:3] == b"\x47\x40\x00"  # restarted at a PAT
    assert slow.pos == buf.head


def test_viewers_share_the_same_chunk_objects() -> None:
    buf = FanoutBuffer(1 << 20)
    a, b = buf.cursor(), buf.cursor()
    buf.write(video(30))
    pa, pb = buf.read(a), buf.read(b)
    assert pa[0] is pb[0]


async def test_readers_wait_for_data_and_wake_on_close() -> None:
    buf = FanoutBuffer(1 << 20)
    cur = buf.cursor()
    assert await buf.wait(cur, 0.01) is False
    waiter = asyncio.create_task(buf.wait(cur, 5))
    await asyncio.sleep(0)
    buf.write(video(3))
    assert await waiter is True
    buf.read(cur)
    closer = asyncio.create_task(buf.wait(cur, 5))
    await asyncio.sleep(0)
    buf.close()
    assert await closer is True and buf.closed


# -- delivery delay ------------------------------------------------------------------------------------------
def test_each_chunk_keeps_its_read_time_and_read_hands_the_times_out() -> None:
    now = [10.0]
    buf = FanoutBuffer(1 << 20, clock=lambda: now[0])
    gen = TSGenerator()
    cur = buf.cursor()
    buf.write(video(10, gen))
    now[0] = 10.5
    buf.write(video(10, gen))
    times: list[float] = []
    assert len(buf.read(cur, times=times)) == 2
    assert times == [10.0, 10.5]
    assert buf.read(cur, times=times) == [] and times == [10.0, 10.5]


def test_the_histogram_counts_in_fixed_buckets_without_keeping_samples() -> None:
    h = DelayHistogram((0.001, 0.01, 0.1))
    assert h.quantile(0.99) is None and h.count == 0 and h.counts == (0, 0, 0, 0)
    for d in [0.0005] * 50 + [0.001] * 10 + [0.005] * 30 + [0.05] * 9 + [3.0]:
        h.observe(d)
    h.observe(-0.2)  # a clock step never makes a negative delay
    assert h.buckets == (0.001, 0.01, 0.1)
    assert h.counts == (61, 30, 9, 1)  # le semantics: 0.001 is in the first bucket; 3.0 overflows
    assert h.count == 101 and h.sum == pytest.approx(0.025 + 0.01 + 0.15 + 0.45 + 3.0)
    assert h.quantile(0.5) == pytest.approx(0.001 * 50.5 / 61)  # interpolated inside (0, 1 ms]
    assert h.quantile(0.9) == pytest.approx(0.001 + 0.009 * (90.9 - 61) / 30)
    assert h.quantile(0.999) == 0.1  # in the overflow: reported as the last bound
    assert h.quantile_ms(0.5) == round(0.001 * 50.5 / 61 * 1000, 2)
    with pytest.raises(ValueError):
        h.quantile(1.5)


def test_the_quantile_of_bucket_differences_and_bad_buckets() -> None:
    # What a reader does with two snapshots of the same histogram: the quantile of the difference.
    assert quantile((0.01, 0.02), (0, 4, 0), 0.5) == pytest.approx(0.015)
    assert quantile((0.01, 0.02), (0, 0, 0), 0.5) is None
    for bad in [(), (0.1, 0.01), (0.0, 1.0), (0.1, float("inf"))]:
        with pytest.raises(ValueError):
            DelayHistogram(bad)
    assert DelayHistogram().buckets == DELAY_BUCKETS_S


class _Session:
    """What a viewer's response uses of a stream session."""

    def __init__(self, buf: FanoutBuffer) -> None:
        self.buffer = buf
        self.settings = SimpleNamespace(proxy_client_stall_s=5.0)
        self.end_reason: str | None = None
        self.key = "k"
        self.detached: list[str] = []

    def counted_lag(self, viewer: Viewer, n: int) -> None:
        viewer.lagged += n

    def record_stalled(self, viewer: Viewer, stall_s: float) -> None:
        raise AssertionError("not stalled")

    def detach(self, viewer: Viewer, reason: str) -> None:
        self.detached.append(reason)


async def test_a_viewer_at_the_live_edge_records_each_writes_delay_and_not_its_join_backlog() -> None:
    now = [1.0]
    buf = FanoutBuffer(1 << 20, clock=lambda: now[0])
    gen = TSGenerator()
    backlog, fresh = video(20, gen), video(20, gen)
    buf.write(backlog)  # in the buffer before the viewer joins: its late write is no delivery delay
    delays = DelayHistogram()
    session = _Session(buf)
    bodies: list[bytes] = []
    caught_up = asyncio.Event()
    never = asyncio.Event()

    async def send(message: Message) -> None:
        body = message.get("body", b"")
        if body == fresh:
            now[0] += 0.25  # the write completes 250 ms after the upstream read
        if body:
            bodies.append(body)
            now[0] += 5.0 if body == backlog else 0.0
            caught_up.set()

    async def receive() -> Message:
        await never.wait()
        return {"type": "http.disconnect"}

    response = TSResponse(cast(StreamSession, session), Viewer(None, "127.0.0.0"), delays=delays)
    task = asyncio.create_task(response({"type": "http"}, receive, send))
    await caught_up.wait()  # the viewer sent its backlog and now waits at the live edge
    assert bodies == [backlog] and delays.count == 0
    now[0] = 2.0
    buf.write(fresh)
    buf.close()
    await task
    assert bodies == [backlog, fresh]
    assert delays.count == 1 and delays.sum == pytest.approx(0.25)
    assert 0.2 <= (delays.quantile(0.99) or 0) <= 0.3
    assert session.detached == ["stream_ended"]
