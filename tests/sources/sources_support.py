"""Helpers for the source tests: a nonce grinder for blocks and for shares that miss."""

from __future__ import annotations

from collections.abc import Iterator

from fleetd import native
from fleetd.chain.byteorder import HEADER_SIZE, hash_to_display
from fleetd.chain.hashes import sha256d
from fleetd.chain.serialize import Block, parse_block, write_compact_size
from fleetd.chain.target import bits_to_target
from fleetd.stratum.job import Job
from fleetd.sources.base import BlockOutcome, SolvedBlock

EN1 = bytes.fromhex("0badc0de")
EN2 = bytes.fromhex("0102030405060708")
WORKER = "acct.rig1"


def shares(job: Job, en1: bytes = EN1, en2: bytes = EN2, ntime: int | None = None) -> Iterator[tuple[int, bytes, bool]]:
    """(nonce, hash, meets network target) for nonces 0, 1, 2, ... of this job."""
    prepared = native.PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, len(en1 + en2))
    target = bits_to_target(job.nbits)
    ntime = job.ntime if ntime is None else ntime
    for nonce in range(1 << 32):
        digest, _, meets_network = prepared.check(en1 + en2, job.version, ntime, nonce, target)
        yield nonce, digest, meets_network


def solve(job: Job, en1: bytes = EN1, en2: bytes = EN2, ntime: int | None = None, limit: int = 500_000) -> SolvedBlock:
    """Grind nonces until the header meets the job's network target."""
    for nonce, digest, meets in shares(job, en1, en2, ntime):
        if meets:
            return SolvedBlock(job, en1, en2, job.ntime if ntime is None else ntime, nonce, job.version, digest, WORKER)
        if nonce >= limit:
            break
    raise AssertionError(f"no block in {limit} nonces: is the network difficulty tiny?")


def miss(job: Job, en1: bytes = EN1, en2: bytes = EN2) -> tuple[int, bytes]:
    """A nonce (and its hash) that does NOT meet the network target."""
    for nonce, digest, meets in shares(job, en1, en2):
        if not meets:
            return nonce, digest
    raise AssertionError("unreachable")


def carried_block(outcome: BlockOutcome) -> Block:
    """The block ``outcome`` carries, checked against itself: its header is the block's first
    80 bytes and hashes to ``outcome.hash``, its coinbase is the block's first transaction."""
    raw = bytes.fromhex(outcome.block_hex)
    block = parse_block(raw)
    assert block.serialize() == raw
    header = bytes.fromhex(outcome.header_hex)
    assert header == raw[:HEADER_SIZE] == block.header
    assert hash_to_display(sha256d(header)) == outcome.hash
    coinbase = bytes.fromhex(outcome.coinbase_hex)
    assert block.transactions[0].serialize() == coinbase and block.transactions[0].is_coinbase
    start = HEADER_SIZE + len(write_compact_size(len(block.transactions)))
    assert raw[start : start + len(coinbase)] == coinbase  # the very bytes, where the block has them
    return block


def carries_no_block(outcome: BlockOutcome) -> bool:
    """True when ``outcome`` has no bytes: a block refused before it was assembled."""
    return outcome.block_hex is None and outcome.header_hex is None and outcome.coinbase_hex is None
