"""Byte order (display, internal, Stratum) and nbits ↔ target ↔ difficulty."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.chain import byteorder as bo
from fleetd.chain.target import (
    DIFF1_TARGET,
    MAX_TARGET,
    bits_to_difficulty,
    bits_to_target,
    difficulty_to_target,
    target_to_bits,
    target_to_difficulty,
)


GENESIS_DISPLAY = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"

# slush's Stratum v1 documentation, mining.notify example: prevhash as sent on the wire,
# and the display hash it stands for.
STRATUM_DOC_PREVHASH = "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000"
STRATUM_DOC_DISPLAY = "00000000440b921e1b77c6c0487ae5616de67f788f44ae2a5af6e2194d16b6f8"

hashes32 = st.binary(min_size=32, max_size=32)


def _swap_words(data: bytes) -> bytes:
    """What cgminer's flip32/flip80 do: byte-swap every 32-bit word (written independently of byteorder)."""
    return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))


def test_display_is_reversed_internal():
    internal = bo.hash_from_display(GENESIS_DISPLAY)
    assert internal[:4] == bytes.fromhex("6fe28c0a")  # low-order bytes come first inside blocks
    assert internal[-4:] == bytes(4)
    assert bo.hash_to_display(internal) == GENESIS_DISPLAY


@given(hashes32)
def test_display_and_stratum_roundtrip(internal):
    assert bo.hash_from_display(bo.hash_to_display(internal)) == internal
    assert bo.prevhash_from_stratum(bo.prevhash_to_stratum(internal)) == internal
    assert bo.hash_to_int(internal) == int(bo.hash_to_display(internal), 16)
    assert bo.int_to_hash(bo.hash_to_int(internal)) == internal


@given(hashes32)
def test_stratum_prevhash_is_each_word_byte_swapped(internal):
    assert bytes.fromhex(bo.prevhash_to_stratum(internal)) == _swap_words(internal)


def test_stratum_prevhash_documented_vector():
    internal = bo.hash_from_display(STRATUM_DOC_DISPLAY)
    assert bo.prevhash_to_stratum(internal) == STRATUM_DOC_PREVHASH
    assert bo.prevhash_from_stratum(STRATUM_DOC_PREVHASH) == internal
    # Equivalently: the display hex with its eight 8-digit words in reverse order.
    words = [STRATUM_DOC_DISPLAY[i : i + 8] for i in range(0, 64, 8)]
    assert "".join(reversed(words)) == STRATUM_DOC_PREVHASH


def test_a_miner_rebuilds_the_real_header_from_stratum_fields(real_blocks):
    """Emulate cgminer: hex-concatenate notify fields, put the flip32'd root in, flip80, hash."""
    block = real_blocks[0]
    notify_prevhash = bo.prevhash_to_stratum(block.prevhash)
    root = block.merkle_root  # what the miner folds from the coinbase, internal order
    data = bytes.fromhex(
        bo.u32_to_hex(block.version)
        + notify_prevhash
        + _swap_words(root).hex()
        + bo.u32_to_hex(block.ntime)
        + bo.u32_to_hex(block.nbits)
        + bo.u32_to_hex(block.nonce)
    )
    header = _swap_words(data)
    assert header == block.header
    digest = hashlib.sha256(hashlib.sha256(header).digest()).digest()
    assert bo.hash_to_display(digest) == "0000000000000000054a714e580b16c583701712ab91060e92dbde6eb1e052a8"


def test_u32_hex_fields():
    assert bo.u32_to_hex(0x1903A30C) == "1903a30c"
    assert bo.u32_to_hex(2) == "00000002"
    assert bo.u32_from_hex("1903a30c", "nbits") == 0x1903A30C
    assert bo.u32_from_hex("FFFFFFFF") == bo.U32_MAX


