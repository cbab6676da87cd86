"""A mining job as sources build it and Stratum sends it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Job:
    """Everything a miner needs to build headers, in internal byte order.

    The coinbase is ``coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2``; ``merkle_branch``
    holds the sibling hashes from the coinbase up to the root.

    ``block_data`` is the source's own, opaque to everything else: what it needs to turn a
    solved header into a block (a template's transactions, an upstream job's reference).
    It travels with the job through the one job store, so no source keeps jobs of its own.
    ``transaction_ids`` are the txids of the job's non-coinbase transactions, internal byte
    order, as ``mining.get_transactions`` answers them (empty when the source cannot know).
    """

    job_id: str
    prevhash: bytes
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean_jobs: bool
    height: int | None = None
    block_data: object = field(default=None, compare=False, repr=False)
    transaction_ids: tuple[bytes, ...] = field(default=(), compare=False, repr=False)
