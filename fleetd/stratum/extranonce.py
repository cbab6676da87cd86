"""Extranonce1 values unique among the live connections of one process."""

from __future__ import annotations


class ExtranonceAllocator:
    """Hands out distinct extranonce1 values and takes them back when connections end.

    Values come from a wrapping counter that skips those in use, so a released value is
    reused only after the rest of the space has gone round (logs stay unambiguous).
    ``prefix`` lets several processes split one space (each gets its own prefix).
    """

    __slots__ = ("size", "prefix", "_counter_size", "_space", "_next", "_in_use")

    def __init__(self, size: int = 4, prefix: bytes = b"", start: int = 0) -> None:
        if not 1 <= size <= 16:
            raise ValueError(f"extranonce1 size must be 1..16 bytes, got {size!r}")
        if len(prefix) >= size:
            raise ValueError(f"extranonce1 prefix {prefix.hex()!r} leaves no room in {size} bytes")
        self.size = size
        self.prefix = bytes(prefix)
        self._counter_size = size - len(prefix)
        self._space = 1 << (8 * self._counter_size)
        self._next = start % self._space
        self._in_use: set[bytes] = set()

    def allocate(self) -> bytes:
        """A value no live connection holds; RuntimeError when the space is full."""
        if len(self._in_use) >= self._space:
            raise RuntimeError(f"all {self._space} extranonce1 values are in use")
        while True:
            # An opaque identifier, not a header field: its byte order means nothing.
            value = self.prefix + self._next.to_bytes(self._counter_size, "big")
            self._next = (self._next + 1) % self._space
            if value not in self._in_use:
                self._in_use.add(value)
                return value

    def release(self, extranonce1: bytes) -> None:
        """Give a value back; releasing one not held is a no-op (closing twice is harmless)."""
        self._in_use.discard(extranonce1)

    def __contains__(self, extranonce1: object) -> bool:
        return extranonce1 in self._in_use

    def __len__(self) -> int:
        return len(self._in_use)
