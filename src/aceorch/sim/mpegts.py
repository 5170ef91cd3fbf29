"""A tiny MPEG transport stream generator: valid 188-byte packets for the engine simulator's playback.

The bytes are not decodable video, but the framing is real: every packet starts with the sync byte ``0x47``,
continuity counters advance per PID, and a PAT and PMT (with correct MPEG-2 CRCs) open every chunk, so
relays and probes that parse TS framing (acexy copies bytes; ffprobe-style tools look for PAT/PMT) accept the
stream. Packets are precomputed for each continuity counter value, so producing a chunk is a join, not a loop
over bytes.
"""

from __future__ import annotations

__all__ = ["PACKET_SIZE", "SYNC_BYTE", "TSGenerator", "crc32_mpeg2", "segment_bytes"]

PACKET_SIZE = 188
SYNC_BYTE = 0x47

_PMT_PID = 0x1000
_VIDEO_PID = 0x0100


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor), as PSI sections use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


def _section(table_id: int, table_id_ext: int, body: bytes) -> bytes:
    # section_length counts everything after the length field: 5 header bytes + body + 4 CRC bytes.
    length = 5 + len(body) + 4
    head = bytes([table_id, 0xB0 | (length >> 8), length & 0xFF, table_id_ext >> 8, table_id_ext & 0xFF, 0xC1, 0, 0])
    section = head + body
    return section + crc32_mpeg2(section).to_bytes(4, "big")


def _packet(pid: int, cc: int, payload: bytes, *, unit_start: bool) -> bytes:
    header = bytes([SYNC_BYTE, (0x40 if unit_start else 0) | (pid >> 8), pid & 0xFF, 0x10 | (cc & 0x0F)])
    body = payload[: PACKET_SIZE - 4]
    return header + body + b"\xff" * (PACKET_SIZE - 4 - len(body))


def _psi_packets(pid: int, section: bytes) -> list[bytes]:
    return [_packet(pid, cc, b"\x00" + section, unit_start=True) for cc in range(16)]


_PAT = _psi_packets(0x0000, _section(0x00, 1, bytes([0x00, 0x01, 0xE0 | (_PMT_PID >> 8), _PMT_PID & 0xFF])))
_PMT = _psi_packets(
    _PMT_PID,
    _section(
        0x02,
        1,
        bytes([0xE0 | (_VIDEO_PID >> 8), _VIDEO_PID & 0xFF, 0xF0, 0x00])  # PCR PID, no program info
        + bytes([0x1B, 0xE0 | (_VIDEO_PID >> 8), _VIDEO_PID & 0xFF, 0xF0, 0x00]),  # H.264 stream
    ),
)
_VIDEO = [_packet(_VIDEO_PID, cc, bytes(range(184)), unit_start=False) for cc in range(16)]


class TSGenerator:
    """Produces consecutive chunks of one transport stream (continuity counters carry across chunks)."""

    def __init__(self) -> None:
        self._cc_psi = 0
        self._cc_video = 0

    def chunk(self, packets: int) -> bytes:
        """``packets`` TS packets (at least 3): PAT, PMT, then video packets."""
        packets = max(3, packets)
        parts = [_PAT[self._cc_psi], _PMT[self._cc_psi]]
        self._cc_psi = (self._cc_psi + 1) % 16
        for _ in range(packets - 2):
            parts.append(_VIDEO[self._cc_video])
            self._cc_video = (self._cc_video + 1) % 16
        return b"".join(parts)


def segment_bytes(packets: int) -> bytes:
    """One self-contained HLS segment; identical for every call with the same size (shared HLS sessions)."""
    return TSGenerator().chunk(packets)
