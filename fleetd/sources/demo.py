"""The demo chain: an embedded job source that behaves like a regtest node.

It keeps its own chain tip, builds real templates (coinbase with BIP34 height, pool tag,
extranonce slot and witness commitment; a handful of synthetic but well-formed
transactions), and moves to a new block when a submitted block is valid or when the
configured interval passes (as if another miner had found one). Its network difficulty is
low by default so simulated rigs find blocks.

Time comes only from the injected ``clock``, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import statistics
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetd import log as logging
from fleetd.chain.byteorder import hash_from_display, hash_to_display, pack_header
from fleetd.chain.hashes import sha256d
from fleetd.chain.network import RETARGET_INTERVAL_BLOCKS, EpochBlockTimes, NetworkState, epoch_start_height
from fleetd.chain.serialize import Transaction, TxIn, TxOut
from fleetd.chain.target import bits_to_target, difficulty_to_target, target_to_bits
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.stratum.job import Job

from .base import BlockOutcome, BlockRejected, ExtranonceLayout, Publish, SolvedBlock, SourceHealth
from .coinbase_builder import (
    MAX_SCRIPT_SIZE,
    AssembledBlock,
    BlockTemplate,
    TemplateTx,
    assemble_solved_block,
    build_template,
    pool_tag_limit,
    push_data,
)

COIN = 100_000_000
INITIAL_SUBSIDY = 50 * COIN
REGTEST_HALVING_INTERVAL = 150  # chainparams: regtest halves the subsidy every 150 blocks
SUBSIDY_HALVINGS_TO_ZERO = 64  # Core's GetBlockSubsidy: a right shift of 64 or more is zero
VERSIONBITS_TOP_BITS = 0x20000000  # BIP9: the version Core's templates carry
MIN_BLOCK_VERSION = 4  # BIP65: Core rejects lower versions as bad-version
MEDIAN_TIME_SPAN = 11  # BIP113: median time past over the last 11 blocks
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60  # Core's validation: time-too-new beyond now + 2 h
OP_TRUE = 0x51
DEFAULT_PAYOUT_SCRIPT = bytes((OP_TRUE,))  # what Core's functional tests pay regtest coinbases to
DEFAULT_POOL_TAG = "/fleetd/"
MAX_SYNTHETIC_TRANSACTIONS = 1000
GENESIS_AGE = 600  # the synthetic genesis is dated one target block time before start-up
MAX_HEIGHT = 0x7FFFFFFF - 1  # the highest block the demo mines (BIP34 heights are signed 32-bit)
TIP_FOUND_BLOCKS = 16  # found-block records a tip carries (the journal keeps every block in full)
TIP_FORMAT = 1  # DemoTip.to_dict's "format"; from_dict refuses any other

@dataclass(frozen=True, slots=True)
class FoundBlock:
    """A block a rig found on the demo chain."""

    height: int
    hash: str  # display hex
    worker: str
    time: float  # wall time it was accepted
    raw: bytes = field(repr=False)  # the assembled block, as submitblock would receive it; b"" once resumed


@dataclass(frozen=True, slots=True)
class FoundRecord:
    """What a ``DemoTip`` keeps of a found block: all of ``FoundBlock`` but the block itself."""

    height: int
    hash: str  # display hex
    worker: str
    time: float

    def __post_init__(self) -> None:
        _count("found.height", self.height, 1, MAX_HEIGHT)
        _hex32("found.hash", self.hash)
        if not isinstance(self.worker, str):
            raise ValueError(f"found.worker = {self.worker!r}: must be text")
        _finite("found.time", self.time)


@dataclass(frozen=True, slots=True)
class DemoTip:
    """Everything the demo chain needs to continue exactly where it stopped.

    ``DemoChain.tip()`` makes one; ``DemoChain(resume=tip)`` continues from it. ``to_dict`` and
    ``from_dict`` carry it as plain JSON types (hashes as display hex); ``from_dict`` checks
    every field and raises ValueError naming the one at fault, since a stored row may be corrupt.
    """

    height: int  # of the tip (0: the genesis); the next block is height + 1
    hash: bytes  # the tip's block hash, internal byte order: the next block's prevhash
    times: tuple[int, ...]  # header times of up to the last 11 blocks, oldest first, ending with the tip's
    since: float  # wall time the tip was reached (the interval timer runs from it)
    economics_height: int  # height of the modelled network's tip (its block being mined is one above)
    economics_times: tuple[float, ...]  # the modelled epoch's block times, ending at economics_height
    found_total: int  # blocks rigs found on this chain, all told
    found: tuple[FoundRecord, ...]  # the last few of them, oldest first

    def __post_init__(self) -> None:
        _count("height", self.height, 0, MAX_HEIGHT - 1)
        if not isinstance(self.hash, bytes) or len(self.hash) != 32:
            raise ValueError(f"hash = {self.hash!r}: must be 32 bytes")
        _sequence("times", self.times, 1, min(MEDIAN_TIME_SPAN, self.height + 1))
        for t in self.times:
            _count("times", t, 0, 0xFFFFFFFF)
        _finite("since", self.since)
        _count("economics_height", self.economics_height, 0, MAX_HEIGHT - 1)
        epoch_blocks = self.economics_height - epoch_start_height(self.economics_height) + 1
        _sequence("economics_times", self.economics_times, 1, min(epoch_blocks, RETARGET_INTERVAL_BLOCKS))
        for t in self.economics_times:
            _finite("economics_times", t)
        _sequence("found", self.found, 0, TIP_FOUND_BLOCKS)
        for record in self.found:
            if not isinstance(record, FoundRecord):
                raise ValueError(f"found = {record!r}: must hold FoundRecord entries")
        _count("found_total", self.found_total, len(self.found), MAX_HEIGHT)
        heights = [record.height for record in self.found]
        if heights != sorted(set(heights)) or (heights and heights[-1] > self.height):
            raise ValueError(f"found: heights {heights} must rise and end at or below the tip's {self.height}")
        if heights and heights[-1] == self.height and self.found[-1].hash != hash_to_display(self.hash):
            raise ValueError(f"found: the block at the tip's height {self.height} is not the tip's hash")

    @property
    def time(self) -> int:
        """The tip's header time."""
        return self.times[-1]

    @property
    def median_time_past(self) -> int:
        return int(statistics.median_low(self.times))

    def to_dict(self) -> dict[str, object]:
        return {
            "format": TIP_FORMAT,
            "height": self.height,
            "hash": hash_to_display(self.hash),
            "times": list(self.times),
            "since": self.since,
            "economics_height": self.economics_height,
            "economics_times": list(self.economics_times),
            "found_total": self.found_total,
            "found": [
                {"height": r.height, "hash": r.hash, "worker": r.worker, "time": r.time} for r in self.found
            ],
        }

    @classmethod
    def from_dict(cls, data: object) -> DemoTip:
        if not isinstance(data, Mapping):
            raise ValueError(f"demo tip = {data!r}: must be a JSON object")
        fmt = _field(data, "format")
        if isinstance(fmt, bool) or fmt != TIP_FORMAT:
            raise ValueError(f"format = {fmt!r}: this fleetd reads demo tips of format {TIP_FORMAT}")
        found = []
        for i, entry in enumerate(_list(data, "found")):
            if not isinstance(entry, Mapping):
                raise ValueError(f"found[{i}] = {entry!r}: must be a JSON object")
            found.append(
                FoundRecord(
                    _field(entry, "height", f"found[{i}]."),
                    _field(entry, "hash", f"found[{i}]."),
                    _field(entry, "worker", f"found[{i}]."),
                    _field(entry, "time", f"found[{i}]."),
                )
            )
        return cls(
            height=_field(data, "height"),
            hash=hash_from_display(_hex32("hash", _field(data, "hash"))),
            times=tuple(_list(data, "times")),
            since=_field(data, "since"),
            economics_height=_field(data, "economics_height"),
            economics_times=tuple(_list(data, "economics_times")),
            found_total=_field(data, "found_total"),
            found=tuple(found),
        )


