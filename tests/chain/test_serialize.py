"""Compact sizes, transactions (legacy and BIP144), blocks and blk*.dat framing; malformed input."""

from __future__ import annotations

import bz2

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.chain.hashes import sha256d
from fleetd.chain.serialize import (
    MAINNET_MAGIC,
    MAX_SIZE,
    Block,
    Transaction,
    TxIn,
    TxOut,
    parse_block,
    parse_transaction,
    read_blocks,
    read_compact_size,
    write_compact_size,
)


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (0, "00"),
        (0xFC, "fc"),
        (0xFD, "fdfd00"),
        (0xFFFF, "fdffff"),
        (0x10000, "fe00000100"),
        (MAX_SIZE, "fe00000002"),
        (0x100000000, "ff0000000001000000"),
    ],
)
def test_compact_size_encoding(value, encoding):
    assert write_compact_size(value).hex() == encoding
    if value <= MAX_SIZE:
        assert read_compact_size(bytes.fromhex(encoding) + b"\xaa") == (value, len(encoding) // 2)


@given(st.integers(0, MAX_SIZE), st.binary(max_size=4))
def test_compact_size_roundtrip(value, prefix):
    encoded = write_compact_size(value)
    assert read_compact_size(prefix + encoded, len(prefix)) == (value, len(prefix) + len(encoded))


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("", "truncated compact size at byte 0"),
        ("fd01", "truncated compact size at byte 1"),
        ("fdfc00", "non-canonical"),
        ("feffff0000", "non-canonical"),
        ("ff00000000ffffffff", "above the limit"),
        ("ff0000000000000000", "non-canonical"),
        ("fe01000002", "above the limit"),
    ],
)
def test_compact_size_rejects(encoding, message):
    with pytest.raises(ValueError, match=message):
        read_compact_size(bytes.fromhex(encoding))


def _segwit_tx() -> Transaction:
    return Transaction(
        version=2,
        inputs=(TxIn(bytes(range(32)), 1, b"", 0xFFFFFFFD), TxIn(bytes(range(1, 33)), 0, b"\x51", 0xFFFFFFFF)),
        outputs=(TxOut(50_000, bytes.fromhex("0014") + bytes(20)),),
        locktime=800_000,
        witnesses=((b"\x30" * 71, b"\x02" * 33), ()),
    )


def test_segwit_layout_txid_and_wtxid():
    tx = _segwit_tx()
    legacy = tx.serialize(with_witness=False)
    full = tx.serialize()
    # Built by hand: the BIP144 form inserts marker+flag after the version and witnesses before the locktime.
    witness = bytes.fromhex("02") + b"\x47" + b"\x30" * 71 + b"\x21" + b"\x02" * 33 + b"\x00"
    assert full == legacy[:4] + b"\x00\x01" + legacy[4:-4] + witness + legacy[-4:]
    assert legacy[4] == 2  # input count follows the version directly
    assert tx.txid == sha256d(legacy) != tx.wtxid == sha256d(full)
    assert parse_transaction(full) == tx
    assert parse_transaction(legacy) == Transaction(tx.version, tx.inputs, tx.outputs, tx.locktime)


def test_legacy_tx_wtxid_equals_txid():
    tx = Transaction(1, (TxIn(bytes(32), 0xFFFFFFFF, b"\x01\x02", 0xFFFFFFFF),), (TxOut(5_000_000_000, b"\xac"),), 0)
    assert tx.is_coinbase and not tx.has_witness
    assert tx.serialize() == tx.serialize(with_witness=False)
    assert tx.txid == tx.wtxid


scripts = st.binary(max_size=300)
u32s = st.integers(0, 2**32 - 1)
tx_inputs = st.builds(TxIn, st.binary(min_size=32, max_size=32), u32s, scripts, u32s)
tx_outputs = st.builds(TxOut, st.integers(-(2**63), 2**63 - 1), scripts)


