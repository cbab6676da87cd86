"""The BIP34 height read out of a Stratum coinb1: real coinbases, cut where pools cut them, and garbage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetd.chain.coinbase import MAX_HEIGHT, bip34_height, coinb1_height, encode_height, scriptsig_span
from fleetd.chain.serialize import write_compact_size
from fleetd.chain.share import share_from_block


HEIGHT_277647_PUSH = bytes.fromhex("038f3c04")  # 277647 = 0x043c8f, little-endian, three bytes
NULL_PREVOUT = bytes(32) + b"\xff\xff\xff\xff"


def coinb1_from(script_head: bytes, script_length: int | None = None, version: int = 1) -> bytes:
    length = len(script_head) + 12 if script_length is None else script_length
    return version.to_bytes(4, "little") + b"\x01" + NULL_PREVOUT + write_compact_size(length) + script_head


def test_block_277647_coinb1_reads_its_height(real_blocks):
    block = real_blocks[0]
    raw = block.transactions[0].serialize(with_witness=False)
    start, end = scriptsig_span(block.transactions[0])
    assert raw[start : start + 4] == HEIGHT_277647_PUSH
    # cut anywhere from the end of the height push to the end of the coinbase: the height reads
    for cut in range(start + 4, len(raw) + 1):
        assert coinb1_height(raw[:cut]) == 277647, cut
    # cut inside the push, or before it: no height, and no exception
    for cut in range(0, start + 4):
        assert coinb1_height(raw[:cut]) is None, cut
    # the split fleetd's own share code makes (the extranonce right after the height)
    share = share_from_block(block)
    assert share.coinb1.endswith(HEIGHT_277647_PUSH) and coinb1_height(share.coinb1) == 277647


def test_every_real_coinbase_reads_as_bip34_height_reads_its_scriptsig(real_blocks):
    for block in real_blocks:
        coinbase = block.transactions[0]
        raw = coinbase.serialize(with_witness=False)
        start, end = scriptsig_span(coinbase)
        script_sig = coinbase.inputs[0].script_sig
        for cut in range(start, end + 1):
            assert coinb1_height(raw[:cut]) == bip34_height(script_sig[: cut - start])
        assert coinb1_height(raw) == bip34_height(script_sig)
    # the version-1 blocks have no height: genesis starts with the push of its nBits, which
    # reads as a number, and the test block's first push runs past its four-byte scriptSig
    assert coinb1_height(real_blocks[1].transactions[0].serialize()) == 0x1D00FFFF
    assert coinb1_height(real_blocks[2].transactions[0].serialize()) is None


def test_heights_as_pools_encode_them():
    for height, tail in ((1, b""), (16, b"/x/"), (17, b"\x00"), (127, b"z"), (128, b""), (255, b""),
                         (32768, b"ab"), (874_944, b"/ViaBTC/"), (MAX_HEIGHT, b"")):  # fmt: skip
        assert coinb1_height(coinb1_from(encode_height(height) + tail)) == height
    # a long scriptSig length (the 0xfd form) is still a length, when it is canonical
    assert coinb1_height(coinb1_from(encode_height(874_944), script_length=300)) == 874_944
    # a coinb1 that is bytearray, as a network buffer may be
    assert coinb1_height(bytearray(coinb1_from(encode_height(840_000)))) == 840_000


def test_garbage_gives_none():
    good = coinb1_from(encode_height(874_944) + b"/pool/")
    assert coinb1_height(good) == 874_944
    cases = [
        b"", b"\x01", good[:41], good[:42], good[:44],  # too short to hold the push
        good[:4] + b"\x00\x01" + good[5:],  # witness marker: not the non-witness form Stratum uses
        good[:4] + b"\x02" + good[5:],  # two inputs: not a coinbase
        good[:5] + b"\x01" + good[6:],  # a real prevout, not the null one
        good[:37] + b"\x00\x00\x00\x00" + good[41:],  # prevout index 0
        good[:41] + b"\xfd\x14\x00" + good[42:],  # length 20 in the 0xfd form: non-canonical
        good[:41] + b"\xff" + good[42:],  # a length that needs eight more bytes
        good[:41] + b"\x00" + good[42:],  # an empty scriptSig
        good[:41] + b"\x02" + good[42:],  # a scriptSig shorter than its own height push
        coinb1_from(bytes.fromhex("04c0d40d0000")),  # non-minimal: a needless zero byte
        coinb1_from(bytes.fromhex("04ffffff80")),  # sign bit: a negative number
        coinb1_from(bytes.fromhex("4c03c0590d")),  # OP_PUSHDATA1
        coinb1_from(bytes.fromhex("0103")),  # 3 pushed as data instead of OP_3
        "not bytes", None, 874944,
    ]  # fmt: skip
    for case in cases:
        assert coinb1_height(case) is None, case


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data):
    height = coinb1_height(data)
    assert height is None or 0 <= height <= MAX_HEIGHT


@given(st.integers(0, MAX_HEIGHT), st.binary(max_size=90), st.integers(0, 99), st.binary(max_size=8))
def test_any_height_reads_back_from_coinb1(height, tail, cut, junk):
    head = encode_height(height) + tail
    coinb1 = coinb1_from(head)
    assert coinb1_height(coinb1) == height
    # a pool may cut coinb1 anywhere after the push; anything cut before it, or mangled, never raises
    assert coinb1_height(coinb1[: len(coinb1) - len(tail) + min(cut, len(tail))]) == height
    mangled = bytearray(coinb1)
    for i, b in enumerate(junk):
        mangled[(cut + i * 7) % len(mangled)] = b
    result = coinb1_height(bytes(mangled))
    assert result is None or 0 <= result <= MAX_HEIGHT