def block_subsidy(height: int) -> int:
    """Satoshis a coinbase may create at height, with regtest's halving interval."""
    halvings = height // REGTEST_HALVING_INTERVAL
    return 0 if halvings >= SUBSIDY_HALVINGS_TO_ZERO else INITIAL_SUBSIDY >> halvings


def synthetic_transactions(height: int, count: int) -> tuple[tuple[TemplateTx, int], ...]:
    """``count`` well-formed transactions (with their fees) for the block at height.

    Deterministic per height; even ones spend a P2WPKH output (witness), odd ones a P2PKH
    output (scriptSig), so the block has both txid-only and witness transactions. The
    signatures are placeholders of the right shape: the demo does not run scripts.
    """
    txs = []
    for i in range(count):
        seed = sha256d(b"fleetd demo tx" + struct.pack("<II", height, i))
        signature = b"\x30\x44\x02\x20" + seed + b"\x02\x20" + sha256d(seed) + b"\x01"  # DER-shaped, SIGHASH_ALL
        pubkey = b"\x02" + sha256d(seed + b"key")
        fee = 1_000 + 100 * i
        segwit = i % 2 == 0
        tx = Transaction(
            version=2,
            inputs=(TxIn(seed, i % 3, b"" if segwit else push_data(signature) + push_data(pubkey), 0xFFFFFFFD),),
            outputs=(
                TxOut(50_000 + 1_000 * i, b"\x00\x14" + sha256d(seed + b"pay")[:20]),  # P2WPKH
                TxOut(20_000, b"\x76\xa9\x14" + sha256d(seed + b"change")[:20] + b"\x88\xac"),  # P2PKH
            ),
            locktime=height - 1,
            witnesses=((signature, pubkey),) if segwit else (),
        )
        txs.append((TemplateTx.from_transaction(tx), fee))
    return tuple(txs)


