"""The fan-out buffer: packet alignment, joins at a PAT, bounded memory, lagging viewers, shared chunks."""

from __future__ import annotations

import asyncio

from aceorch.proxy.buffer import PACKET, FanoutBuffer, find_sync
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
