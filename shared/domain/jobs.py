"""Jobs too big for one invocation (an import of a tenant's accounts, a reconcile's apply), as plain data.

A job's items are numbered in plan order and cut into *chunks* (one queue message each, worked anywhere) of
*parts* (each counted into the job once). Which parts are counted is a bit per part on the job's record, so a
chunk delivered twice, or again after a crash between marking a part's items and counting them, counts each
part exactly once; a chunk is done when its last part is counted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cutting:
    """How a kind of job cuts its items: ``chunk`` items to a queue message, ``part`` items to a count."""

    chunk: int
    part: int

    def __post_init__(self) -> None:
        if self.chunk % self.part:
            raise ValueError("a chunk holds whole parts")

    def chunks(self, total: int) -> int:
        return -(-total // self.chunk)

    def items_of(self, chunk: int, total: int) -> range:
        """The positions of the chunk's items (items past the total, left by a plan that failed and ran again,
        are outside it)."""
        return range(chunk * self.chunk, min((chunk + 1) * self.chunk, total))

    def parts_of(self, chunk: int, total: int) -> range:
        items = self.items_of(chunk, total)
        return range(items.start // self.part, -(-items.stop // self.part))

    def part_of(self, n: int) -> int:
        return n // self.part

    def chunk_of(self, part: int) -> int:
        return part * self.part // self.chunk


def is_counted(bits: bytes, part: int) -> bool:
    byte, bit = divmod(part, 8)
    return byte < len(bits) and bool(bits[byte] >> bit & 1)


def counted(bits: bytes, part: int) -> bytes:
    """``bits`` with ``part``'s bit set (500 bytes hold the parts of 100,000 items of 25)."""
    byte, bit = divmod(part, 8)
    out = bytearray(bits.ljust(byte + 1, b"\0"))
    out[byte] |= 1 << bit
    return bytes(out)


def chunk_whole(cutting: Cutting, bits: bytes, part: int, total: int) -> bool:
    """Every part of ``part``'s chunk is counted in ``bits``."""
    return all(is_counted(bits, p) for p in cutting.parts_of(cutting.chunk_of(part), total))
