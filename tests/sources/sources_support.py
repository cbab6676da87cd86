"""Helpers for the source tests: a fake clock with a controllable sleep, and a nonce grinder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from fleetd import native
from fleetd.chain.byteorder import hash_to_int
from fleetd.chain.target import bits_to_target
from fleetd.stratum.job import Job
from fleetd.sources.base import SolvedBlock

EN1 = bytes.fromhex("0badc0de")
EN2 = bytes.fromhex("0102030405060708")
WORKER = "acct.rig1"


async def settle(rounds: int = 10) -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeTime:
    """One injectable clock: ``sleep`` blocks until ``advance`` moves time past its deadline."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []  # every delay asked for, in order
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        future = asyncio.get_running_loop().create_future()
        entry = (self.now + delay, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline, in order."""
        end = self.now + seconds
        await settle()
        while True:
            pending = [wake for wake, fut in self._sleepers if not fut.done()]
            if not pending or min(pending) > end:
                break
            self.now = max(self.now, min(pending))
            for wake, fut in list(self._sleepers):
                if wake <= self.now and not fut.done():
                    fut.set_result(None)
            await settle()
        self.now = end
        await settle()


def shares(job: Job, en1: bytes = EN1, en2: bytes = EN2, ntime: int | None = None) -> Iterator[tuple[int, bytes, bool]]:
    """(nonce, hash, meets network target) for nonces 0, 1, 2, ... of this job."""
    prepared = native.PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, len(en1 + en2))
    target = bits_to_target(job.nbits)
    ntime = job.ntime if ntime is None else ntime
    for nonce in range(1 << 32):
        digest = prepared.header_hash(en1 + en2, job.version, ntime, nonce)
        yield nonce, digest, hash_to_int(digest) <= target


def solve(job: Job, en1: bytes = EN1, en2: bytes = EN2, ntime: int | None = None, limit: int = 500_000) -> SolvedBlock:
    """Grind nonces until the header meets the job's network target."""
    for nonce, digest, meets in shares(job, en1, en2, ntime):
        if meets:
            return SolvedBlock(
                job.job_id, en1, en2, job.ntime if ntime is None else ntime, nonce, job.version, digest, WORKER
            )
        if nonce >= limit:
            break
    raise AssertionError(f"no block in {limit} nonces: is the network difficulty tiny?")


def miss(job: Job, en1: bytes = EN1, en2: bytes = EN2) -> tuple[int, bytes]:
    """A nonce (and its hash) that does NOT meet the network target."""
    for nonce, digest, meets in shares(job, en1, en2):
        if not meets:
            return nonce, digest
    raise AssertionError("unreachable")
