"""Bitcoin Core as the job source: ``getblocktemplate`` in, ``submitblock`` out.

fleetd builds its own coinbase around each template (BIP34 height, pool tag, the
extranonce slot, one output paying ``payout_address`` with the template's
``coinbasevalue``, then the template's ``default_witness_commitment``) and hands jobs to
the server. New blocks are noticed by whichever path is first:

* longpoll: ``getblocktemplate`` with the last ``longpollid`` returns when the tip changes;
* ZMQ ``hashblock`` (optional), the fastest;
* a ``getbestblockhash`` poll every ``poll_interval_seconds``, the fallback that always runs;
* a refresh every ``refresh_interval_seconds`` picks up new transactions.

A new prevhash is published at once with ``clean_jobs=True``. Each path logs what it saw
and how long the node took.

For the economics, ``network_state()`` reports the template's difficulty and height, the
fees of recent templates, and the header timestamps of the tip's retarget epoch, which a
background task reads with ``getblockheader`` (the whole epoch at start-up, then one call
per new tip) without ever holding up a job.

A solved share becomes a block submitted at once; a transient failure (node down, slow,
busy) is retried until the node answers or its tip has moved past the block's parent.

When the node is unreachable or answers errors the source keeps running: rigs keep the
last job, ``health()`` reports the outage, and work resumes on its own when the node
answers again. Time comes from the injected ``clock``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from urllib.parse import urlsplit

import orjson
import zmq
import zmq.asyncio

from fleetd import log as logging
from fleetd.chain.address import CHAINS, Address, decode_address
from fleetd.chain.byteorder import U32_MAX, hash_from_display, hash_to_display, u32_from_hex
from fleetd.chain.coinbase import MAX_HEIGHT
from fleetd.chain.network import (
    INITIAL_SUBSIDY_SATS,
    SATS_PER_BTC,
    NetworkState,
    block_subsidy_sats,
    epoch_start_height,
)
from fleetd.chain.serialize import TxOut
from fleetd.chain.target import bits_to_difficulty, bits_to_target
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.stratum.job import Job

from .base import BlockOutcome, BlockRejected, ExtranonceLayout, Publish, SolvedBlock, SourceHealth
from .bitcoind_rpc import RpcClient, RpcError, RpcFailure, RpcTimeout, RpcUnavailable, snippet
from .coinbase_builder import (
    MAX_MONEY,
    AssembledBlock,
    BlockTemplate,
    TemplateTx,
    assemble_solved_block,
    build_template,
    pool_tag_limit,
)

DEFAULT_URL = "http://127.0.0.1:8332"
DEFAULT_POOL_TAG = "/fleetd/"
SEGWIT_RULES = ("segwit",)  # Core refuses getblocktemplate without the segwit rule (RPC_INVALID_PARAMETER)
RPC_IN_WARMUP = -28  # Core is still loading: the same call will work later
TRANSIENT_RPC_ERRORS = frozenset({RPC_IN_WARMUP})
OUTAGE_LOG_INTERVAL = 60.0  # seconds between reminders that the node is still out
SUBMIT_TIMEOUT_FLOOR = 30.0  # a full block can take the node seconds to validate
SUBMIT_RETRY_CAP = 5.0  # seconds: retries back off to this, so a returning node gets the block at once
ZMQ_TOPIC = b"hashblock"
# Fees per block: the last template of each of the last 6 heights (about an hour), the current
# one included; the last template before a block is the closest fleetd gets to what it paid,
# and an hour smooths one lucky block without lagging far behind the mempool.
FEE_WINDOW_BLOCKS = 6
REGTEST_HALVING_INTERVAL = 150  # Core's regtest; every other chain halves every 210,000 blocks
HEADERS_RETRY_CAP = 60.0  # seconds: a failing header walk backs off to this

# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BitcoindConfig:
    """Everything the bitcoind source needs; each bad value is a ValueError naming its key."""

    payout_address: str = ""
    url: str = DEFAULT_URL
    user: str = ""
    password: str = field(default="", repr=False)
    cookie_file: str = ""  # Core's .cookie: re-read when the node rejects it (it changes on every restart)
    pool_tag: str = DEFAULT_POOL_TAG
    zmq: str = ""  # the node's -zmqpubhashblock endpoint, e.g. "tcp://127.0.0.1:28332"; "" = off
    network: str = ""  # expected chain (main, test, testnet4, signet, regtest); "" = the node's
    longpoll: bool = True
    poll_interval_seconds: float = 1.0  # getbestblockhash; also the retry interval during an outage
    refresh_interval_seconds: float = 30.0  # a new template for new transactions
    max_job_age_seconds: float = 300.0  # during an outage, the last job is called stale after this
    rpc_timeout_seconds: float = 10.0
    longpoll_timeout_seconds: float = 120.0  # re-issue a longpoll that has not returned by then
    submit_retry_seconds: float = 1.0  # between submitblock attempts after a transient failure
    extranonce1_size: int = 4
    extranonce2_size: int = 8

    def __post_init__(self) -> None:
        _check_url(self.url)
        if not isinstance(self.payout_address, str) or not self.payout_address.strip():
            raise ValueError(
                "payout_address is required: the address the coinbase pays (P2PKH, P2SH, P2WPKH, P2WSH or P2TR)"
            )
        if self.network not in ("", *CHAINS):
            raise ValueError(f"network = {self.network!r}: use one of {', '.join(CHAINS)}, or leave it empty")
        try:
            address = decode_address(self.payout_address)
            if self.network:
                address.script_for(self.network)
        except ValueError as exc:
            raise ValueError(f"payout_address: {exc}") from None
        _check_auth(self.user, self.password, self.cookie_file)
        _check_zmq(self.zmq)
        if not isinstance(self.longpoll, bool):
            raise ValueError(f"longpoll = {self.longpoll!r}: must be true or false")
        for key in (
            "poll_interval_seconds",
            "refresh_interval_seconds",
            "max_job_age_seconds",
            "rpc_timeout_seconds",
            "longpoll_timeout_seconds",
            "submit_retry_seconds",
        ):
            _positive(key, getattr(self, key))
        layout = self.extranonce  # validates both sizes
        if not isinstance(self.pool_tag, str):
            raise ValueError(f"pool_tag = {self.pool_tag!r}: must be text")
        limit = pool_tag_limit(layout.size)
        if len(self.pool_tag_bytes) > limit:
            raise ValueError(
                f"pool_tag = {self.pool_tag!r} is {len(self.pool_tag_bytes)} bytes; at most {limit} fit in the "
                f"100-byte coinbase scriptSig beside the height and the {layout.size}-byte extranonce"
            )

    @property
    def address(self) -> Address:
        return decode_address(self.payout_address)

    @property
    def pool_tag_bytes(self) -> bytes:
        return self.pool_tag.encode("utf-8")

    @property
    def extranonce(self) -> ExtranonceLayout:
        return ExtranonceLayout(self.extranonce1_size, self.extranonce2_size)


def _check_url(url: object) -> None:
    if not isinstance(url, str):
        raise ValueError(f"url = {url!r}: must be text such as {DEFAULT_URL!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- reading it validates it (ValueError when out of range)
    except ValueError as exc:
        raise ValueError(f"url = {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url = {url!r}: must be http://host:port, for example {DEFAULT_URL!r}")
    if parts.username is not None or parts.password is not None:
        # Kept out of the URL so logs and health can print it without leaking a secret.
        raise ValueError(f"url = {_redact(url)!r}: put credentials in user/password or cookie_file, not the URL")


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


def _check_auth(user: object, password: object, cookie_file: object) -> None:
    for key, value in (("user", user), ("password", password), ("cookie_file", cookie_file)):
        if not isinstance(value, str):
            raise ValueError(f"{key} must be text, got {type(value).__name__}")
    if cookie_file and (user or password):
        raise ValueError("cookie_file and user/password are both set: use one way to authenticate")
    if not cookie_file and not (user and password):
        missing = "password" if user else "user" if password else "cookie_file, or user and password"
        raise ValueError(
            f"{missing} not set: bitcoind needs credentials, either cookie_file (the node's "
            "<datadir>/.cookie) or user and password (its rpcauth)"
        )
    if ":" in user:
        raise ValueError(f"user = {user!r}: must not contain ':' (HTTP basic auth separates user and password with it)")


def _check_zmq(endpoint: object) -> None:
    if not isinstance(endpoint, str):
        raise ValueError(f"zmq = {endpoint!r}: must be text such as 'tcp://127.0.0.1:28332'")
    if not endpoint:
        return
    scheme, sep, rest = endpoint.partition("://")
    if scheme == "ipc" and sep and rest:
        return
    host, colon, port = rest.rpartition(":")
    if scheme != "tcp" or not sep or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"zmq = {endpoint!r}: must be the node's -zmqpubhashblock endpoint, such as 'tcp://127.0.0.1:28332'"
        )


def _positive(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{key} = {value!r}: must be a positive number of seconds")
    return float(value)


# -- templates -----------------------------------------------------------------------------


class TemplateError(ValueError):
    """A getblocktemplate answer fleetd cannot build a block from."""


@dataclass(frozen=True, slots=True)
class NodeTemplate:
    """One getblocktemplate answer turned into a ready coinbase and merkle branch."""

    block: BlockTemplate
    version: int
    curtime: int
    mintime: int
    longpollid: str | None
    coinbasevalue: int

    @property
    def height(self) -> int:
        return self.block.height

    @property
    def prevhash(self) -> bytes:
        return self.block.prevhash

    def ntime(self, elapsed: float) -> int:
        """The header time ``elapsed`` seconds after the template was fetched (never below mintime)."""
        return min(U32_MAX, max(self.mintime, self.curtime + max(0, int(elapsed))))


def parse_template(
    gbt: object,
    *,
    payout_script: bytes,
    pool_tag: bytes,
    extranonce_size: int,
    known: Mapping[bytes, TemplateTx] | None = None,
) -> NodeTemplate:
    """Build a template from a getblocktemplate result; TemplateError names the bad field.

    ``known`` maps txids (internal order) to transactions of an earlier template, reused so
    consecutive templates share their transaction bytes instead of holding copies.
    """
    if not isinstance(gbt, dict):
        raise TemplateError(f"getblocktemplate returned {type(gbt).__name__}, not an object")
    version = _field_int(gbt, "version", 0, U32_MAX)
    height = _field_int(gbt, "height", 1, MAX_HEIGHT)
    curtime = _field_int(gbt, "curtime", 0, U32_MAX)
    mintime = _field_int(gbt, "mintime", 0, U32_MAX) if "mintime" in gbt else curtime
    coinbasevalue = _field_int(gbt, "coinbasevalue", 0, MAX_MONEY)
    try:
        prevhash = hash_from_display(gbt.get("previousblockhash"))  # RPC prints hashes in display order
        nbits = u32_from_hex(gbt.get("bits"), "bits")  # 8 big-endian hex digits
        bits_to_target(nbits)
    except ValueError as exc:
        raise TemplateError(f"getblocktemplate: {exc}") from None
    longpollid = gbt.get("longpollid")
    if longpollid is not None and not isinstance(longpollid, str):
        raise TemplateError(f"getblocktemplate longpollid must be a string, got {longpollid!r}")
    rules = gbt.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(rule, str) for rule in rules):
        raise TemplateError(f"getblocktemplate rules must be a list of strings, got {rules!r}")
    commitment = gbt.get("default_witness_commitment")
    if commitment is not None:
        try:
            commitment = bytes.fromhex(commitment)
        except (TypeError, ValueError):
            raise TemplateError(f"getblocktemplate default_witness_commitment is not hex: {commitment!r}") from None
    transactions = _template_transactions(gbt.get("transactions"), known or {})
    try:
        block = build_template(
            height=height,
            prevhash=prevhash,
            nbits=nbits,
            transactions=transactions,
            outputs=[TxOut(coinbasevalue, payout_script)],
            extranonce_size=extranonce_size,
            pool_tag=pool_tag,
            commitment_script=commitment,
        )
    except ValueError as exc:
        raise TemplateError(f"getblocktemplate: cannot build a coinbase: {exc}") from None
    return NodeTemplate(block, version, curtime, mintime, longpollid, coinbasevalue)


def template_request(longpollid: str | None = None) -> dict:
    """getblocktemplate's template_request object (BIP22/BIP23), with the segwit rule."""
    request: dict = {"rules": list(SEGWIT_RULES)}
    if longpollid is not None:
        request["longpollid"] = longpollid
    return request


