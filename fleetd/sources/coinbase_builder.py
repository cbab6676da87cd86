"""Coinbase transactions for block templates, and whole blocks from solved shares.

Shared by every source that builds its own coinbase (demo chain, bitcoind). The coinbase
follows Bitcoin Core's miner (node/miner.cpp CreateNewBlock): version 2, the BIP34 height
first in the scriptSig, nLockTime = height - 1 made enforceable by a non-final sequence, the
payout outputs, then the BIP141 witness commitment as the last output. Core adds that
commitment to every block once segwit is active, with or without witness transactions, so
we do too.

The scriptSig is ``height push ‖ push(extranonce slot) ‖ push(pool tag)``: each part a
plain data push, so explorers decode it, and the slot sits where Stratum's coinb1 ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from fleetd.chain.byteorder import HASH_SIZE, HEADER_SIZE, hash_to_display, hash_to_int
from fleetd.chain.coinbase import MAX_HEIGHT, encode_height, scriptsig_span, split_coinbase
from fleetd.chain.hashes import sha256d
from fleetd.chain.merkle import merkle_branch, merkle_root
from fleetd.chain.serialize import (
    COINBASE_PREV_INDEX,
    COINBASE_PREV_TXID,
    Transaction,
    TxIn,
    TxOut,
    parse_transaction,
    write_compact_size,
)
from fleetd.chain.share import share_header
from fleetd.chain.target import bits_to_target
from fleetd.stratum.job import Job

from .base import BlockOutcome, BlockRejected, ExtranonceLayout, SolvedBlock

MIN_COINBASE_SCRIPTSIG_SIZE = 2  # consensus (CheckTransaction): bad-cb-length
MAX_COINBASE_SCRIPTSIG_SIZE = 100  # consensus (CheckTransaction): bad-cb-length
MAX_SCRIPT_SIZE = 10_000  # consensus: larger scripts are unspendable, Core's limit for a scriptPubKey
MAX_MONEY = 21_000_000 * 100_000_000  # consensus: bad-txns-vout-toolarge
COINBASE_TX_VERSION = 2  # Core's CTransaction::CURRENT_VERSION
MAX_SEQUENCE_NONFINAL = 0xFFFFFFFE  # Core's miner: makes the coinbase nLockTime (height - 1) enforced
WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")  # BIP141
WITNESS_RESERVED_VALUE = bytes(32)  # BIP141: the coinbase input's one witness item, as Core fills it
OP_RETURN = 0x6A
OP_PUSHDATA1 = 0x4C
_MAX_DIRECT_PUSH = 0x4B  # opcodes 0x01..0x4b push that many bytes
# BIP141: OP_RETURN, then one push of 36 bytes (0x24): the header and the commitment.
_COMMITMENT_PREFIX = bytes((OP_RETURN, len(WITNESS_COMMITMENT_HEADER) + HASH_SIZE)) + WITNESS_COMMITMENT_HEADER
WITNESS_COMMITMENT_SCRIPT_SIZE = len(_COMMITMENT_PREFIX) + HASH_SIZE  # BIP141: 38 bytes
_MAX_HEIGHT_PUSH = len(encode_height(MAX_HEIGHT))  # 5: the worst case a config check must allow for


@dataclass(frozen=True, slots=True)
class TemplateTx:
    """A non-coinbase transaction of a template: its wire bytes and both ids (internal order)."""

    data: bytes  # full serialization, witness included
    txid: bytes
    wtxid: bytes

    @classmethod
    def from_transaction(cls, tx: Transaction) -> TemplateTx:
        return cls(tx.serialize(with_witness=True), tx.txid, tx.wtxid)


@dataclass(frozen=True, slots=True)
class CoinbaseParts:
    """A coinbase as Stratum carries it: ``coinb1 ‖ extranonce ‖ coinb2`` (non-witness bytes)."""

    coinb1: bytes
    coinb2: bytes
    extranonce_size: int
    witness_commitment: bool  # True: the input needs WITNESS_RESERVED_VALUE as its witness

    def transaction(self, extranonce: bytes) -> Transaction:
        """The full coinbase with the extranonce filled in, witness reserved value included."""
        if len(extranonce) != self.extranonce_size:
            raise ValueError(f"extranonce must be {self.extranonce_size} bytes, got {len(extranonce)}")
        tx = parse_transaction(self.coinb1 + bytes(extranonce) + self.coinb2)
        return replace(tx, witnesses=((WITNESS_RESERVED_VALUE,),)) if self.witness_commitment else tx


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    """A template's coinbase, transactions and merkle branch: what its jobs carry as
    ``block_data`` so a solved one can be rebuilt into a block."""

    height: int
    prevhash: bytes  # internal byte order
    nbits: int
    coinbase: CoinbaseParts
    transactions: tuple[TemplateTx, ...]
    merkle_branch: tuple[bytes, ...]

    @property
    def txids(self) -> tuple[bytes, ...]:
        """The txids after the coinbase, in block order."""
        return tuple(tx.txid for tx in self.transactions)

    def job(self, job_id: str, version: int, ntime: int, clean_jobs: bool) -> Job:
        return Job(
            job_id=job_id,
            prevhash=self.prevhash,
            coinb1=self.coinbase.coinb1,
            coinb2=self.coinbase.coinb2,
            merkle_branch=self.merkle_branch,
            version=version,
            nbits=self.nbits,
            ntime=ntime,
            clean_jobs=clean_jobs,
            height=self.height,
            block_data=self,
            transaction_ids=self.txids,
        )


def push_data(data: bytes) -> bytes:
    """The smallest script push of data (direct push or OP_PUSHDATA1)."""
    if len(data) <= _MAX_DIRECT_PUSH:
        return bytes((len(data),)) + data
    if len(data) <= 0xFF:
        return bytes((OP_PUSHDATA1, len(data))) + data
    raise ValueError(f"a coinbase push holds at most 255 bytes, got {len(data)}")


def pool_tag_limit(extranonce_size: int) -> int:
    """The longest pool tag that fits in the scriptSig beside any height and the extranonce slot."""
    room = MAX_COINBASE_SCRIPTSIG_SIZE - _MAX_HEIGHT_PUSH - len(push_data(bytes(extranonce_size)))
    return max(0, room - 1 if room - 1 <= _MAX_DIRECT_PUSH else room - 2)


def witness_commitment(wtxids: Iterable[bytes]) -> bytes:
    """BIP141 commitment for the non-coinbase wtxids: the coinbase's wtxid counts as zero."""
    root = merkle_root([bytes(HASH_SIZE), *wtxids])
    return sha256d(root + WITNESS_RESERVED_VALUE)


