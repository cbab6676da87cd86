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
from dataclasses import dataclass, field

from fleetd import log as logging
from fleetd.chain.byteorder import hash_to_display, pack_header
from fleetd.chain.hashes import sha256d
from fleetd.chain.network import EpochBlockTimes, NetworkState, epoch_start_height
from fleetd.chain.serialize import Transaction, TxIn, TxOut
from fleetd.chain.target import bits_to_target, difficulty_to_target, target_to_bits
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.stratum.job import Job

from .base import BlockOutcome, BlockRejected, ExtranonceLayout, Publish, SolvedBlock, SourceHealth
from .coinbase_builder import (
    MAX_SCRIPT_SIZE,
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

@dataclass(frozen=True, slots=True)
class FoundBlock:
    """A block a rig found on the demo chain."""

    height: int
    hash: str  # display hex
    worker: str
    time: float  # wall time it was accepted
    raw: bytes = field(repr=False)  # the assembled block, as submitblock would receive it


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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
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
        genesis_time = int(now) - GENESIS_AGE  # so the first job's ntime is simply the clock
        self._height = _count("start_height", start_height, 1, 0x7FFFFFFF - 1)  # the block being mined
        genesis_root = sha256d(b"fleetd demo genesis")
        self._prevhash = sha256d(pack_header(1, bytes(32), genesis_root, genesis_time, self.nbits, 0))
        self._recent_times: deque[int] = deque([genesis_time], maxlen=MEDIAN_TIME_SPAN)
        self._tip_since = clock.monotonic()
        self._template = self._build_template()
        self._found: deque[FoundBlock] = deque(maxlen=max_found_blocks)
        self._job_counter = secrets.randbits(32)  # ids from a restarted daemon do not collide with old ones
        self._last_job: Job | None = None
        self._last_job_time: float | None = None  # wall time, for health
        self._last_job_at: float | None = None  # monotonic time, for the refresh timer
        self._publish: Publish | None = None
        self.economics_network = economics_network or EconomicsNetwork()
        self._economics_start_height = self._height
        self._epoch = self.economics_network.history(now)

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
        try:
            raw = self._validated_block(block)
        except BlockRejected as exc:
            self.log.warning("block_refused", job_id=job.job_id, hash=claimed, reason=exc.reason, error=str(exc))
            return BlockOutcome(False, claimed, job.height, exc.reason)
        self._found.append(FoundBlock(job.height, claimed, block.worker, self._clock.wall(), raw))
        self._advance(block.hash, block.ntime)
        if self._publish is not None:
            self._emit(clean=True)
        return BlockOutcome(True, claimed, job.height, "accepted")

    def health(self) -> SourceHealth:
        running = self._publish is not None
        detail = (
            f"mining height {self._height} at network difficulty {self.network_difficulty:g}; "
            f"{len(self._found)} blocks found"
        )
        return SourceHealth(self.kind, running, self._last_job_time, detail if running else "not running; " + detail)

    def network_state(self) -> NetworkState:
        """The mainnet-sized network the demo stands in for (its own difficulty is CPU-sized)."""
        model = self.economics_network
        return NetworkState(
            difficulty=model.difficulty,
            height=model.height + self._height - self._economics_start_height,
            fees_btc_per_block=None,
            block_times_seconds=self._epoch.times(),
            block_times_origin="modelled",
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

    def _validated_block(self, block: SolvedBlock) -> bytes:
        """The block ``block`` makes on the current tip, as Core would check it; BlockRejected otherwise."""
        template = block.job.block_data
        if any(found.hash == hash_to_display(block.hash) for found in self._found):
            raise BlockRejected("duplicate", "this block was found already")
        if not isinstance(template, BlockTemplate):
            raise BlockRejected("unknown-work", "the job carries no demo template")
        if template.prevhash != self._prevhash:
            raise BlockRejected("stale-prevblk", "the tip has moved past the job's parent")
        raw = assemble_solved_block(template, block, self.extranonce)
        if block.ntime <= self._median_time_past():
            raise BlockRejected("time-too-old", f"ntime {block.ntime} is not above the median time past")
        if block.ntime > self._clock.wall() + MAX_FUTURE_BLOCK_TIME:
            raise BlockRejected("time-too-new", f"ntime {block.ntime} is more than 2 hours ahead")
        if block.version < MIN_BLOCK_VERSION:
            raise BlockRejected(f"bad-version(0x{block.version:08x})", "versions below 4 are obsolete (BIP65)")
        return raw

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
        self._template = self._build_template()
        model = self.economics_network
        self._epoch.record(model.height + self._height - self._economics_start_height - 1, self._clock.wall())

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
