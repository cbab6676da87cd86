"""The one job-source interface: the demo chain, bitcoind and an upstream pool all look like this.

A source owns the chain side of mining. It builds jobs and hands each new one to
``publish`` (``clean_jobs=True`` when the prevhash changes). It keeps no jobs of its own:
what it needs to turn a solved header into a block travels in ``Job.block_data`` through
the server's one job store, and comes back with the share. The server never needs to know
which kind it talks to.

Coinbase layout contract: every source builds ``coinb1``/``coinb2`` around an extranonce
slot of ``extranonce1_size + extranonce2_size`` bytes inside the coinbase scriptSig, with
the sizes given to it at construction (the server's defaults are 4 + 8).

A source that builds blocks itself (bitcoind, demo) is a ``BlockBuilder``. A source that
forwards shares to someone else's pool (upstream) is a ``ForwardingSource`` instead: it
decides the extranonce layout at run time (the server asks it and is told of changes
through ``ServerControl``), and the server offers it every share it accepted so the
source can pass on those that meet the pool's difficulty, and every block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fleetd.chain.byteorder import HASH_SIZE
from fleetd.chain.network import NetworkState
from fleetd.stratum.job import Job
from fleetd.stratum.events import SubmitReceived

# One extranonce1 per connection must stay unique across the process, and an extranonce2
# below 2 bytes gives a rig only 256 coinbases per job; above 16 bytes buys nothing and eats
# into the 100-byte scriptSig the pool tag shares.
EXTRANONCE1_SIZES = range(1, 17)
EXTRANONCE2_SIZES = range(2, 17)


@dataclass(frozen=True, slots=True)
class ExtranonceLayout:
    """The extranonce slot a source reserves in the coinbase scriptSig."""

    extranonce1_size: int = 4
    extranonce2_size: int = 8

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("extranonce1_size", self.extranonce1_size, EXTRANONCE1_SIZES),
            ("extranonce2_size", self.extranonce2_size, EXTRANONCE2_SIZES),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
                low, high = allowed.start, allowed.stop - 1
                raise ValueError(f"{name} = {value!r} is out of range: use an integer from {low} to {high} bytes")

    @property
    def size(self) -> int:
        """Bytes of the whole slot: extranonce1 ‖ extranonce2."""
        return self.extranonce1_size + self.extranonce2_size


@dataclass(frozen=True, slots=True)
class SolvedBlock:
    """A share that met the network target, on the job it was mined on.

    ``hash`` is the header hash the C core computed (internal byte order); the source checks
    it once, against the header of the block it assembles from ``job.block_data``.
    """

    job: Job
    extranonce1: bytes
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int  # the header version, version-rolling bits already applied
    hash: bytes
    worker: str

    def __post_init__(self) -> None:
        if not isinstance(self.extranonce1, bytes) or not isinstance(self.extranonce2, bytes):
            raise TypeError("SolvedBlock extranonce1 and extranonce2 must be bytes")
        if not isinstance(self.hash, bytes) or len(self.hash) != HASH_SIZE:
            raise ValueError(f"SolvedBlock.hash must be {HASH_SIZE} bytes")

    @property
    def job_id(self) -> str:
        return self.job.job_id


class BlockRejected(ValueError):
    """A solved block refused before it was sent; ``reason`` as BlockOutcome names it."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BlockOutcome:
    """What became of a submitted block.

    ``reason`` is "accepted" or a BIP22-style reject reason ("high-hash", "stale-work",
    "duplicate", ...) that logs and metrics can count as is.

    The block's bytes, as hex, for whoever keeps found blocks; None where there are none: a
    block refused before it was assembled has no bytes, and a block forwarded to an upstream
    pool has a header and a coinbase but no ``block_hex`` (the pool holds its transactions).

    * ``block_hex``: the whole serialized block, exactly as the source submitted it;
    * ``header_hex``: the 80-byte header in serialization order (its sha256d, reversed, is ``hash``);
    * ``coinbase_hex``: the coinbase as the miner completed it. A source that builds the block
      gives it as it stands in ``block_hex`` (witness included when the block commits to
      one); a forwarded block gives coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2, the bytes
      the miner hashed (the pool adds any witness).
    """

    accepted: bool
    hash: str  # display hex, as explorers and RPC print it
    height: int | None
    reason: str
    block_hex: str | None = None
    header_hex: str | None = None
    coinbase_hex: str | None = None


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A snapshot for /healthz and metrics."""

    kind: str  # "demo" | "bitcoind" | "upstream"
    up: bool
    last_job_time: float | None  # clock time the last job was published; None before the first
    detail: str


Publish = Callable[[Job], None]


@runtime_checkable
class JobSource(Protocol):
    """What the server needs from any source."""

    async def run(self, publish: Publish) -> None:
        """Publish the first job and every new one until cancelled, then clean up.

        ``publish`` is synchronous and must not block: it hands the job to the server.
        """
        ...

    def health(self) -> SourceHealth: ...


@runtime_checkable
class BlockBuilder(Protocol):
    """A source that turns a solved share into a block itself (bitcoind, demo).

    A ``ForwardingSource`` does not: its pool builds the block from the forwarded share.
    """

    async def submit_block(self, block: SolvedBlock) -> BlockOutcome:
        """Assemble the block from ``block.job.block_data`` and submit it.

        Its header must hash to ``block.hash``; one that does not is refused, never sent.
        """
        ...


@dataclass(frozen=True, slots=True)
class ShareOutcome:
    """What the upstream pool made of a forwarded share.

    ``reason`` is "accepted", a reject reason as fleetd names them ("stale",
    "low_difficulty", "duplicate", ...), "lost" (the connection ended before the answer)
    or "no_upstream" (no pool to send it to).
    """

    accepted: bool
    reason: str
    difficulty: float  # the upstream difficulty the share was sent at; 0.0 when not sent


class ServerControl(Protocol):
    """What a forwarding source may ask of the Stratum server."""

    def set_extranonce_layout(self, layout: ExtranonceLayout) -> None:
        """Rigs get this layout from now on (set_extranonce, else client.reconnect)."""
        ...

    def set_version_mask(self, mask: int) -> None:
        """The version-rolling mask rigs may use from now on (0: none)."""
        ...

    def set_difficulty_cap(self, difficulty: float | None) -> None:
        """No rig's difficulty may exceed this (the pool's own): a rig above it would never
        find the shares between the two targets, work the pool credits. None: no cap."""
        ...

    def withdraw_work(self, reason: str) -> None:
        """No usable work: stop handing out the last job until the next ``publish``."""
        ...


@runtime_checkable
class ForwardingSource(Protocol):
    """A source that passes shares on to an upstream pool (in addition to ``JobSource``)."""

    def extranonce_layout(self) -> ExtranonceLayout:
        """The layout rigs get now (per-rig extranonce1 and extranonce2 sizes)."""
        ...

    def attach(self, control: ServerControl) -> None:
        """Called once by the server that runs this source, before ``run``."""
        ...

    def submit_share(self, job: Job, share: SubmitReceived, hash: bytes) -> asyncio.Future[ShareOutcome] | None:
        """Forward a share the server accepted on ``job`` (``hash``: its header hash, internal
        byte order) if it meets the upstream difficulty or the job's network target (a block
        is forwarded whatever the pool's difficulty); None when it is not forwarded.

        Synchronous and non-blocking (called on the server's receive path for every accepted
        share, hence the session's own event rather than a copy); the future completes with
        the pool's answer, which is also the block's outcome when the share is a block.
        """
        ...


@runtime_checkable
class NetworkReporting(Protocol):
    """A source that can tell the economics what network it mines on (every built-in one can)."""

    def network_state(self) -> NetworkState | None:
        """Difficulty, height, fees and the epoch's block times as known now; None before the first job."""
        ...
