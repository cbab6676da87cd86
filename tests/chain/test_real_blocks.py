"""The six real mainnet blocks in ../shared/data: hashes, serialization, merkle trees, shares."""

from __future__ import annotations

import bz2

import pytest

from fleetd.chain.byteorder import hash_to_display, hash_to_int
from fleetd.chain.coinbase import bip34_height, scriptsig_span
from fleetd.chain.merkle import fold_branch, merkle_branch, merkle_root
from fleetd.chain.share import header_hash, share_from_block
from fleetd.chain.target import bits_to_target

# From ../shared/data/README.md, in the fixture's order (files sorted by name).
DISPLAY_HASHES = [
    "0000000000000000054a714e580b16c583701712ab91060e92dbde6eb1e052a8",  # 277647
    "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",  # genesis
    "00000000ebe5ec3e94d8dfe18100e5c0f3b1955bc6107fbe24d95732b814551b",
    "00000000952ccb1bf9b799fcd0cc654dd48363f76781f8b1c61dbf1696c39f97",
    "00000000bc3589303953766cc9364130cb97bc3749bae170f476d45f1e23f850",
    "000000002f264d6504013e73b9c913de9098d4d771c1bb219af475d2a01b128e",
]
TX_COUNTS = [213, 1, 1, 2, 3, 2]

# (extranonce1_size, extranonce2_size): the usual 4+8, and small ones that fit the
# 4-byte scriptSigs of the four difficulty-1 test blocks.
SIZES = [(4, 8), (2, 2), (1, 3), (0, 4), (4, 0), (0, 0)]


def _raw_frames(path) -> list[bytes]:
    """Blocks cut out of a blk file by hand, independently of read_blocks."""
    data, frames, pos = bz2.decompress(path.read_bytes()), [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        frames.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + length
    return frames


def test_block_hashes_match_the_readme(real_blocks):
    assert [hash_to_display(b.hash) for b in real_blocks] == DISPLAY_HASHES
    assert [len(b.transactions) for b in real_blocks] == TX_COUNTS
    assert real_blocks[0].nbits == 0x1903A30C and real_blocks[0].version == 2


def test_test_blocks_chain_onto_genesis(real_blocks):
    chain = real_blocks[1:]
    assert chain[0].prevhash == bytes(32)
    for parent, child in zip(chain, chain[1:]):
        assert child.prevhash == parent.hash


def test_blocks_reserialize_byte_identically(real_blocks, shared_data):
    names = sorted(p.name for p in shared_data.glob("*.dat.bz2"))
    frames = [frame for name in names for frame in _raw_frames(shared_data / name)]
    assert len(frames) == len(real_blocks)
    for block, raw in zip(real_blocks, frames):
        assert block.serialize() == raw
        offset = 80 + 1 + (2 if len(block.transactions) >= 0xFD else 0)  # header, tx count
        for tx in block.transactions:
            encoded = tx.serialize()
            assert raw[offset : offset + len(encoded)] == encoded
            offset += len(encoded)
        assert offset == len(raw)


def test_known_txids(real_blocks):
    genesis_coinbase = real_blocks[1].transactions[0]
    assert hash_to_display(genesis_coinbase.txid) == "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    assert genesis_coinbase.txid == real_blocks[1].merkle_root


def test_merkle_root_and_branch_match_the_header(real_blocks):
    for block in real_blocks:
        txids = block.txids
        assert merkle_root(txids) == block.merkle_root
        branch = merkle_branch(txids)
        assert len(branch) == (len(txids) - 1).bit_length()
        assert fold_branch(txids[0], branch) == block.merkle_root


def test_bip34_height_of_block_277647(real_blocks):
    coinbase = real_blocks[0].transactions[0]
    assert bip34_height(coinbase.inputs[0].script_sig) == 277647
    assert bip34_height(real_blocks[2].transactions[0].inputs[0].script_sig) is None  # 04a7b689: push runs off the end


def test_scriptsig_span_locates_the_scriptsig(real_blocks):
    for block in real_blocks:
        coinbase = block.transactions[0]
        start, end = scriptsig_span(coinbase)
        assert coinbase.serialize(with_witness=False)[start:end] == coinbase.inputs[0].script_sig


def _offsets(block, en_size):
    start, end = scriptsig_span(block.transactions[0])
    candidates = {start, start + 1, (start + end - en_size) // 2, end - en_size}
    return sorted(o for o in candidates if start <= o <= end - en_size)


@pytest.mark.parametrize(("en1", "en2"), SIZES)
def test_header_hash_reproduces_every_block(real_blocks, en1, en2):
    checked = []
    for block in real_blocks:
        target = bits_to_target(block.nbits)
        for offset in _offsets(block, en1 + en2):
            share = share_from_block(block, en1, en2, offset)
            assert (len(share.extranonce1), len(share.extranonce2)) == (en1, en2)
            digest = header_hash(**share.as_kwargs())
            assert digest == share.block_hash == block.hash
            assert hash_to_int(digest) <= target
            checked.append(block.hash)
    # 277647 and genesis have long scriptSigs; the four test blocks only fit 4 bytes.
    assert len(set(checked)) == (2 if en1 + en2 > 4 else 6)
    assert len(checked) >= 8


def test_default_split_follows_the_bip34_height(real_blocks):
    block = real_blocks[0]
    share = share_from_block(block)
    start, _ = scriptsig_span(block.transactions[0])
    assert len(share.coinb1) == start + 4  # 03 8f3c04 is the height push
    assert share.coinb1.endswith(bytes.fromhex("038f3c04"))
    assert share.extranonce1 + share.extranonce2 == bytes.fromhex("0400003d8b45124d696e6564")
    assert len(share.merkle_branch) == 8
    assert header_hash(**share.as_kwargs()) == block.hash


def test_default_split_without_bip34_starts_the_scriptsig(real_blocks):
    genesis = real_blocks[1]  # version 1: its first push is nBits, not a height
    share = share_from_block(genesis)
    assert len(share.coinb1) == scriptsig_span(genesis.transactions[0])[0]
    assert share.extranonce1 == bytes.fromhex("04ffff00")
    assert share.merkle_branch == ()


def test_default_sizes_do_not_fit_a_four_byte_scriptsig(real_blocks):
    message = r"extranonce bytes 42\.\.54 do not fit inside the scriptSig at bytes 42\.\.46"
    with pytest.raises(ValueError, match=message):
        share_from_block(real_blocks[2])


def test_changing_any_share_field_breaks_the_hash(real_blocks):
    share = share_from_block(real_blocks[0])
    kwargs = share.as_kwargs()
    flipped_branch = (bytes([share.merkle_branch[0][0] ^ 1]) + share.merkle_branch[0][1:], *share.merkle_branch[1:])
    for name, value in [
        ("extranonce2", bytes([share.extranonce2[0] ^ 1]) + share.extranonce2[1:]),
        ("coinb2", share.coinb2[:-1] + b"\x01"),
        ("merkle_branch", flipped_branch),
        ("nonce", share.nonce + 1),
        ("ntime", share.ntime + 1),
        ("version", share.version | 0x2000),
    ]:
        digest = header_hash(**{**kwargs, name: value})
        assert digest != share.block_hash, name
        assert hash_to_int(digest) > bits_to_target(share.nbits), name
