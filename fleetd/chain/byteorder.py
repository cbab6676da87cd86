"""The one module that owns byte order.

Three orders meet in mining:

* internal: how hashes stand inside blocks and how sha256d returns them;
* display: the reverse of internal, as block explorers and RPC print hashes;
* Stratum: ``mining.notify`` sends prevhash as internal bytes with each 32-bit
  word byte-swapped, and the 32-bit fields (version, nbits, ntime, nonce) as
  8 big-endian hex digits, while the header stores them little-endian.
"""

from __future__ import annotations

import struct

HASH_SIZE = 32
HEADER_SIZE = 80  # version 4 + prevhash 32 + merkle root 32 + ntime 4 + nbits 4 + nonce 4
U32_MAX = 0xFFFFFFFF

_HEADER = struct.Struct("<I32s32sIII")
_WORDS8 = struct.Struct("<8I")
_WORDS8_BE = struct.Struct(">8I")


def hash_to_display(internal: bytes) -> str:
    """Internal hash bytes as the hex string explorers and RPC show."""
    _require_hash(internal, "hash")
    return internal[::-1].hex()


def hash_from_display(text: str) -> bytes:
    """A display-order hex hash (RPC, explorers) as internal bytes."""
    return _hash_from_hex(text, "hash")[::-1]


def prevhash_to_stratum(internal: bytes) -> str:
    """Internal prevhash bytes as mining.notify sends them (each 32-bit word byte-swapped)."""
    _require_hash(internal, "prevhash")
    return _WORDS8_BE.pack(*_WORDS8.unpack(internal)).hex()


def prevhash_from_stratum(text: str) -> bytes:
    """A mining.notify prevhash back to internal bytes."""
    raw = _hash_from_hex(text, "prevhash")
    return _WORDS8.pack(*_WORDS8_BE.unpack(raw))


def u32_to_hex(value: int) -> str:
    """A 32-bit header field as Stratum's 8 big-endian hex digits."""
    if not 0 <= value <= U32_MAX:
        raise ValueError(f"32-bit field out of range: {value}")
    return f"{value:08x}"


def u32_from_hex(text: str, field: str = "field") -> int:
    """Stratum's 8 big-endian hex digits as an integer; ValueError names the field."""
    # bytes.fromhex, unlike int(text, 16), refuses signs, 0x prefixes, underscores and non-ASCII digits
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) and len(text) == 8 else b""
    except ValueError:
        raw = b""
    if len(raw) != 4:
        raise ValueError(f"{field} must be 8 hex digits, got {text!r}")
    return int.from_bytes(raw, "big")


def pack_header(version: int, prevhash: bytes, merkle_root: bytes, ntime: int, nbits: int, nonce: int) -> bytes:
    """The 80-byte block header; hashes in internal order, integers little-endian."""
    _require_hash(prevhash, "prevhash")
    _require_hash(merkle_root, "merkle_root")
    try:
        return _HEADER.pack(version, prevhash, merkle_root, ntime, nbits, nonce)
    except struct.error as exc:
        raise ValueError(f"header field out of 32-bit range: {exc}") from None


def unpack_header(header: bytes) -> tuple[int, bytes, bytes, int, int, int]:
    """(version, prevhash, merkle_root, ntime, nbits, nonce) from 80 header bytes."""
    if len(header) != HEADER_SIZE:
        raise ValueError(f"a block header is {HEADER_SIZE} bytes, got {len(header)}")
    return _HEADER.unpack(header)


def hash_to_int(internal: bytes) -> int:
    """A hash as the 256-bit number compared against targets (little-endian)."""
    return int.from_bytes(internal, "little")


def int_to_hash(value: int) -> bytes:
    """A 256-bit number as internal hash bytes (the inverse of hash_to_int)."""
    return value.to_bytes(HASH_SIZE, "little")


def _require_hash(value: bytes, name: str) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be {HASH_SIZE} bytes")


def _hash_from_hex(text: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {2 * HASH_SIZE} hex digits, got {text!r}") from None
    if len(raw) != HASH_SIZE:
        raise ValueError(f"{name} must be {2 * HASH_SIZE} hex digits, got {len(text)}")
    return raw