def witness_commitment_script(commitment: bytes) -> bytes:
    """BIP141 output script: OP_RETURN, a 36-byte push, the header aa21a9ed, the commitment."""
    if len(commitment) != HASH_SIZE:
        raise ValueError(f"a witness commitment is {HASH_SIZE} bytes, got {len(commitment)}")
    return _COMMITMENT_PREFIX + commitment


def find_witness_commitment(coinbase: Transaction) -> bytes | None:
    """The commitment a coinbase carries (the last matching output, as Core reads it), or None."""
    for txout in reversed(coinbase.outputs):
        script = txout.script_pubkey
        if len(script) >= WITNESS_COMMITMENT_SCRIPT_SIZE and script.startswith(_COMMITMENT_PREFIX):
            return script[len(_COMMITMENT_PREFIX) : WITNESS_COMMITMENT_SCRIPT_SIZE]
    return None


def build_coinbase(
    height: int,
    extranonce_size: int,
    outputs: Sequence[TxOut],
    pool_tag: bytes = b"",
    commitment_script: bytes | None = None,
) -> CoinbaseParts:
    """A coinbase for a block at height, split around an extranonce slot of extranonce_size bytes.

    ``outputs`` are the payouts; ``commitment_script`` (BIP141), when given, goes last.
    """
    if isinstance(height, bool) or not isinstance(height, int) or not 1 <= height <= MAX_HEIGHT:
        raise ValueError(f"coinbase height must be 1..{MAX_HEIGHT}, got {height!r}")  # nLockTime is height - 1
    if isinstance(extranonce_size, bool) or not isinstance(extranonce_size, int) or extranonce_size < 1:
        raise ValueError(f"extranonce_size must be a positive integer, got {extranonce_size!r}")
    if not outputs:
        raise ValueError("a coinbase needs at least one payout output")
    for i, txout in enumerate(outputs):
        if not 0 <= txout.value <= MAX_MONEY:
            raise ValueError(f"coinbase output {i} value {txout.value} is outside 0..{MAX_MONEY} satoshis")
        if not 0 < len(txout.script_pubkey) <= MAX_SCRIPT_SIZE:
            raise ValueError(f"coinbase output {i} script must be 1..{MAX_SCRIPT_SIZE} bytes")
    if commitment_script is not None and (
        len(commitment_script) != WITNESS_COMMITMENT_SCRIPT_SIZE or not commitment_script.startswith(_COMMITMENT_PREFIX)
    ):
        raise ValueError(f"not a BIP141 witness commitment script: {bytes(commitment_script).hex()}")

    height_push = encode_height(height)
    slot_push = push_data(bytes(extranonce_size))
    tag_push = push_data(pool_tag) if pool_tag else b""
    script_sig = height_push + slot_push + tag_push
    if not MIN_COINBASE_SCRIPTSIG_SIZE <= len(script_sig) <= MAX_COINBASE_SCRIPTSIG_SIZE:
        raise ValueError(
            f"coinbase scriptSig would be {len(script_sig)} bytes, consensus allows "
            f"{MIN_COINBASE_SCRIPTSIG_SIZE}..{MAX_COINBASE_SCRIPTSIG_SIZE}: shorten the pool tag "
            f"(at most {pool_tag_limit(extranonce_size)} bytes with a {extranonce_size}-byte extranonce)"
        )
    all_outputs = tuple(outputs)
    if commitment_script is not None:
        all_outputs += (TxOut(0, commitment_script),)
    tx = Transaction(
        version=COINBASE_TX_VERSION,
        inputs=(TxIn(COINBASE_PREV_TXID, COINBASE_PREV_INDEX, script_sig, MAX_SEQUENCE_NONFINAL),),
        outputs=all_outputs,
        locktime=height - 1,
    )
    start, _ = scriptsig_span(tx)
    offset = start + len(height_push) + len(slot_push) - extranonce_size
    # Stratum hashes the non-witness bytes: that is what coinb1/coinb2 must hold.
    split = split_coinbase(tx.serialize(with_witness=False), offset, extranonce_size, 0)
    return CoinbaseParts(split.coinb1, split.coinb2, extranonce_size, commitment_script is not None)


