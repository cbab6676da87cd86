"""The coinbase builder: Core-shaped coinbases, the BIP141 commitment, whole blocks from a share."""

from __future__ import annotations

import hashlib

import pytest

from fleetd.chain.coinbase import MAX_HEIGHT, bip34_height, encode_height
from fleetd.chain.serialize import Transaction, TxIn, TxOut, parse_block, parse_transaction
from fleetd.sources.coinbase_builder import (
    MAX_COINBASE_SCRIPTSIG_SIZE,
    TemplateTx,
    assemble_block,
    build_coinbase,
    build_template,
    find_witness_commitment,
    pool_tag_limit,
    witness_commitment_script,
)

PAYOUT = bytes.fromhex("0014") + bytes(range(20))
TAG = b"/fleetd-test/"


def dsha(data: bytes) -> bytes:  # the test's own hashing, independent of fleetd.chain
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def naive_root(leaves: list[bytes]) -> bytes:
    while len(leaves) > 1:
        if len(leaves) % 2:
            leaves = leaves + [leaves[-1]]
        leaves = [dsha(leaves[i] + leaves[i + 1]) for i in range(0, len(leaves), 2)]
    return leaves[0]


def tx(i: int, segwit: bool) -> TemplateTx:
    seed = dsha(bytes([i]))
    return TemplateTx.from_transaction(
        Transaction(
            version=2,
            inputs=(TxIn(seed, 0, b"" if segwit else b"\x01\x01", 0xFFFFFFFF),),
            outputs=(TxOut(1000 + i, PAYOUT),),
            locktime=0,
            witnesses=((b"\x30" * 71, b"\x02" * 33),) if segwit else (),
        )
    )


def template(n_tx: int = 5, height: int = 840_000, extranonce_size: int = 12, **kw):
    return build_template(
        height=height,
        prevhash=dsha(b"prev"),
        nbits=0x207FFFFF,
        transactions=[tx(i, segwit=i % 2 == 0) for i in range(n_tx)],
        outputs=[TxOut(312_500_000, PAYOUT)],
        extranonce_size=extranonce_size,
        pool_tag=TAG,
        **kw,
    )


def test_coinbase_is_shaped_like_bitcoin_cores():
    t = template()
    en = bytes(range(1, 13))
    cb = parse_transaction(t.coinbase.coinb1 + en + t.coinbase.coinb2)
    assert cb.is_coinbase and cb.version == 2
    script_sig = cb.inputs[0].script_sig
    assert script_sig == encode_height(840_000) + bytes([12]) + en + bytes([len(TAG)]) + TAG
    assert bip34_height(script_sig) == 840_000
    assert cb.locktime == 840_000 - 1 and cb.inputs[0].sequence == 0xFFFFFFFE  # Core's timelocked coinbase
    assert cb.outputs[0] == TxOut(312_500_000, PAYOUT)
    assert cb.outputs[-1].value == 0 and cb.outputs[-1].script_pubkey[:6].hex() == "6a24aa21a9ed"
    # coinb1 ends exactly where the slot starts: a different extranonce changes only those bytes
    assert t.coinbase.coinb1.endswith(encode_height(840_000) + bytes([12]))


def test_witness_commitment_matches_an_independent_computation():
    t = template(n_tx=5)
    wtxids = [bytes(32)] + [x.wtxid for x in t.transactions]
    expected = dsha(naive_root(wtxids) + bytes(32))
    cb = t.coinbase.transaction(bytes(12))
    assert find_witness_commitment(cb) == expected
    assert cb.witnesses == ((bytes(32),),)  # the reserved value goes on the coinbase input
    assert any(x.txid != x.wtxid for x in t.transactions)  # the test really covers witness txs


def test_commitment_is_present_even_without_witness_transactions():
    # Bitcoin Core's GenerateCoinbaseCommitment adds it to every block once segwit is active.
    t = build_template(
        height=5, prevhash=bytes(32), nbits=0x207FFFFF, transactions=[tx(1, segwit=False)],
        outputs=[TxOut(1, PAYOUT)], extranonce_size=8,
    )  # fmt: skip
    cb = t.coinbase.transaction(bytes(8))
    assert find_witness_commitment(cb) == dsha(naive_root([bytes(32), t.transactions[0].wtxid]) + bytes(32))


def test_a_given_commitment_script_is_used_verbatim():
    # a bitcoind source passes the template's default_witness_commitment
    script = witness_commitment_script(b"\x11" * 32)
    t = template(commitment_script=script)
    assert t.coinbase.transaction(bytes(12)).outputs[-1] == TxOut(0, script)


@pytest.mark.parametrize("n_tx", [0, 1, 2, 3, 4, 7, 16])
def test_assembled_block_parses_with_the_right_merkle_root(n_tx):
    t = template(n_tx=n_tx)
    en = b"\xaa" * 12
    raw = assemble_block(t, en, 0x20000000 | 0x4000, 1_700_000_123, 0xDEADBEEF)
    block = parse_block(raw)
    txids = [dsha(block.transactions[0].serialize(with_witness=False))] + [x.txid for x in t.transactions]
    assert block.merkle_root == naive_root(txids)
    assert block.prevhash == t.prevhash and block.nbits == t.nbits
    assert (block.version, block.ntime, block.nonce) == (0x20004000, 1_700_000_123, 0xDEADBEEF)
    assert [x.serialize() for x in block.transactions[1:]] == [x.data for x in t.transactions]
    assert block.transactions[0].inputs[0].script_sig[4:17] == bytes([12]) + en
    assert block.serialize() == raw


@pytest.mark.parametrize("extranonce_size", [3, 12, 32])
def test_pool_tag_limit_is_exact_at_the_largest_height(extranonce_size):
    limit = pool_tag_limit(extranonce_size)
    cb = build_coinbase(MAX_HEIGHT, extranonce_size, [TxOut(0, PAYOUT)], b"t" * limit)
    script_sig = parse_transaction(cb.coinb1 + bytes(extranonce_size) + cb.coinb2).inputs[0].script_sig
    assert len(script_sig) <= MAX_COINBASE_SCRIPTSIG_SIZE
    with pytest.raises(ValueError, match="shorten the pool tag"):
        build_coinbase(MAX_HEIGHT, extranonce_size, [TxOut(0, PAYOUT)], b"t" * (limit + 1))


def test_pool_tag_limit_for_the_default_slot():
    # 100 - 5 (height push at most) - 13 (push of 12 bytes) = 82 bytes left: an OP_PUSHDATA1 of 80
    assert pool_tag_limit(12) == 80


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 0}, "height"),
        ({"outputs": []}, "at least one payout"),
        ({"outputs": [TxOut(21_000_000 * 10**8 + 1, PAYOUT)]}, "value"),
        ({"outputs": [TxOut(1, b"")]}, "script"),
        ({"commitment_script": b"\x6a\x24" + bytes(36)}, "BIP141"),
        ({"extranonce_size": 0}, "extranonce_size"),
    ],
)
def test_build_coinbase_rejects_bad_input(kwargs, message):
    args = {"height": 10, "extranonce_size": 12, "outputs": [TxOut(1, PAYOUT)]} | kwargs
    with pytest.raises(ValueError, match=message):
        build_coinbase(**args)


def test_coinbase_transaction_checks_the_extranonce_size():
    with pytest.raises(ValueError, match="12 bytes"):
        template().coinbase.transaction(bytes(11))