@st.composite
def transactions(draw):
    # At least one input: a zero input count would read as the BIP144 marker, as in Bitcoin Core.
    inputs = tuple(draw(st.lists(tx_inputs, min_size=1, max_size=4)))
    witnesses = ()
    if draw(st.booleans()):
        witnesses = tuple(tuple(draw(st.lists(st.binary(max_size=80), max_size=3))) for _ in inputs)
        if not any(witnesses):
            witnesses = ()
    outputs = tuple(draw(st.lists(tx_outputs, max_size=4)))
    return Transaction(draw(st.integers(0, 2**32 - 1)), inputs, outputs, draw(st.integers(0, 2**32 - 1)), witnesses)


@given(transactions())
def test_transaction_roundtrip(tx):
    assert parse_transaction(tx.serialize()) == tx
    assert parse_transaction(tx.serialize(with_witness=False)).txid == tx.txid


@given(st.lists(transactions(), min_size=1, max_size=5), st.binary(min_size=32, max_size=32))
def test_block_roundtrip(txs, prevhash):
    block = Block(0x20000000, prevhash, sha256d(b"root"), 1_700_000_000, 0x1703A30C, 12345, tuple(txs))
    raw = block.serialize()
    assert raw[:80] == block.header
    assert parse_block(raw) == block


@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_valueerror(raw):
    for parse in (parse_transaction, parse_block):
        try:
            parse(raw)
        except ValueError:
            pass


def _tx_hex(body: str) -> bytes:
    return bytes.fromhex(body.replace(" ", ""))


ONE_IN = "01 " + "00" * 32 + "ffffffff 00 ffffffff"
BAD_TRANSACTIONS = [
    ("", "truncated transaction version at byte 0"),
    ("01000000", "truncated transaction input count at byte 4"),
    ("01000000 0002", "segwit flag at byte 5 is 0x02"),
    ("01000000 0001 " + ONE_IN + " 00 00 00000000", "every witness is empty"),
    ("01000000 fdffff", "input count 65535 at byte 4 cannot fit"),
    ("01000000 fe00000001", "input count 16777216 at byte 4 cannot fit"),
    ("01000000 ff0000000001000000", "above the limit"),
    ("01000000 fd0100", "non-canonical transaction input count"),
    ("01000000 01" + "00" * 31, "input count 1 at byte 4 cannot fit in the 31 bytes left"),
    ("01000000 01" + "00" * 36 + "30" + "aa" * 10, "input 0 script_sig at byte 42: need 48 bytes, 10 left"),
    ("01000000 " + ONE_IN + " 01 0000000000000000 fd0010" + "00" * 10, "truncated transaction output 0 script_pubkey"),
    ("01000000 " + ONE_IN + " 00 000000", "truncated transaction locktime"),
    ("01000000 " + ONE_IN + " 00 00000000 00", "1 trailing bytes after the transaction at byte 51"),
    ("01000000 0001 " + ONE_IN + " 00 02 01aa", "truncated transaction input 0 witness item 1 length"),
]


@pytest.mark.parametrize(("body", "message"), BAD_TRANSACTIONS)
def test_malformed_transaction(body, message):
    with pytest.raises(ValueError, match=message):
        parse_transaction(_tx_hex(body))


def test_transaction_serialize_rejects_out_of_range_fields():
    good = _segwit_tx()
    with pytest.raises(ValueError, match="out of range"):
        Transaction(1 << 32, good.inputs, good.outputs, 0).serialize()
    with pytest.raises(ValueError, match="out of range"):
        Transaction(1, good.inputs, (TxOut(2**63, b""),), 0).serialize()
    with pytest.raises(ValueError, match="prev_txid must be 32 bytes"):
        Transaction(1, (TxIn(bytes(31), 0, b"", 0),), (), 0).serialize()
    with pytest.raises(ValueError, match="1 witness stacks for 2 inputs"):
        Transaction(1, good.inputs, good.outputs, 0, ((b"x",),)).serialize()
    with pytest.raises(ValueError, match="compact size out of range"):
        write_compact_size(-1)


def _genesis_raw(shared_data) -> bytes:
    data = bz2.decompress((shared_data / "mainnet-blocks-0-to-4.dat.bz2").read_bytes())
    length = int.from_bytes(data[4:8], "little")
    return data[8 : 8 + length]


# What a cut can say: a field is short, or a count cannot fit in what is left.
TRUNCATED = (
    r"(truncated .+ at byte \d+: need \d+ bytes, \d+ left"
    r"|count \d+ at byte \d+ cannot fit in the \d+ bytes left)"
)