class HeaderError(ValueError):
    """A getblockheader answer that does not describe the block asked for."""


@dataclass(frozen=True, slots=True)
class ChainHeader:
    """What the epoch's block times need of one block header (hashes in internal order)."""

    hash: bytes
    prevhash: bytes  # all zero for the genesis block
    height: int
    time: int  # the header timestamp, unix seconds


def parse_block_header(result: object, block_hash: bytes, height: int) -> ChainHeader:
    """A verbose getblockheader result for ``block_hash``, expected at ``height``; HeaderError otherwise."""
    if not isinstance(result, dict):
        raise HeaderError(f"getblockheader returned {type(result).__name__}, not an object")
    try:
        answered = hash_from_display(result.get("hash"))
        prevhash = result.get("previousblockhash")
        # Core leaves previousblockhash out for the genesis block only.
        prevhash = bytes(32) if prevhash is None and height == 0 else hash_from_display(prevhash)
    except ValueError as exc:
        raise HeaderError(f"getblockheader: {exc}") from None
    if answered != block_hash:
        raise HeaderError(f"getblockheader answered for {hash_to_display(answered)}, not {hash_to_display(block_hash)}")
    got_height, header_time = result.get("height"), result.get("time")
    if isinstance(got_height, bool) or got_height != height:
        raise HeaderError(f"getblockheader: block {hash_to_display(block_hash)} is at height {got_height!r}, "
                          f"expected {height}")  # fmt: skip
    if isinstance(header_time, bool) or not isinstance(header_time, int) or not 0 <= header_time <= U32_MAX:
        raise HeaderError(f"getblockheader time must be an integer from 0 to {U32_MAX}, got {header_time!r}")
    return ChainHeader(block_hash, prevhash, height, header_time)


