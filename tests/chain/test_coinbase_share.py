"""BIP34 heights, coinbase splitting and the reference share hash on synthetic jobs."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetd.chain.byteorder import hash_to_int
from fleetd.chain.coinbase import (
    MAX_HEIGHT,
    CoinbaseSplit,
    bip34_height,
    encode_height,
    scriptsig_span,
    split_coinbase,
)
from fleetd.chain.merkle import merkle_root
from fleetd.chain.serialize import COINBASE_PREV_INDEX, COINBASE_PREV_TXID, Block, Transaction, TxIn, TxOut
from fleetd.chain.share import BlockShare, header_hash, share_from_block


def coinbase_tx(script_sig: bytes, witness: tuple[bytes, ...] = ()) -> Transaction:
    return Transaction(
        version=1,
        inputs=(TxIn(COINBASE_PREV_TXID, COINBASE_PREV_INDEX, script_sig, 0xFFFFFFFF),),
        outputs=(TxOut(625_000_000, bytes.fromhex("76a914") + bytes(20) + bytes.fromhex("88ac")),),
        locktime=0,
        witnesses=(witness,) if witness else (),
    )


@pytest.mark.parametrize(
    ("height", "encoding"),
    [
        (0, "00"),  # OP_0
        (1, "51"),  # OP_1
        (16, "60"),  # OP_16
        (17, "0111"),
        (127, "017f"),
        (128, "028000"),  # sign bit needs an extra byte
        (255, "02ff00"),
        (256, "020001"),
        (32768, "03008000"),
        (277647, "038f3c04"),
        (840000, "0340d10c"),
        (MAX_HEIGHT, "04ffffff7f"),
    ],
)
def test_encode_height(height, encoding):
    assert encode_height(height).hex() == encoding
    assert bip34_height(bytes.fromhex(encoding) + b"\x08/pool/") == height


@given(st.integers(0, MAX_HEIGHT), st.binary(max_size=20))
def test_bip34_height_roundtrip(height, tail):
    assert bip34_height(encode_height(height) + tail) == height


@pytest.mark.parametrize(
    "script_sig",
    ["", "04a7b689", "021100", "0105", "0181", "0400000080", "4c0111", "0580000000ff", "02ff", "ab"],
    ids=["empty", "push-past-end", "non-minimal", "push-instead-of-OP_5", "negative", "negative-4-byte",
         "pushdata1", "too-long", "short", "not-a-push"],
)
def test_bip34_height_none(script_sig):
    assert bip34_height(bytes.fromhex(script_sig)) is None


def test_scriptsig_span_with_long_scriptsig():
    script = bytes(range(100)) * 3  # 300 bytes: a 3-byte length prefix
    tx = coinbase_tx(script)
    start, end = scriptsig_span(tx)
    assert (start, end) == (4 + 1 + 36 + 3, 4 + 1 + 36 + 3 + 300)
    assert tx.serialize(with_witness=False)[start:end] == script


def test_scriptsig_span_needs_a_coinbase():
    tx = Transaction(1, (TxIn(b"\x01" * 32, 0, b"", 0),), (), 0)
    with pytest.raises(ValueError, match="not a coinbase"):
        scriptsig_span(tx)


def test_split_coinbase_pieces():
    tx = coinbase_tx(encode_height(840000) + bytes(range(12)) + b"/fleetd/")
    raw = tx.serialize()
    start, _ = scriptsig_span(tx)
    split = split_coinbase(raw, start + 4, 4, 8)
    assert split == CoinbaseSplit(raw[: start + 4], bytes(range(4)), bytes(range(4, 12)), raw[start + 16 :])
    assert split.coinb2.startswith(b"/fleetd/")


@pytest.mark.parametrize(
    ("offset", "en1", "en2", "message"),
    [
        (41, 4, 8, r"extranonce bytes 41\.\.53 do not fit inside the scriptSig at bytes 42\.\.66"),
        (55, 4, 8, r"extranonce bytes 55\.\.67 do not fit"),
        (-1, 0, 0, r"extranonce bytes -1\.\.-1 do not fit"),
        (42, -1, 8, "extranonce1_size must be a non-negative integer, got -1"),
        (42, 4, 2.0, "extranonce2_size must be a non-negative integer, got 2.0"),
    ],
)
def test_split_coinbase_rejects_bad_split(offset, en1, en2, message):
    raw = coinbase_tx(bytes(24)).serialize()
    with pytest.raises(ValueError, match=message):
        split_coinbase(raw, offset, en1, en2)


def test_split_coinbase_rejects_bad_coinbases():
    with pytest.raises(ValueError, match="carries a witness"):
        split_coinbase(coinbase_tx(bytes(24), witness=(bytes(32),)).serialize(), 42, 4, 8)
    with pytest.raises(ValueError, match="trailing bytes"):
        split_coinbase(coinbase_tx(bytes(24)).serialize() + b"\x00", 42, 4, 8)
    with pytest.raises(ValueError, match="not a coinbase"):
        split_coinbase(Transaction(1, (TxIn(b"\x01" * 32, 0, bytes(24), 0),), (), 0).serialize(), 42, 4, 8)


def test_blockshare_fields_are_header_hash_arguments():
    params = list(inspect.signature(header_hash).parameters)
    fields = list(BlockShare.__dataclass_fields__)
    assert fields == [*params, "block_hash"]


@st.composite
def synthetic_blocks(draw):
    """A block whose coinbase carries a BIP34 height and room for extranonces."""
    height = draw(st.integers(17, MAX_HEIGHT))
    coinbase = coinbase_tx(encode_height(height) + draw(st.binary(min_size=12, max_size=90)))
    others = [
        Transaction(2, (TxIn(draw(st.binary(min_size=32, max_size=32)), 0, b"", 0),), (TxOut(i, b"\x51"),), 0)
        for i in range(draw(st.integers(0, 40)))
    ]
    txs = (coinbase, *others)
    return Block(
        draw(st.integers(2, 2**32 - 1)),
        draw(st.binary(min_size=32, max_size=32)),
        merkle_root([tx.txid for tx in txs]),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        txs,
    )


@settings(max_examples=60)
@given(synthetic_blocks())
def test_header_hash_matches_synthetic_blocks(block):
    share = share_from_block(block)
    assert share.coinb1.endswith(encode_height(bip34_height(block.transactions[0].inputs[0].script_sig)))
    assert header_hash(**share.as_kwargs()) == block.hash


GOOD = dict(
    coinb1=b"\x01" * 50, extranonce1=b"\x02" * 4, extranonce2=b"\x03" * 8, coinb2=b"\x04" * 60,
    merkle_branch=(b"\x05" * 32,) * 3, version=0x20000000, prevhash=b"\x06" * 32,
    ntime=1_700_000_000, nbits=0x1703A30C, nonce=42,
)


def test_header_hash_is_deterministic_and_sensitive():
    digest = header_hash(**GOOD)
    assert len(digest) == 32 and digest == header_hash(**GOOD)
    assert header_hash(**{**GOOD, "merkle_branch": ()}) != digest
    # Moving bytes between coinb1 and extranonce1 changes nothing: only the concatenation counts.
    assert header_hash(**{**GOOD, "coinb1": b"\x01" * 49, "extranonce1": b"\x01" + b"\x02" * 4}) == digest
    assert hash_to_int(digest) > 0


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"prevhash": b"\x06" * 31}, ValueError, "prevhash must be 32 bytes"),
        ({"merkle_branch": (b"\x05" * 32, b"\x05" * 31)}, ValueError, "merkle branch hash 1 must be 32 bytes, got 31"),
        ({"merkle_branch": (b"\x05" * 33,)}, ValueError, "merkle branch hash 0 must be 32 bytes, got 33"),
        ({"version": 1 << 32}, ValueError, "32-bit range"),
        ({"ntime": -1}, ValueError, "32-bit range"),
        ({"nbits": 1 << 40}, ValueError, "32-bit range"),
        ({"nonce": 2**32}, ValueError, "32-bit range"),
        ({"extranonce2": "00" * 8}, TypeError, "bytes-like"),
    ],
)
def test_header_hash_rejects_bad_arguments(change, error, message):
    with pytest.raises(error, match=message):
        header_hash(**{**GOOD, **change})