def build_template(
    *,
    height: int,
    prevhash: bytes,
    nbits: int,
    transactions: Sequence[TemplateTx],
    outputs: Sequence[TxOut],
    extranonce_size: int,
    pool_tag: bytes = b"",
    commitment_script: bytes | None = None,
) -> BlockTemplate:
    """A template with its coinbase and merkle branch.

    Without ``commitment_script`` the witness commitment is computed from the transactions'
    wtxids; a bitcoind source passes the template's ``default_witness_commitment`` instead.
    """
    if len(prevhash) != HASH_SIZE:
        raise ValueError(f"prevhash must be {HASH_SIZE} bytes, got {len(prevhash)}")
    txs = tuple(transactions)
    if commitment_script is None:
        commitment_script = witness_commitment_script(witness_commitment(tx.wtxid for tx in txs))
    coinbase = build_coinbase(height, extranonce_size, outputs, pool_tag, commitment_script)
    # The coinbase leaf does not enter its own branch; any 32 bytes stand in for it.
    branch = merkle_branch([bytes(HASH_SIZE), *(tx.txid for tx in txs)])
    return BlockTemplate(height, bytes(prevhash), nbits, coinbase, txs, branch)


@dataclass(frozen=True, slots=True)
class AssembledBlock:
    """A solved block as it is submitted: its bytes, and the hex a ``BlockOutcome`` carries."""

    raw: bytes = field(repr=False)  # header ‖ tx count ‖ coinbase (witness included) ‖ transactions
    block_hex: str = field(repr=False)  # raw, as submitblock takes it
    header_hex: str  # the 80-byte header
    coinbase_hex: str = field(repr=False)  # the coinbase as it stands in the block, witness included

    def outcome(self, accepted: bool, hash: str, height: int | None, reason: str) -> BlockOutcome:
        """What became of this block, its bytes attached."""
        return BlockOutcome(accepted, hash, height, reason, self.block_hex, self.header_hex, self.coinbase_hex)