@dataclass(frozen=True, slots=True)
class EconomicsNetwork:
    """The network the demo chain stands in for when the economics values its work.

    The demo's rigs are credited as full-size ASICs, so margins read true only against a
    mainnet-sized network: by default about 1 ZH/s, at a height past the 2024 halving, with
    the epoch so far mined at ``block_time_seconds`` a block (627 s projects about -4.3 %).
    """

    difficulty: float = 1.4e14
    height: int = 975_000  # of the block being mined when the demo starts
    block_time_seconds: float = 627.0

    def __post_init__(self) -> None:
        _positive_number("economics difficulty", self.difficulty)
        _positive_number("economics block_time_seconds", self.block_time_seconds)
        _count("economics height", self.height, 1, 0x7FFFFFFF - 1)

    def history(self, now: float) -> EpochBlockTimes:
        """Block times from the epoch's first block to the tip, the tip found ``now``."""
        epoch = EpochBlockTimes()
        tip = self.height - 1
        for h in range(epoch_start_height(tip), tip + 1):
            epoch.record(h, now - (tip - h) * self.block_time_seconds)
        return epoch


class DemoChain:
    """A regtest-like chain inside the daemon; implements ``JobSource``."""

    kind = "demo"

    def __init__(
        self,
        *,
        network_difficulty: float = 0.01,
        extranonce1_size: int = 4,
        extranonce2_size: int = 8,
        pool_tag: str | bytes = DEFAULT_POOL_TAG,
        payout_script: bytes | str = DEFAULT_PAYOUT_SCRIPT,
        block_interval_seconds: float | None = 600.0,
        refresh_seconds: float | None = 30.0,
        transactions_per_block: int = 4,
        max_found_blocks: int = 100,
        start_height: int = 1,
        economics_network: EconomicsNetwork | None = None,
        resume: DemoTip | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``resume``: continue from a tip ``tip()`` made (``start_height`` then does not apply).

        The next block is the tip's height + 1 on the tip's hash, its ntime above the tip's
        median time past; the interval timer runs on from when the tip was reached, so a chain
        stopped longer than the interval gets another miner's block as soon as it runs. The
        modelled network's height and epoch go on from the tip's (its difficulty and block
        time are the configured ones). A tip that does not fit the clock (a header time more
        than 2 hours ahead, as Core refuses, or a clock reading later than now) raises
        ValueError; the caller may start fresh instead.
        """
        self.extranonce = ExtranonceLayout(extranonce1_size, extranonce2_size)
        self.network_difficulty = _positive_number("network_difficulty", network_difficulty)
        self.nbits = target_to_bits(difficulty_to_target(self.network_difficulty))
        self.network_target = bits_to_target(self.nbits)  # the compact form is what the header commits to
        self.pool_tag = _pool_tag(pool_tag, self.extranonce.size)
        self.payout_script = _payout_script(payout_script)
        self.block_interval = _optional_interval("block_interval_seconds", block_interval_seconds)
        self.refresh_interval = _optional_interval("refresh_seconds", refresh_seconds)
        self.transactions_per_block = _count(
            "transactions_per_block", transactions_per_block, 0, MAX_SYNTHETIC_TRANSACTIONS
        )
        max_found_blocks = _count("max_found_blocks", max_found_blocks, 1, 1_000_000)
        self._clock = clock
        self.log = logging.get("fleetd.demo")

        now = clock.wall()
        self.economics_network = economics_network or EconomicsNetwork()
        self._found: deque[FoundBlock] = deque(maxlen=max_found_blocks)
        if resume is None:
            genesis_time = int(now) - GENESIS_AGE  # so the first job's ntime is simply the clock
            self._height = _count("start_height", start_height, 1, MAX_HEIGHT)  # the block being mined
            genesis_root = sha256d(b"fleetd demo genesis")
            self._prevhash = sha256d(pack_header(1, bytes(32), genesis_root, genesis_time, self.nbits, 0))
            self._recent_times: deque[int] = deque([genesis_time], maxlen=MEDIAN_TIME_SPAN)
            self._tip_since = clock.monotonic()
            self._tip_wall = now
            self._found_total = 0
            # the modelled network's height minus ours: both advance together
            self._economics_offset = self.economics_network.height - self._height
            self._epoch = self.economics_network.history(now)
        else:
            self._resume(resume, now)
        self._template = self._build_template()
        self._job_counter = secrets.randbits(32)  # ids from a restarted daemon do not collide with old ones
        self._last_job: Job | None = None
        self._last_job_time: float | None = None  # wall time, for health
        self._last_job_at: float | None = None  # monotonic time, for the refresh timer
        self._publish: Publish | None = None

    # -- the JobSource interface -------------------------------------------------------

    async def run(self, publish: Publish) -> None:
        if self._publish is not None:
            raise RuntimeError("DemoChain.run is already running; a source feeds one server")
        self._publish = publish
        try:
            self._emit(clean=True)  # a new subscriber starts from a clean job
            while True:
                now = self._clock.monotonic()
                if self.block_interval is not None and now >= self._tip_since + self.block_interval:
                    self._advance(self._other_miners_block(), self._next_ntime(self._clock.wall()))
                    self._emit(clean=True)
                elif self.refresh_interval is not None and now >= self._last_job_at + self.refresh_interval:
                    self._emit(clean=False)
                else:
                    await self._wait(now)
        finally:
            self._publish = None

    async def submit_block(self, block: SolvedBlock) -> BlockOutcome:
        job = block.job
        claimed = hash_to_display(block.hash)
        assembled: AssembledBlock | None = None
        try:
            assembled = self._assembled_block(block)
            self._check_header(block)
        except BlockRejected as exc:
            self.log.warning("block_refused", job_id=job.job_id, hash=claimed, reason=exc.reason, error=str(exc))
            if assembled is None:  # refused before it was built: no bytes to keep
                return BlockOutcome(False, claimed, job.height, exc.reason)
            return assembled.outcome(False, claimed, job.height, exc.reason)
        self._found.append(FoundBlock(job.height, claimed, block.worker, self._clock.wall(), assembled.raw))
        self._found_total += 1
        self._advance(block.hash, block.ntime)
        if self._publish is not None:
            self._emit(clean=True)
        return assembled.outcome(True, claimed, job.height, "accepted")

    def health(self) -> SourceHealth:
        running = self._publish is not None
        detail = (
            f"mining height {self._height} at network difficulty {self.network_difficulty:g}; "
            f"{self._found_total} blocks found"
        )
        return SourceHealth(self.kind, running, self._last_job_time, detail if running else "not running; " + detail)

    def network_state(self) -> NetworkState:
        """The mainnet-sized network the demo stands in for (its own difficulty is CPU-sized)."""
        model = self.economics_network
        return NetworkState(
            difficulty=model.difficulty,
            height=self._height + self._economics_offset,
            fees_btc_per_block=None,
            block_times_seconds=self._epoch.times(),
            block_times_origin="modelled",
        )

    def tip(self) -> DemoTip:
        """The state to continue this chain from after a restart: ``DemoChain(resume=...)``."""
        epoch_tip = self._epoch.tip_height
        assert epoch_tip == self._height + self._economics_offset - 1, "the modelled epoch ends at its tip"
        return DemoTip(
            height=self._height - 1,
            hash=self._prevhash,
            times=tuple(self._recent_times),
            since=self._tip_wall,
            economics_height=epoch_tip,
            economics_times=self._epoch.times(),
            found_total=self._found_total,
            found=tuple(
                FoundRecord(b.height, b.hash, b.worker, b.time) for b in list(self._found)[-TIP_FOUND_BLOCKS:]
            ),
        )

    # -- read-only views ----------------------------------------------------------------

    @property
    def height(self) -> int:
        """Height of the block being mined (the tip is one below)."""
        return self._height

    @property
    def prevhash(self) -> bytes:
        """Hash of the current tip, internal byte order."""
        return self._prevhash

    @property
    def current_job(self) -> Job | None:
        return self._last_job

    @property
    def found_blocks(self) -> tuple[FoundBlock, ...]:
        """Blocks found by rigs, oldest first (bounded)."""
        return tuple(self._found)

    # -- internals ------------------------------------------------------------------------

    def _resume(self, tip: DemoTip, now: float) -> None:
        if not isinstance(tip, DemoTip):
            raise ValueError(f"resume = {tip!r}: must be a DemoTip (DemoTip.from_dict reads a stored one)")
        if tip.time > now + MAX_FUTURE_BLOCK_TIME:  # a header time may run ahead, as far as Core allows
            raise ValueError(
                f"resume: the tip's header time {tip.time} is more than 2 hours ahead of the clock ({now:.0f}); "
                "the clock went back or the tip is not this chain's"
            )
        for name, value in (("since", tip.since), ("economics_times", max(tip.economics_times))):
            if value > now:  # readings of this clock: later than now means it went back
                raise ValueError(
                    f"resume: the tip's {name} {value:.3f} is ahead of the clock ({now:.3f}); "
                    "the clock went back or the tip is not this chain's"
                )
        self._height = tip.height + 1
        self._prevhash = tip.hash
        self._recent_times = deque(tip.times, maxlen=MEDIAN_TIME_SPAN)
        self._tip_wall = tip.since
        # the interval timer goes on from when the tip was reached (a long stop makes it due at once)
        self._tip_since = self._clock.monotonic() - max(0.0, now - tip.since)
        self._found_total = tip.found_total
        self._found.extend(FoundBlock(r.height, r.hash, r.worker, r.time, b"") for r in tip.found)
        self._economics_offset = tip.economics_height + 1 - self._height
        self._epoch = EpochBlockTimes()
        first = tip.economics_height - len(tip.economics_times) + 1
        for i, t in enumerate(tip.economics_times):
            self._epoch.record(first + i, t)

    def _assembled_block(self, block: SolvedBlock) -> AssembledBlock:
        """The block ``block`` makes on the current tip; BlockRejected when there is none to make."""
        template = block.job.block_data
        if any(found.hash == hash_to_display(block.hash) for found in self._found):
            raise BlockRejected("duplicate", "this block was found already")
        if not isinstance(template, BlockTemplate):
            raise BlockRejected("unknown-work", "the job carries no demo template")
        if template.prevhash != self._prevhash:
            raise BlockRejected("stale-prevblk", "the tip has moved past the job's parent")
        return assemble_solved_block(template, block, self.extranonce)

    def _check_header(self, block: SolvedBlock) -> None:
        """The header's time and version, as Core would check them; BlockRejected otherwise."""
        if block.ntime <= self._median_time_past():
            raise BlockRejected("time-too-old", f"ntime {block.ntime} is not above the median time past")
        if block.ntime > self._clock.wall() + MAX_FUTURE_BLOCK_TIME:
            raise BlockRejected("time-too-new", f"ntime {block.ntime} is more than 2 hours ahead")
        if block.version < MIN_BLOCK_VERSION:
            raise BlockRejected(f"bad-version(0x{block.version:08x})", "versions below 4 are obsolete (BIP65)")

    def _build_template(self) -> BlockTemplate:
        txs = synthetic_transactions(self._height, self.transactions_per_block)
        value = block_subsidy(self._height) + sum(fee for _, fee in txs)
        return build_template(
            height=self._height,
            prevhash=self._prevhash,
            nbits=self.nbits,
            transactions=[tx for tx, _ in txs],
            outputs=[TxOut(value, self.payout_script)],
            extranonce_size=self.extranonce.size,
            pool_tag=self.pool_tag,
        )

    def _emit(self, clean: bool) -> None:
        """Make a job on the current template and publish it."""
        self._job_counter = (self._job_counter + 1) & 0xFFFFFFFF
        ntime = self._next_ntime(self._clock.wall())
        job = self._template.job(f"{self._job_counter:08x}", VERSIONBITS_TOP_BITS, ntime, clean)
        self._last_job, self._last_job_time, self._last_job_at = job, self._clock.wall(), self._clock.monotonic()
        assert self._publish is not None
        self._publish(job)

    def _advance(self, block_hash: bytes, ntime: int) -> None:
        """Move the tip onto a new block: every job on the old one becomes stale."""
        self._prevhash = block_hash
        self._height += 1
        self._recent_times.append(ntime)
        self._tip_since = self._clock.monotonic()
        self._tip_wall = self._clock.wall()
        self._template = self._build_template()
        self._epoch.record(self._height + self._economics_offset - 1, self._tip_wall)

    def _other_miners_block(self) -> bytes:
        """Hash of the block "someone else" found on the current tip: header-shaped, not mined."""
        root = sha256d(b"fleetd demo: another miner" + self._prevhash)
        ntime = self._next_ntime(self._clock.wall())
        header = pack_header(VERSIONBITS_TOP_BITS, self._prevhash, root, ntime, self.nbits, 0)
        return sha256d(header)

    def _median_time_past(self) -> int:
        return int(statistics.median_low(self._recent_times))

    def _next_ntime(self, now: float) -> int:
        # Core's UpdateTime: the clock, but never at or below the median time past.
        return max(int(now), self._median_time_past() + 1)

    async def _wait(self, now: float) -> None:
        deadlines = []
        if self.block_interval is not None:
            deadlines.append(self._tip_since + self.block_interval)
        if self.refresh_interval is not None:
            deadlines.append(self._last_job_at + self.refresh_interval)
        if not deadlines:
            await asyncio.get_running_loop().create_future()  # nothing timed: idle until cancelled
            return
        # A block found meanwhile moves the deadlines; the loop re-reads them when this returns.
        await self._clock.sleep(max(0.0, min(deadlines) - now))


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} = {value!r}: must be a positive, finite number (for example 0.01)")
    return float(value)


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} = {value!r}: must be a finite number, 0 or more")
    return float(value)


