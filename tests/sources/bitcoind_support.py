"""Helpers for the bitcoind source tests: a running source against a fake node."""

from __future__ import annotations

import asyncio

import pytest

from fake_bitcoind import FakeBitcoind
from fake_clock import FakeClock
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.sources.bitcoind import BitcoindConfig, BitcoindSource
from fleetd.stratum.job import Job

# Bitcoin Core's src/test/data/key_io_valid.json: a regtest P2WPKH and its script.
REGTEST_P2WPKH = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
REGTEST_P2WPKH_SCRIPT = bytes.fromhex("00146f58bac9506f9bfb821d62e69330410bb56f0085")
WAIT = 30.0  # seconds any condition in these tests may take (a hang guard); they normally take milliseconds


def read_from(fake: FakeClock) -> Clock:
    """The time ``fake`` says, with real sleeps: the source's loops keep talking to the fake
    node over real sockets while a test moves the time they read (ages grow without waiting)."""
    return Clock(wall=fake.wall, monotonic=fake.monotonic, sleep=asyncio.sleep)


def source_config(node: FakeBitcoind, **overrides) -> BitcoindConfig:
    options: dict = {
        "url": node.url,
        "payout_address": REGTEST_P2WPKH,
        "poll_interval_seconds": 0.05,
        "rpc_timeout_seconds": 10.0,  # the default: an RPC a loaded machine delays is not an outage
        "longpoll_timeout_seconds": 5.0,
        "submit_retry_seconds": 0.05,
    }
    if node.cookie_path is not None:
        options["cookie_file"] = str(node.cookie_path)
    else:
        options.update(user=node.user, password=node.password)
    options.update(overrides)
    return BitcoindConfig(**options)


class Running:
    """A BitcoindSource whose run() task is live, with every published job recorded."""

    def __init__(self, node: FakeBitcoind, clock: Clock = SYSTEM_CLOCK, **overrides) -> None:
        self.node = node
        self.source = BitcoindSource(source_config(node, **overrides), clock=clock)
        self.jobs: list[Job] = []

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.source.run(self.jobs.append))
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    @property
    def job(self) -> Job:
        return self.jobs[-1]

    async def wait_for(self, predicate, timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                if self.task.done():
                    self.task.result()  # surface a crash instead of a time-out
                await asyncio.sleep(0.01)

    async def first_job(self) -> Job:
        await self.wait_for(lambda: self.jobs)
        return self.jobs[0]

    async def next_job(self, after: int, **expect) -> Job:
        """The first job published after ``after`` jobs, optionally with expected attributes."""
        await self.wait_for(lambda: len(self.jobs) > after)
        job = self.jobs[after]
        for name, value in expect.items():
            assert getattr(job, name) == value, (name, getattr(job, name), value)
        return job