def test_pack_header_layout():
    prev, root = bytes(range(32)), bytes(range(32, 64))
    header = bo.pack_header(0x20000000, prev, root, 0x649C3A21, 0x1903A30C, 0x01020304)
    assert len(header) == bo.HEADER_SIZE
    assert header[:4] == bytes.fromhex("00000020")
    assert header[4:36] == prev and header[36:68] == root
    assert header[68:] == bytes.fromhex("213a9c64" "0ca30319" "04030201")
    assert bo.unpack_header(header) == (0x20000000, prev, root, 0x649C3A21, 0x1903A30C, 0x01020304)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bo.hash_to_display(bytes(31)), "32 bytes"),
        (lambda: bo.hash_from_display("00" * 31), "64 hex digits"),
        (lambda: bo.hash_from_display("zz" * 32), "64 hex digits"),
        (lambda: bo.prevhash_from_stratum("0" * 65), "64 hex digits"),
        (lambda: bo.prevhash_to_stratum(bytes(33)), "prevhash must be 32 bytes"),
        (lambda: bo.u32_to_hex(-1), "out of range"),
        (lambda: bo.u32_to_hex(1 << 32), "out of range"),
        (lambda: bo.u32_from_hex("1903a30", "nbits"), "nbits must be 8 hex digits"),
        (lambda: bo.u32_from_hex("1903a30g", "ntime"), "ntime must be 8 hex digits"),
        (lambda: bo.pack_header(1, bytes(31), bytes(32), 0, 0, 0), "prevhash must be 32 bytes"),
        (lambda: bo.pack_header(1, bytes(32), bytes(33), 0, 0, 0), "merkle_root must be 32 bytes"),
        (lambda: bo.pack_header(1 << 32, bytes(32), bytes(32), 0, 0, 0), "32-bit range"),
        (lambda: bo.pack_header(1, bytes(32), bytes(32), -1, 0, 0), "32-bit range"),
        (lambda: bo.unpack_header(bytes(79)), "80 bytes"),
    ],
)
def test_byteorder_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_difficulty_one():
    assert bits_to_target(0x1D00FFFF) == DIFF1_TARGET == 0xFFFF << 208
    assert bits_to_difficulty(0x1D00FFFF) == 1.0
    assert difficulty_to_target(1) == DIFF1_TARGET
    assert target_to_bits(DIFF1_TARGET) == 0x1D00FFFF


def test_block_277647_target_and_difficulty():
    target = bits_to_target(0x1903A30C)
    assert f"{target:064x}" == "0000000000000003a30c" + "0" * 44
    assert bits_to_difficulty(0x1903A30C) == pytest.approx(1_180_923_195.258, rel=1e-12)
    assert target_to_bits(target) == 0x1903A30C


def test_fractional_difficulty_gives_an_easier_target():
    assert difficulty_to_target(0.5) == 2 * DIFF1_TARGET
    assert target_to_difficulty(DIFF1_TARGET // 1024) == pytest.approx(1024, rel=1e-4)
    assert difficulty_to_target(1e-80) == MAX_TARGET


# Normalised compact encodings: top mantissa byte non-zero, sign bit clear, fits 256 bits.
canonical_bits = st.builds(lambda e, m: e << 24 | m, st.integers(3, 32), st.integers(0x010000, 0x7FFFFF))


@given(canonical_bits)
def test_canonical_bits_roundtrip(nbits):
    assert target_to_bits(bits_to_target(nbits)) == nbits


@given(st.integers(1, MAX_TARGET))
def test_target_to_bits_keeps_the_top_bits(target):
    nbits = target_to_bits(target)
    rounded = bits_to_target(nbits)
    assert rounded <= target
    assert target - rounded < 1 << max(0, target.bit_length() - 16)  # at least 16 significant bits kept
    assert target_to_bits(rounded) == nbits


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bits_to_target(-1), "32-bit range"),
        (lambda: bits_to_target(1 << 32), "32-bit range"),
        (lambda: bits_to_target(0x1D80FFFF), "negative"),
        (lambda: bits_to_target(0x2300FFFF), "overflows"),
        (lambda: target_to_bits(-1), "256-bit range"),
        (lambda: target_to_bits(1 << 256), "256-bit range"),
        (lambda: difficulty_to_target(0), "positive"),
        (lambda: difficulty_to_target(float("nan")), "positive"),
        (lambda: target_to_difficulty(0), "positive"),
    ],
)
def test_target_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
