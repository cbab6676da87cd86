"""A mining job as sources build it and Stratum sends it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Job:
    """Everything a miner needs to build headers, in internal byte order.

    The coinbase is ``coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2``; ``merkle_branch``
    holds the sibling hashes from the coinbase up to the root.
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