def block_header(template: BlockTemplate, extranonce: bytes, version: int, ntime: int, nonce: int) -> bytes:
    """The 80-byte header a solved share describes."""
    coinbase = template.coinbase.coinb1 + bytes(extranonce) + template.coinbase.coinb2
    return share_header(coinbase, template.merkle_branch, version, template.prevhash, ntime, template.nbits, nonce)


def assemble_block(template: BlockTemplate, extranonce: bytes, version: int, ntime: int, nonce: int) -> bytes:
    """Full block bytes for submitblock: header, tx count, coinbase (with witness), transactions.

    ``extranonce`` is extranonce1 ‖ extranonce2; ``version`` the header version after rolling.
    """
    return _assemble(template, extranonce, version, ntime, nonce)[0]


def _assemble(template: BlockTemplate, extranonce: bytes, version: int, ntime: int, nonce: int) -> tuple[bytes, bytes]:
    """(the whole block, its coinbase as serialized in it)."""
    coinbase = template.coinbase.transaction(extranonce).serialize(with_witness=True)
    raw = b"".join(
        (
            block_header(template, extranonce, version, ntime, nonce),
            write_compact_size(1 + len(template.transactions)),
            coinbase,
            *(tx.data for tx in template.transactions),
        )
    )
    return raw, coinbase


def assemble_solved_block(template: BlockTemplate, block: SolvedBlock, layout: ExtranonceLayout) -> AssembledBlock:
    """The whole block ``block`` solves on ``template``, checked once: its header must hash to
    ``block.hash``, and that hash must meet the template's target.

    Raises BlockRejected ("bad-extranonce-size", "bad-header-fields", "hash-mismatch",
    "high-hash"): such a block is never sent.
    """
    if len(block.extranonce1) != layout.extranonce1_size or len(block.extranonce2) != layout.extranonce2_size:
        raise BlockRejected(
            "bad-extranonce-size",
            f"extranonce1 and extranonce2 are {len(block.extranonce1)} + {len(block.extranonce2)} bytes, "
            f"the job's layout is {layout.extranonce1_size} + {layout.extranonce2_size}",
        )
    extranonce = block.extranonce1 + block.extranonce2
    try:
        raw, coinbase = _assemble(template, extranonce, block.version, block.ntime, block.nonce)
    except ValueError as exc:
        raise BlockRejected("bad-header-fields", str(exc)) from None
    header = raw[:HEADER_SIZE]
    digest = sha256d(header)
    if digest != block.hash:
        raise BlockRejected(
            "hash-mismatch",
            f"the assembled header hashes to {hash_to_display(digest)}, the share to {hash_to_display(block.hash)}",
        )
    if hash_to_int(digest) > bits_to_target(template.nbits):
        raise BlockRejected("high-hash", f"{hash_to_display(digest)} is above the network target")
    return AssembledBlock(raw, raw.hex(), header.hex(), coinbase.hex())