def block_subsidy_on(chain: str | None, height: int) -> int:
    """The subsidy (satoshis) of the block at ``height`` on the chain Core names ``chain``."""
    if chain == "regtest":
        halvings = height // REGTEST_HALVING_INTERVAL
        return INITIAL_SUBSIDY_SATS >> halvings if halvings < 64 else 0
    return block_subsidy_sats(height)


def _field_int(gbt: dict, key: str, low: int, high: int) -> int:
    value = gbt.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TemplateError(f"getblocktemplate {key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _template_transactions(entries: object, known: Mapping[bytes, TemplateTx]) -> tuple[TemplateTx, ...]:
    if not isinstance(entries, list):
        raise TemplateError(f"getblocktemplate transactions must be a list, got {type(entries).__name__}")
    txs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TemplateError(f"getblocktemplate transaction {i} is not an object")
        try:
            txid = hash_from_display(entry.get("txid"))
            # "hash" is the wtxid (BIP141); nodes from before segwit only send txid.
            wtxid = hash_from_display(entry["hash"]) if "hash" in entry else txid
        except ValueError as exc:
            raise TemplateError(f"getblocktemplate transaction {i}: {exc}") from None
        cached = known.get(txid)
        if cached is not None and cached.wtxid == wtxid:
            txs.append(cached)
            continue
        try:
            data = bytes.fromhex(entry.get("data"))
        except (TypeError, ValueError):
            raise TemplateError(f"getblocktemplate transaction {i} data is not hex") from None
        if not data:
            raise TemplateError(f"getblocktemplate transaction {i} has no data")
        txs.append(TemplateTx(data, txid, wtxid))
    return tuple(txs)


# -- the source ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outage:
    since: float  # clock time of the first failure
    error: str  # the latest failure, for health and logs
    reported: float  # clock time of the last log line about it


class BitcoindSource:
    """Jobs from a Bitcoin Core node; implements ``JobSource``."""

    kind = "bitcoind"

    def __init__(self, config: BitcoindConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if not isinstance(config, BitcoindConfig):
            raise TypeError(f"config must be a BitcoindConfig, got {type(config).__name__}")
        self.config = config
        self.extranonce = config.extranonce
        self._clock = clock
        self._rpc = RpcClient(
            config.url,
            user=config.user,
            password=config.password,
            cookie_file=config.cookie_file,
            timeout=config.rpc_timeout_seconds,
        )
        self.log = logging.get("fleetd.bitcoind")
        self._address = config.address
        self._pool_tag = config.pool_tag_bytes
        self._publish: Publish | None = None
        self._lock = asyncio.Lock()  # one template update at a time, whichever path asked
        self._wake = asyncio.Event()  # ask the poll loop for a template now (after a block of ours)
        self._have_template = asyncio.Event()
        self._chain: str | None = None  # the node's chain, checked on first contact and after outages
        self._payout_script: bytes | None = None
        self._wrong_network: str | None = None
        self._current: NodeTemplate | None = None
        self._fetched_at: float | None = None  # monotonic time of the current template
        self._job_counter = secrets.randbits(32)  # ids from a restarted daemon do not collide with old ones
        self._last_job: Job | None = None
        self._last_job_time: float | None = None  # wall time, for health
        self._outage: _Outage | None = None
        self._expired_logged = False
        self._submitting = 0
        self._updates: Counter[str] = Counter()  # templates published, by the path that found them
        self._block_results: Counter[str] = Counter()  # submitblock outcomes by reason
        self._block_fees: dict[int, int] = {}  # height -> fees (sats) in the latest template for it
        self._headers: dict[int, ChainHeader] = {}  # the tip's epoch as read so far, by height
        self._headers_changed = 0  # bumped with every header read, for the block-times memo
        self._times_memo: tuple[bytes, int, tuple[float, ...]] | None = None  # tip, _headers_changed, times
        self._tip_moved = asyncio.Event()  # wakes the header walk

    # -- the JobSource interface -------------------------------------------------------

    async def run(self, publish: Publish) -> None:
        if self._publish is not None:
            raise RuntimeError("BitcoindSource.run is already running; a source feeds one server")
        self._publish = publish
        config = self.config
        self.log.info(
            "bitcoind_source_starting",
            url=config.url,
            zmq=config.zmq or None,
            longpoll=config.longpoll,
            poll_interval=config.poll_interval_seconds,
            refresh_interval=config.refresh_interval_seconds,
            payout_address=config.payout_address,
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._poll_loop(), name="bitcoind-poll")
                tasks.create_task(self._headers_loop(), name="bitcoind-headers")
                if config.longpoll:
                    tasks.create_task(self._longpoll_loop(), name="bitcoind-longpoll")
                if config.zmq:
                    tasks.create_task(self._zmq_loop(), name="bitcoind-zmq")
        finally:
            self._publish = None
            if not self._submitting:  # a block still being submitted keeps the session
                await self._rpc.close()

    async def submit_block(self, block: SolvedBlock) -> BlockOutcome:
        job = block.job
        claimed = hash_to_display(block.hash)
        log = self.log.bind(job_id=job.job_id, hash=claimed, worker=block.worker)
        template = job.block_data
        current = self._current
        try:
            if not isinstance(template, BlockTemplate):
                raise BlockRejected("unknown-work", "the job carries no template of this source")
            if current is not None and template.prevhash != current.prevhash:
                raise BlockRejected("stale-prevblk", "the node's tip has moved past the job's parent")
            assembled = assemble_solved_block(template, block, self.extranonce)
        except BlockRejected as exc:
            log.error("block_refused", reason=exc.reason, error=str(exc))
            return self._count(BlockOutcome(False, claimed, job.height, exc.reason))
        self._submitting += 1
        try:
            outcome = await self._submit(assembled, block.hash, template, block.worker)
        finally:
            self._submitting -= 1
            if self._publish is None and not self._submitting:
                await self._rpc.close()
        return self._count(outcome)

    def health(self) -> SourceHealth:
        now = self._clock.monotonic()
        detail, up = self._status(now)
        if self._publish is None:
            up, detail = False, "not running; " + detail
        return SourceHealth(self.kind, up, self._last_job_time, detail)

    # -- NetworkReporting ----------------------------------------------------------------

    def network_state(self) -> NetworkState | None:
        """The current template's difficulty and height, recent fees, and the epoch's header times.

        The block times are those read so far that run unbroken from the template's parent
        back towards the epoch start: all of the epoch once the header walk is done, fewer
        (or none) while it is still going.
        """
        template = self._current
        if template is None:
            return None
        try:
            difficulty = bits_to_difficulty(template.block.nbits)
        except ValueError:  # a zero target: no difficulty to speak of
            return None
        fees = self._block_fees
        fees_btc = sum(fees.values()) / len(fees) / SATS_PER_BTC if fees else None
        times = self._epoch_times(template.prevhash, template.height - 1)
        subsidy_btc = block_subsidy_on(self._chain, template.height) / SATS_PER_BTC
        return NetworkState(difficulty, template.height, fees_btc, times, "headers", subsidy_btc)

    def _epoch_times(self, tip_hash: bytes, tip_height: int) -> tuple[float, ...]:
        memo = self._times_memo
        if memo is not None and memo[0] == tip_hash and memo[1] == self._headers_changed:
            return memo[2]
        times: list[float] = []
        expected, height = tip_hash, tip_height
        start = epoch_start_height(tip_height)
        while height >= start:
            header = self._headers.get(height)
            if header is None or header.hash != expected:
                break
            times.append(float(header.time))
            expected, height = header.prevhash, height - 1
        result = tuple(reversed(times))
        self._times_memo = (tip_hash, self._headers_changed, result)
        return result

    # -- read-only views ----------------------------------------------------------------

    @property
    def current_job(self) -> Job | None:
        return self._last_job

    @property
    def chain(self) -> str | None:
        """The node's chain as getblockchaininfo names it, once known."""
        return self._chain

    @property
    def node_up(self) -> bool:
        """False while the node is unreachable or answering errors."""
        return self._current is not None and self._outage is None and self._wrong_network is None

    @property
    def job_expired(self) -> bool:
        """True while an outage has outlasted ``max_job_age_seconds``: rigs are mining stale work."""
        return self._outage is not None and self._job_age(self._clock.monotonic()) > self.config.max_job_age_seconds

    @property
    def template_updates(self) -> Mapping[str, int]:
        """Templates published, by the path that found them (startup, longpoll, zmq, poll, refresh, ...)."""
        return MappingProxyType(dict(self._updates))

    @property
    def block_results(self) -> Mapping[str, int]:
        """Blocks handled by submit_block, by outcome reason ("accepted", "high-hash", ...)."""
        return MappingProxyType(dict(self._block_results))

    async def aclose(self) -> None:
        """Close the HTTP session (run() does this itself when it ends)."""
        await self._rpc.close()

    # -- the paths that notice new blocks and transactions ---------------------------------

    async def _poll_loop(self) -> None:
        """First template, refresh timer, getbestblockhash poll, and recovery from outages."""
        while True:
            now = self._clock.monotonic()
            woken = self._wake.is_set()
            self._wake.clear()
            if self._current is None or self._outage is not None or self._wrong_network is not None:
                await self._update("startup" if self._current is None and self._outage is None else "retry")
            elif woken:
                await self._update("block_found")
            elif now - self._fetched_at >= self.config.refresh_interval_seconds:
                await self._update("refresh")
            else:
                await self._poll_tip()
            self._check_job_age()
            await self._pause(self.config.poll_interval_seconds)

    async def _poll_tip(self) -> None:
        started = self._clock.monotonic()
        try:
            best = await self._rpc.call("getbestblockhash")
            tip = hash_from_display(best)
        except (RpcFailure, ValueError) as exc:
            self._node_failed("getbestblockhash", exc)
            return
        if self._current is not None and tip != self._current.prevhash:
            self.log.info("new_block_seen", via="poll", hash=best, rpc_ms=self._ms_since(started))
            await self._update("poll", seen_tip=tip, detected=started)

    async def _longpoll_loop(self) -> None:
        await self._have_template.wait()
        while True:
            current = self._current
            if current is None or not current.longpollid or self._outage is not None or self._wrong_network:
                # No longpoll support, or the poll loop is handling an outage.
                await self._clock.sleep(self.config.poll_interval_seconds)
                continue
            started = self._clock.monotonic()
            try:
                gbt = await self._rpc.call(
                    "getblocktemplate",
                    [template_request(current.longpollid)],
                    timeout=self.config.longpoll_timeout_seconds,
                )
            except RpcTimeout:
                continue  # nothing happened for a long time: ask again
            except RpcFailure as exc:
                # The poll loop notices and reports outages; this path just waits for the node.
                self.log.debug("longpoll_failed", error=str(exc))
                await self._clock.sleep(self.config.poll_interval_seconds)
                continue
            returned = self._clock.monotonic()
            try:
                template = self._parse(gbt)
            except TemplateError as exc:
                self.log.warning("longpoll_bad_template", error=str(exc))
                await self._clock.sleep(self.config.poll_interval_seconds)
                continue
            async with self._lock:
                if self._outage is not None or self._chain is None:
                    continue  # the poll loop re-checks the node's chain before work resumes
                if self._current is not None and template.height < self._current.height:
                    self.log.info("longpoll_outdated", height=template.height, current=self._current.height)
                    continue  # an older view than a fetch that finished first
                self._apply(template, "longpoll", detected=returned, longpoll_wait_ms=_ms(returned - started))

    async def _headers_loop(self) -> None:
        """Keep the tip's epoch of headers read; failures are logged and retried, never fatal."""
        failures = 0
        while True:
            await self._tip_moved.wait()
            self._tip_moved.clear()
            try:
                await self._read_headers()
            except Exception as exc:  # RpcFailure, HeaderError, or a bug: none may end the source
                failures += 1
                retry_in = min(HEADERS_RETRY_CAP, self.config.poll_interval_seconds * 2 ** min(failures - 1, 16))
                fields = {"error": f"{type(exc).__name__}: {exc}", "retry_in": retry_in, "failures": failures}
                if not isinstance(exc, (RpcFailure, HeaderError)):
                    self.log.exception("epoch_headers_error", **fields)
                elif failures == 1:
                    self.log.warning("epoch_headers_failed", **fields)
                else:
                    self.log.debug("epoch_headers_failed", **fields)
                self._tip_moved.set()  # try again after the pause, from whatever the tip is then
                await self._clock.sleep(retry_in)
                continue
            if failures:
                self.log.info("epoch_headers_recovered", failures=failures)
                failures = 0

    async def _read_headers(self) -> None:
        """Walk back from the tip via previousblockhash to the epoch start, asking only for headers not yet read.

        At start-up that is up to 2016 calls, one at a time; after that one per new tip (more
        after a reorg, down to the fork). What each call brings is kept at once, so a walk cut
        short by a failure or a new tip resumes where it stopped.
        """
        template = self._current
        if template is None:
            return
        started = self._clock.monotonic()
        tip_hash, tip_height = template.prevhash, template.height - 1
        start = epoch_start_height(tip_height)
        headers = self._headers
        for height in [h for h in headers if not start <= h <= tip_height]:
            del headers[height]  # an earlier epoch, or above a reorg's new tip
        expected, height, calls = tip_hash, tip_height, 0
        while height >= start:
            current = self._current
            if current is None or current.prevhash != tip_hash:
                return  # a newer tip: the loop starts again from it
            header = headers.get(height)
            if header is None or header.hash != expected:
                result = await self._rpc.call("getblockheader", [hash_to_display(expected), True])
                calls += 1
                header = parse_block_header(result, expected, height)
                headers[height] = header
                self._headers_changed += 1
            expected, height = header.prevhash, height - 1
        if calls:
            log = self.log.info if calls > 1 else self.log.debug
            log("epoch_headers_read", tip_height=tip_height, blocks=tip_height - start + 1, calls=calls,
                elapsed_ms=self._ms_since(started))  # fmt: skip

    async def _zmq_loop(self) -> None:
        context = zmq.asyncio.Context()  # ours alone: no process-wide instance()
        socket = context.socket(zmq.SUB)
        try:
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.RCVHWM, 0)  # Core's zmq doc: never drop a notification
            socket.setsockopt(zmq.TCP_KEEPALIVE, 1)  # notice a node that vanished without closing
            socket.setsockopt(zmq.SUBSCRIBE, ZMQ_TOPIC)
            socket.connect(self.config.zmq)  # libzmq connects (and reconnects) in the background
            while True:
                try:
                    parts = await socket.recv_multipart()
                except zmq.ZMQError as exc:
                    self.log.warning("zmq_error", endpoint=self.config.zmq, error=str(exc))
                    await self._clock.sleep(self.config.poll_interval_seconds)
                    continue
                detected = self._clock.monotonic()
                # hashblock: topic, the hash in display order, a 4-byte little-endian sequence
                if len(parts) < 2 or parts[0] != ZMQ_TOPIC or len(parts[1]) != 32:
                    self.log.warning("zmq_bad_message", parts=[snippet(p.hex()) for p in parts[:3]])
                    continue
                block_hash = parts[1].hex()
                sequence = int.from_bytes(parts[2], "little") if len(parts) > 2 and len(parts[2]) == 4 else None
                self.log.info("new_block_seen", via="zmq", hash=block_hash, sequence=sequence)
                await self._update("zmq", seen_tip=hash_from_display(block_hash), detected=detected)
        finally:
            socket.close(linger=0)
            context.term()

    # -- templates and jobs ---------------------------------------------------------------

    async def _update(self, trigger: str, seen_tip: bytes | None = None, detected: float | None = None) -> None:
        """Fetch a template and publish a job from it; failures become (or extend) an outage."""
        detected = self._clock.monotonic() if detected is None else detected
        async with self._lock:
            if seen_tip is not None and self._current is not None and self._current.prevhash == seen_tip:
                return  # another path already moved onto this block
            try:
                if self._chain is None:
                    await self._check_network()
                if self._wrong_network is not None:
                    return
                started = self._clock.monotonic()
                gbt = await self._rpc.call("getblocktemplate", [template_request()])
                rpc_ms = self._ms_since(started)
                template = self._parse(gbt)
            except (RpcFailure, TemplateError) as exc:
                self._node_failed(f"getblocktemplate ({trigger})", exc)
                return
            self._node_answered()
            self._apply(template, trigger, detected=detected, rpc_ms=rpc_ms)

    async def _check_network(self) -> None:
        info = await self._rpc.call("getblockchaininfo")
        chain = info.get("chain") if isinstance(info, dict) else None
        if not isinstance(chain, str):
            raise TemplateError(f"getblockchaininfo has no chain name: {snippet(orjson.dumps(info))}")
        self._chain = chain
        expected = self.config.network
        try:
            if expected and chain != expected:
                raise ValueError(f"the node runs {chain}, but network = {expected!r} is configured")
            self._payout_script = self._address.script_for(chain)
        except ValueError as exc:
            message = f"payout_address: {exc}"
            if message != self._wrong_network:
                self.log.error("wrong_network", chain=chain, error=message)
            self._wrong_network = message
            self._chain = None  # look again next time: the node may be restarted on another chain
            return
        if self._wrong_network is not None:
            self.log.info("network_ok", chain=chain)
        self._wrong_network = None
        self.log.info("node_chain", chain=chain, payout_address=self.config.payout_address)

    def _parse(self, gbt: object) -> NodeTemplate:
        assert self._payout_script is not None
        known = {tx.txid: tx for tx in self._current.block.transactions} if self._current else None
        return parse_template(
            gbt,
            payout_script=self._payout_script,
            pool_tag=self._pool_tag,
            extranonce_size=self.extranonce.size,
            known=known,
        )

    def _apply(self, template: NodeTemplate, trigger: str, *, detected: float, **timing: float) -> None:
        """Make ``template`` current and publish a job on it (clean when the tip moved).

        ``detected`` is the monotonic time the path first saw the change; ``timing`` is logged.
        """
        current = self._current
        new_tip = current is None or template.prevhash != current.prevhash
        # A notification about a block we already have changes nothing; a refresh, or the
        # first template after an outage, always gives rigs a fresh job.
        if not new_tip and trigger not in ("refresh", "retry") and template.longpollid == current.longpollid:
            self.log.debug("template_unchanged", trigger=trigger, height=template.height)
            return
        self._current = template
        self._fetched_at = self._clock.monotonic()
        self._expired_logged = False
        self._have_template.set()
        self._note_fees(template)
        if new_tip:
            self._tip_moved.set()
        job = self._emit(clean=new_tip)
        self._updates[trigger] += 1
        self.log.info(
            "job_from_template",
            trigger=trigger,
            job_id=job.job_id if job else None,
            height=template.height,
            prevhash=hash_to_display(template.prevhash),
            clean=new_tip,
            transactions=len(template.block.transactions),
            coinbasevalue=template.coinbasevalue,
            latency_ms=self._ms_since(detected),
            **timing,
        )

    def _note_fees(self, template: NodeTemplate) -> None:
        fees = self._block_fees
        height = template.height
        for stale in [h for h in fees if not height - FEE_WINDOW_BLOCKS < h <= height]:
            del fees[stale]  # too old, or above a reorg's new tip
        # Never below zero: a node paying less than the subsidy has no fees to report.
        fees[height] = max(0, template.coinbasevalue - block_subsidy_on(self._chain, height))

    def _emit(self, clean: bool) -> Job | None:
        template = self._current
        assert template is not None and self._fetched_at is not None
        self._job_counter = (self._job_counter + 1) & 0xFFFFFFFF
        ntime = template.ntime(self._clock.monotonic() - self._fetched_at)
        job = template.block.job(f"{self._job_counter:08x}", template.version, ntime, clean)
        self._last_job, self._last_job_time = job, self._clock.wall()
        if self._publish is not None:
            self._publish(job)
        return job

    # -- blocks ----------------------------------------------------------------------------

    async def _submit(self, block: AssembledBlock, digest: bytes, template: BlockTemplate, worker: str) -> BlockOutcome:
        """submitblock until the node gives a verdict or its tip has moved past our parent."""
        display = hash_to_display(digest)
        height = template.height
        log = self.log.bind(hash=display, height=height, worker=worker)
        log.info("block_found", transactions=len(template.transactions) + 1, bytes=len(block.raw))
        started = self._clock.monotonic()
        timeout = max(self.config.rpc_timeout_seconds, SUBMIT_TIMEOUT_FLOOR)
        for attempt in itertools.count(1):
            try:
                result = await self._rpc.call("submitblock", [block.block_hex], timeout=timeout)
            except RpcError as exc:
                if exc.code not in TRANSIENT_RPC_ERRORS:
                    log.error("block_rejected", reason=f"rpc-error({exc.code})", error=exc.message, attempt=attempt)
                    return block.outcome(False, display, height, f"rpc-error({exc.code})")
                error: str = str(exc)
            except RpcUnavailable as exc:
                error = str(exc)
            else:
                if result is None or (
                    attempt > 1 and result in ("duplicate", "inconclusive") and await self._best_block() == digest
                ):  # an earlier attempt got through before its answer was lost
                    log.info("block_accepted", attempt=attempt, submit_ms=self._ms_since(started))
                    self._wake.set()  # the next job builds on our block: fetch it now
                    return block.outcome(True, display, height, "accepted")
                if isinstance(result, str):
                    log.error("block_rejected", reason=result, attempt=attempt, submit_ms=self._ms_since(started))
                    return block.outcome(False, display, height, result)
                error = f"submitblock returned {snippet(orjson.dumps(result))}, not null or a reason"
            tip = await self._best_block()
            if tip == digest:
                log.info("block_accepted", attempt=attempt, via="tip", submit_ms=self._ms_since(started))
                self._wake.set()
                return block.outcome(True, display, height, "accepted")
            if tip is not None and tip != template.prevhash:
                log.error("block_stale", error=error, attempt=attempt, tip=hash_to_display(tip))
                return block.outcome(False, display, height, "stale-prevblk")
            base = self.config.submit_retry_seconds
            retry_in = min(max(base, SUBMIT_RETRY_CAP), base * 2 ** min(attempt - 1, 16))
            log.warning("block_submit_retry", error=error, attempt=attempt, retry_in=retry_in)
            await self._clock.sleep(retry_in)
        raise AssertionError("unreachable")

    async def _best_block(self) -> bytes | None:
        """The node's tip (internal order), or None when it cannot say."""
        try:
            return hash_from_display(await self._rpc.call("getbestblockhash"))
        except (RpcFailure, ValueError):
            return None

    def _count(self, outcome: BlockOutcome) -> BlockOutcome:
        self._block_results[outcome.reason] += 1
        return outcome

    # -- outages -----------------------------------------------------------------------------

    def _node_failed(self, what: str, exc: Exception) -> None:
        now = self._clock.monotonic()
        error = f"{what}: {exc}"
        outage = self._outage
        if outage is None:
            self._outage = _Outage(now, error, now)
            self._chain = None  # the node may come back as another chain (or datadir): check again
            self.log.warning("node_outage", error=error, **self._job_fields(now))
        elif now - outage.reported >= OUTAGE_LOG_INTERVAL:
            self._outage = _Outage(outage.since, error, now)
            self.log.warning(
                "node_outage_continues", error=error, seconds=round(now - outage.since, 1), **self._job_fields(now)
            )
        else:
            self._outage = replace(outage, error=error)
            self.log.debug("node_outage_continues", error=error)

    def _node_answered(self) -> None:
        if self._outage is not None:
            self.log.info("node_recovered", outage_seconds=round(self._clock.monotonic() - self._outage.since, 1))
            self._outage = None

    def _check_job_age(self) -> None:
        if self.job_expired and not self._expired_logged:
            self._expired_logged = True
            limit = self.config.max_job_age_seconds
            self.log.error("job_expired", max_job_age=limit, **self._job_fields(self._clock.monotonic()))

    def _job_age(self, now: float) -> float:
        return 0.0 if self._fetched_at is None else now - self._fetched_at

    def _job_fields(self, now: float) -> dict:
        if self._current is None:
            return {"job": None}
        return {"job_height": self._current.height, "job_age": round(self._job_age(now), 1)}

    def _status(self, now: float) -> tuple[str, bool]:
        config = self.config
        node = f"node {config.url}" + (f" ({self._chain})" if self._chain else "")
        blocks = ""
        if self._block_results:
            accepted = self._block_results.get("accepted", 0)
            blocks = f"; blocks submitted: {sum(self._block_results.values())} ({accepted} accepted)"
        if self._wrong_network is not None:
            return f"{node}: {self._wrong_network}; no jobs until it is fixed{blocks}", False
        current = self._current
        if self._outage is not None:
            down_for = now - self._outage.since
            text = f"{node} failing for {down_for:.0f} s ({self._outage.error})"
            if current is None:
                return f"{text}; no job yet{blocks}", False
            age = self._job_age(now)
            if age > config.max_job_age_seconds:
                return (
                    f"{text}; the last job (height {current.height}) is {age:.0f} s old, past "
                    f"max_job_age_seconds = {config.max_job_age_seconds:g}: rigs are mining stale work{blocks}"
                ), False
            return (
                f"{text}; rigs keep the last job (height {current.height}, {age:.0f} s old, "
                f"stale after {config.max_job_age_seconds:g} s){blocks}"
            ), False
        if current is None:
            return f"{node}: waiting for the first block template{blocks}", False
        return (
            f"{node}: mining height {current.height} with {len(current.block.transactions)} transactions, "
            f"template {self._job_age(now):.0f} s old{blocks}"
        ), True

    def _ms_since(self, started: float) -> float:
        """Milliseconds since the monotonic time ``started``, for latency logs."""
        return _ms(self._clock.monotonic() - started)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a found block asks for a template now."""
        if self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
