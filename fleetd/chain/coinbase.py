"""Coinbase transactions: the BIP34 height, where the scriptSig sits, and the Stratum split."""

from __future__ import annotations

from dataclasses import dataclass

from .byteorder import HASH_SIZE
from .serialize import (
    COINBASE_PREV_INDEX,
    COINBASE_PREV_TXID,
    Transaction,
    parse_transaction,
    read_compact_size,
    write_compact_size,
)

BIP34_VERSION = 2  # BIP34: blocks of this version or later start the coinbase scriptSig with the height
MAX_HEIGHT = 0x7FFFFFFF  # Bitcoin Core keeps heights in an int
_OP_0 = 0x00
_OP_1 = 0x51
_OP_16 = 0x60
_MAX_HEIGHT_PUSH = 4  # a positive CScriptNum up to MAX_HEIGHT needs at most 4 bytes


@dataclass(frozen=True, slots=True)
class CoinbaseSplit:
    """A coinbase as mining.notify carries it: coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2."""

    coinb1: bytes
    extranonce1: bytes
    extranonce2: bytes
    coinb2: bytes


def encode_height(height: int) -> bytes:
    """The BIP34 height push exactly as Bitcoin Core writes it (``CScript() << height``)."""
    if not 0 <= height <= MAX_HEIGHT:
        raise ValueError(f"block height out of range: {height}")
    if height == 0:
        return bytes((_OP_0,))
    if height <= 16:
        return bytes((_OP_1 - 1 + height,))
    # Minimal little-endian CScriptNum; the extra byte keeps the sign bit clear.
    number = height.to_bytes((height.bit_length() + 8) // 8, "little")
    return bytes((len(number),)) + number


def bip34_height(script_sig: bytes) -> int | None:
    """The height a coinbase scriptSig starts with, or None without a canonical BIP34 push.

    Only blocks of version >= BIP34_VERSION promise one; older scriptSigs may start with
    any push (the genesis block's reads as 486604799).
    """
    if not script_sig:
        return None
    op = script_sig[0]
    if op == _OP_0:
        height = 0
    elif _OP_1 <= op <= _OP_16:
        height = op - _OP_1 + 1
    elif 1 <= op <= _MAX_HEIGHT_PUSH and len(script_sig) > op:
        height = int.from_bytes(script_sig[1 : 1 + op], "little")
        if height > MAX_HEIGHT:  # sign bit set: a negative number
            return None
    else:
        return None
    return height if script_sig.startswith(encode_height(height)) else None


_NULL_PREVOUT = COINBASE_PREV_TXID + COINBASE_PREV_INDEX.to_bytes(4, "little")
_SCRIPTSIG_LENGTH_AT = 4 + 1 + len(_NULL_PREVOUT)  # after version, input count (1) and the null prevout


def coinb1_height(coinb1: bytes) -> int | None:
    """The BIP34 height in a Stratum coinb1, or None when it cannot be read.

    coinb1 is the non-witness coinbase cut inside its scriptSig: version, input count 1,
    the null prevout, the scriptSig length, then the scriptSig up to the extranonce, which
    starts with the height push. Pools send what they like, so anything else (another
    layout, a push running past coinb1 or the scriptSig, a non-minimal number) is None,
    never an exception.
    """
    if not isinstance(coinb1, (bytes, bytearray)) or len(coinb1) <= _SCRIPTSIG_LENGTH_AT:
        return None
    if coinb1[4] != 1 or coinb1[5:_SCRIPTSIG_LENGTH_AT] != _NULL_PREVOUT:
        return None
    try:
        length, start = read_compact_size(coinb1, _SCRIPTSIG_LENGTH_AT)
    except ValueError:  # non-canonical length
        return None
    return bip34_height(bytes(coinb1[start : start + length]))


def scriptsig_span(coinbase: Transaction) -> tuple[int, int]:
    """(start, end) byte offsets of the scriptSig in the coinbase's non-witness serialization."""
    if not coinbase.is_coinbase:
        raise ValueError("not a coinbase: it must have exactly one input spending the null prevout")
    script_sig = coinbase.inputs[0].script_sig
    # version, input count (1), prevout txid and index, scriptSig length
    start = 4 + 1 + HASH_SIZE + 4 + len(write_compact_size(len(script_sig)))
    return start, start + len(script_sig)


def split_coinbase(coinbase_bytes: bytes, offset: int, extranonce1_size: int, extranonce2_size: int) -> CoinbaseSplit:
    """Cut a non-witness coinbase around the extranonce bytes at offset, which must lie in its scriptSig."""
    for name, size in (("extranonce1_size", extranonce1_size), ("extranonce2_size", extranonce2_size)):
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {size!r}")
    coinbase = parse_transaction(coinbase_bytes)
    if coinbase.has_witness:
        raise ValueError("Stratum coinbases are the non-witness serialization; this one carries a witness")
    start, end = scriptsig_span(coinbase)
    en1_end = offset + extranonce1_size
    en2_end = en1_end + extranonce2_size
    if not start <= offset <= en2_end <= end:
        raise ValueError(
            f"extranonce bytes {offset}..{en2_end} do not fit inside the scriptSig at bytes {start}..{end}"
        )
    raw = coinbase_bytes
    return CoinbaseSplit(raw[:offset], raw[offset:en1_end], raw[en1_end:en2_end], raw[en2_end:])