def _hex32(name: str, value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"{name} = {value!r}: must be a 32-byte hash as 64 hex digits")
    return value


def _sequence(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, tuple):
        raise ValueError(f"{name} = {value!r}: must be a tuple")
    if not low <= len(value) <= high:  # the count, not the values: an epoch holds up to 2016 of them
        raise ValueError(f"{name} has {len(value)} entries: must hold from {low} to {high}")


def _field(data: Mapping, name: str, prefix: str = "") -> object:
    if name not in data:
        raise ValueError(f"{prefix}{name}: missing from the demo tip")
    return data[name]


def _list(data: Mapping, name: str) -> list:
    value = _field(data, name)
    if not isinstance(value, list):
        raise ValueError(f"{name} = {value!r}: must be a JSON array")
    return value


def _optional_interval(name: str, value: object) -> float | None:
    if value is None:
        return None
    return _positive_number(name, value)


def _count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} = {value!r}: must be an integer from {low} to {high}")
    return value


def _pool_tag(tag: str | bytes, extranonce_size: int) -> bytes:
    raw = tag.encode("utf-8") if isinstance(tag, str) else tag
    if not isinstance(raw, bytes):
        raise ValueError(f"pool_tag = {tag!r}: must be text or bytes")
    limit = pool_tag_limit(extranonce_size)
    if len(raw) > limit:
        raise ValueError(
            f"pool_tag = {tag!r} is {len(raw)} bytes; at most {limit} fit in the 100-byte coinbase "
            f"scriptSig beside the height and the {extranonce_size}-byte extranonce"
        )
    return raw


def _payout_script(script: bytes | str) -> bytes:
    if script in ("", b""):  # the config's "unset": pay the regtest placeholder
        return DEFAULT_PAYOUT_SCRIPT
    if isinstance(script, str):
        try:
            script = bytes.fromhex(script)
        except ValueError:
            raise ValueError(f"payout_script = {script!r}: must be a hex scriptPubKey") from None
    if not isinstance(script, bytes) or len(script) > MAX_SCRIPT_SIZE:
        raise ValueError(f"payout_script = {script!r}: must be a scriptPubKey of at most {MAX_SCRIPT_SIZE} bytes")
    return script