def test_truncated_genesis_at_every_cut_point(shared_data):
    raw = _genesis_raw(shared_data)
    assert len(raw) == 285
    parse_block(raw)  # the whole block parses
    for cut in range(len(raw)):
        with pytest.raises(ValueError, match=TRUNCATED):
            parse_block(raw[:cut])


def test_truncated_large_block(real_blocks):
    raw = real_blocks[0].serialize()
    for cut in range(81, len(raw), 1009):
        with pytest.raises(ValueError, match=TRUNCATED):
            parse_block(raw[:cut])
    last = f"truncated transaction 212 locktime at byte {len(raw) - 4}: need 4 bytes, 3 left"
    with pytest.raises(ValueError, match=last):
        parse_block(raw[:-1])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw + b"\x00", "1 trailing bytes after the block at byte 285"),
        (lambda raw: raw[:80] + b"\x00", "block has no transactions"),
        (lambda raw: raw[:80] + b"\xfe\xff\xff\xff\x00" + raw[81:], "transaction count 16777215 at byte 80 cannot fit"),
        (lambda raw: raw[:80] + b"\xff" + b"\xff" * 8 + raw[81:], "above the limit"),
        (lambda raw: raw[:79], "truncated block header at byte 0: need 80 bytes, 79 left"),
    ],
)
def test_malformed_block(shared_data, mutate, message):
    with pytest.raises(ValueError, match=message):
        parse_block(mutate(_genesis_raw(shared_data)))


def _frame(raw: bytes, magic: bytes = MAINNET_MAGIC, length: int | None = None) -> bytes:
    return magic + (len(raw) if length is None else length).to_bytes(4, "little") + raw


def test_read_blocks_plain_and_bz2(tmp_path, shared_data):
    raw = _genesis_raw(shared_data)
    data = _frame(raw) + _frame(raw)
    (tmp_path / "blk00000.dat").write_bytes(data + bytes(1000))  # Core preallocates: zero tail
    (tmp_path / "blk00001.dat.bz2").write_bytes(bz2.compress(data))
    (tmp_path / "empty.dat").write_bytes(b"")
    plain = read_blocks(tmp_path / "blk00000.dat")
    assert len(plain) == 2 and plain[0].serialize() == raw
    assert read_blocks(str(tmp_path / "blk00001.dat.bz2")) == plain
    assert read_blocks(tmp_path / "empty.dat") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            lambda raw: _frame(raw, magic=bytes.fromhex("0b110907")),
            r"block 0 at byte 0: bad magic 0b110907, expected f9beb4d9",
        ),
        (lambda raw: _frame(raw) + b"\xf9\xbe", r"block 1 at byte 293: truncated frame header \(2 of 8 bytes\)"),
        (
            lambda raw: _frame(raw) + _frame(raw, length=10**9),
            r"block 1 at byte 293: length 1000000000 runs past the end \(285 bytes left\)",
        ),
        (lambda raw: _frame(raw + b"\x00"), r"block 0 at byte 0: 1 trailing bytes after the block"),
        (
            lambda raw: _frame(raw[:250]),
            r"block 0 at byte 0: truncated transaction 0 output 0 script_pubkey at byte 214: need 67 bytes, 36 left",
        ),
        (lambda raw: _frame(raw) + b"\x00\x00\x01", r"block 1 at byte 293: truncated frame header"),
        (lambda raw: _frame(raw) + bytes(8) + b"junk", r"block 1 at byte 293: bad magic 00000000"),
    ],
)
def test_read_blocks_rejects_bad_framing(tmp_path, shared_data, content, message):
    path = tmp_path / "blk.dat"
    path.write_bytes(content(_genesis_raw(shared_data)))
    with pytest.raises(ValueError, match=message) as info:
        read_blocks(path)
    assert str(path) in str(info.value)


def test_read_blocks_rejects_corrupt_bz2(tmp_path, shared_data):
    good = bz2.compress(_frame(_genesis_raw(shared_data)))
    for name, data in (("garbage.dat.bz2", b"not bzip2"), ("cut.dat.bz2", good[: len(good) // 2])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="not a valid bz2 stream"):
            read_blocks(tmp_path / name)
