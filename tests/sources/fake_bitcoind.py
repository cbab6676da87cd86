"""A fake Bitcoin Core for the bitcoind source tests: JSON-RPC over HTTP on loopback, optional ZMQ.

It answers as Core does: getblocktemplate with Core's field set (real transactions with
real txids, wtxids, depends and weights; default_witness_commitment; longpollid that
waits), submitblock that checks the block the way consensus would (header hash against
the target, merkle root, BIP34 height, coinbase amount, BIP141 witness commitment) and
returns null or a BIP22 reason, getbestblockhash, getblockchaininfo, getblockheader and
getblockhash over a chain of real 80-byte headers with realistic timestamps (the whole
retarget epoch of the tip, and a few blocks of the one before). Replies follow the
request's JSON-RPC version: 1.x gets ``result``/``error``/``id`` with HTTP 500 (404 for
an unknown method) on errors, 2.0 gets HTTP 200 with ``result`` or ``error``.

Checks here are written with hashlib, independently of fleetd's chain helpers, so a bug
in those cannot hide itself.

Faults are queued per method (``fail``): garbage bodies, HTTP errors, JSON-RPC errors,
wrong result shapes, dropped connections, delays. ``stop``/``start`` take the node down
and up on the same port; ``rotate_cookie`` rewrites the cookie as a restarted node does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import secrets
import statistics
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.asyncio
from aiohttp import web

from fleetd.chain.serialize import Block, Transaction, TxIn, TxOut, parse_block

REGTEST_BITS = 0x207FFFFF  # regtest's powLimit: about every second hash is a block
COOKIE_USER = "__cookie__"
COINBASE_PREVOUT = (bytes(32), 0xFFFFFFFF)
WITNESS_HEADER = bytes.fromhex("aa21a9ed")
HALVING = 150  # regtest
MAINNET_HALVING = 210_000  # every other chain
RETARGET = 2016
EARLIER_EPOCH_BLOCKS = 16  # headers kept from before the tip's epoch: a walk must stop at the epoch start
METHOD_ARGS = {  # Core's parameter names, for named-parameter calls
    "getblocktemplate": ("template_request",),
    "submitblock": ("hexdata", "dummy"),
    "getbestblockhash": (),
    "getblockchaininfo": (),
    "getblockheader": ("blockhash", "verbose"),
    "getblockhash": ("height",),
}
_HEADER = struct.Struct("<I32s32sIII")
SEGWIT_RULE_ERROR = 'getblocktemplate must be called with the segwit rule set (call with {"rules": ["segwit"]})'


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def display(internal: bytes) -> str:
    return internal[::-1].hex()


def merkle(hashes: list[bytes]) -> bytes:
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [dsha(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def bits_target(nbits: int) -> int:
    return (nbits & 0x7FFFFF) << 8 * ((nbits >> 24) - 3)


def height_push(height: int) -> bytes:
    if 1 <= height <= 16:
        return bytes((0x50 + height,))
    number = height.to_bytes((height.bit_length() + 8) // 8, "little")
    return bytes((len(number),)) + number


def subsidy(height: int, interval: int = HALVING) -> int:
    return (50 * 100_000_000) >> (height // interval) if height // interval < 64 else 0


@dataclass(frozen=True)
class FakeHeader:
    raw: bytes  # the 80-byte header
    height: int

    @property
    def hash(self) -> bytes:
        return dsha(self.raw)

    @property
    def prevhash(self) -> bytes:
        return self.raw[4:36]

    @property
    def time(self) -> int:
        return _HEADER.unpack(self.raw)[3]


def realistic_times(count: int, last: int, seed: int) -> list[int]:
    """``count`` header timestamps ending near ``last``: exponential gaps averaging 600 s, and
    the few-minute jitter miners' clocks add, so a timestamp is sometimes below its parent's."""
    rng = random.Random(seed)
    steady = [last]
    for _ in range(count - 1):
        steady.append(steady[-1] - max(1, round(rng.expovariate(1 / 600))))
    return [t + rng.randint(-120, 120) for t in reversed(steady)]


@dataclass(frozen=True)
class MempoolTx:
    tx: Transaction
    fee: int
    depends: tuple[Transaction, ...] = ()

    @property
    def txid(self) -> bytes:
        return dsha(self.tx.serialize(with_witness=False))

    @property
    def wtxid(self) -> bytes:
        return dsha(self.tx.serialize(with_witness=True))

    @property
    def weight(self) -> int:
        return 3 * len(self.tx.serialize(with_witness=False)) + len(self.tx.serialize(with_witness=True))


def make_transactions(count: int, seed: bytes, parents: list[MempoolTx] | None = None) -> list[MempoolTx]:
    """Well-formed transactions of the common shapes; some spend earlier ones (GBT "depends").

    Signatures are random bytes of the right sizes: nothing here runs scripts.
    """
    made: list[MempoolTx] = []
    pool = list(parents or [])
    for i in range(count):
        r = dsha(seed + i.to_bytes(4, "little"))
        kind = r[0] % 4
        parent = pool[-3] if len(pool) >= 3 and r[1] % 5 == 0 else None
        prev = (parent.txid, 0) if parent else (r, r[2] % 4)
        der = b"\x30\x44\x02\x20" + dsha(r + b"r") + b"\x02\x20" + dsha(r + b"s") + b"\x01"
        pubkey = b"\x02" + dsha(r + b"pub")
        inputs = [TxIn(prev[0], prev[1], b"", 0xFFFFFFFD)]
        witnesses: list[tuple[bytes, ...]] = []
        if kind == 0:  # P2WPKH spend
            witnesses.append((der, pubkey))
        elif kind == 1:  # P2PKH spend
            inputs[0] = TxIn(prev[0], prev[1], bytes((len(der),)) + der + bytes((33,)) + pubkey, 0xFFFFFFFF)
        elif kind == 2:  # P2TR key path
            witnesses.append((dsha(r + b"a") + dsha(r + b"b"),))
        else:  # two inputs, P2WPKH both
            inputs.append(TxIn(dsha(r + b"in2"), 1, b"", 0xFFFFFFFD))
            witnesses += [(der, pubkey), (der, b"\x03" + dsha(r + b"pub2"))]
        outputs = [TxOut(10_000 + r[3] * 1000, b"\x00\x14" + dsha(r + b"o1")[:20])]
        if r[4] % 2:
            outputs.append(TxOut(5_000 + r[5] * 100, b"\x76\xa9\x14" + dsha(r + b"o2")[:20] + b"\x88\xac"))
        if r[6] % 3 == 0:
            outputs.append(TxOut(2_000, b"\x51\x20" + dsha(r + b"o3")))
        tx = Transaction(2, tuple(inputs), tuple(outputs), 0, tuple(witnesses))
        entry = MempoolTx(tx, 500 + 37 * i, (parent.tx,) if parent else ())
        made.append(entry)
        pool.append(entry)
    return made


class RpcFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Fault = Callable[["FakeBitcoind", web.Request, dict], Awaitable[web.StreamResponse | None]]


# -- faults: each returns a response to send instead, or None to go on normally -------------


def garbage(body: str | bytes, status: int = 200, content_type: str = "text/plain") -> Fault:
    async def fault(node, request, rpc):
        raw = body.encode() if isinstance(body, str) else body
        return web.Response(body=raw, status=status, content_type=content_type)

    return fault


def rpc_error(code: int, message: str) -> Fault:
    async def fault(node, request, rpc):
        return node.error_reply(rpc, code, message)

    return fault


def result(value: object) -> Fault:
    """A well-formed reply carrying a wrong result."""

    async def fault(node, request, rpc):
        return node.reply(rpc, value)

    return fault


def drop(after_processing: bool = False) -> Fault:
    """Close the connection without an answer; optionally after doing the work (a lost reply)."""

    async def fault(node, request, rpc):
        if after_processing:
            await node.dispatch(rpc["method"], rpc["params"])
        request.transport.abort()
        raise asyncio.CancelledError  # aiohttp stops the handler; the client sees a dropped connection

    return fault


def delay(seconds: float) -> Fault:
    async def fault(node, request, rpc):
        await asyncio.sleep(seconds)
        return None

    return fault


class FakeBitcoind:
    def __init__(
        self,
        *,
        chain: str = "regtest",
        nbits: int = REGTEST_BITS,
        mempool: int = 0,
        height: int = 200,
        user: str = "fleetd",
        password: str = "hunter2",
        cookie_dir: Path | None = None,
        zmq_pub: bool = False,
        witness_commitment: bool = True,
        longpoll: bool = True,
    ) -> None:
        self.chain = chain
        self.nbits = nbits
        self.target = bits_target(nbits)
        self.height = height  # of the tip
        self.halving = HALVING if chain == "regtest" else MAINNET_HALVING
        self.headers: dict[bytes, FakeHeader] = {}  # every block the node knows, stale ones included
        self.active: dict[int, bytes] = {}  # the best chain, by height, from first_height up
        self.first_height = max(0, height - height % RETARGET - EARLIER_EPOCH_BLOCKS)
        self.tip = bytes(32) if self.first_height == 0 else dsha(b"below the fake chain")
        self.known_blocks: set[bytes] = set()
        self._external = 0
        self.height = self.first_height - 1
        count = height - self.first_height + 1
        for t in realistic_times(count, int(time.time()) - 120, seed=height):
            self._connect(self.header_on_tip(t, b"initial"))
        self.mempool: list[MempoolTx] = make_transactions(mempool, b"mempool-0")
        self.tx_updates = 1  # Core's nTransactionsUpdated: part of longpollid
        self.witness_commitment = witness_commitment
        self.longpoll = longpoll
        self.cookie_path = None if cookie_dir is None else Path(cookie_dir) / ".cookie"
        self.user, self.password = user, password
        if self.cookie_path is not None:
            self.rotate_cookie()
        self.delay = 0.0  # every request waits this long: a slow node
        self.force_v2 = False  # answer 2.0-style even to 1.x requests (HTTP 200, no null error)
        self.calls: list[tuple[str, object]] = []
        self.submitted: list[bytes] = []  # every submitblock payload, as bytes
        self.accepted: list[Block] = []  # blocks that became the tip through submitblock
        self.faults: dict[str, deque[Fault]] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0
        self._zmq_context = zmq.asyncio.Context() if zmq_pub else None
        self._pub = None
        self.zmq_endpoint = ""
        self._zmq_sequence = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeBitcoind:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        self.port = self._runner.addresses[0][1]
        if self._zmq_context is not None and self._pub is None:
            self._pub = self._zmq_context.socket(zmq.PUB)
            self._pub.setsockopt(zmq.LINGER, 0)
            port = self._pub.bind_to_random_port("tcp://127.0.0.1")
            self.zmq_endpoint = f"tcp://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        """Take the node down: connections are refused until start()."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None

    async def close(self) -> None:
        await self.stop()
        if self._pub is not None:
            self._pub.close(linger=0)
        if self._zmq_context is not None:
            self._zmq_context.term()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rotate_cookie(self) -> None:
        """What a restarted bitcoind does: a new random password in <datadir>/.cookie."""
        assert self.cookie_path is not None
        self.user, self.password = COOKIE_USER, secrets.token_hex(32)
        self.cookie_path.write_text(f"{self.user}:{self.password}")

    def fail(self, method: str, *faults: Fault) -> None:
        """Queue faults for the next calls of ``method`` ("*" for any method)."""
        self.faults.setdefault(method, deque()).extend(faults)

    def methods_called(self) -> list[str]:
        return [method for method, _ in self.calls]

    # -- the chain -----------------------------------------------------------------------

    @property
    def longpollid(self) -> str:
        return display(self.tip) + str(self.tx_updates)

    @property
    def tip_hex(self) -> str:
        return display(self.tip)

    def add_transactions(self, count: int) -> None:
        self.mempool += make_transactions(count, b"mempool-%d" % self.tx_updates, self.mempool)
        self.tx_updates += 1
        self._notify_longpoll()

    def header_on_tip(self, header_time: int, tag: bytes = b"external") -> bytes:
        """An 80-byte header on the current tip (proof of work is not checked for these)."""
        merkle_root = dsha(b"%s %d %d" % (tag, self.height + 1, self._external))
        return _HEADER.pack(0x20000000, self.tip, merkle_root, header_time, self.nbits, self.height + 1)

    def header_time(self, height: int) -> int:
        """The timestamp of the best chain's block at ``height``."""
        return self.headers[self.active[height]].time

    def epoch_times(self) -> list[int]:
        """Timestamps of the tip's retarget epoch, oldest first, ending with the tip."""
        return [self.header_time(h) for h in range(self.height - self.height % RETARGET, self.height + 1)]

    async def mine_external_block(self, header_time: int | None = None) -> bytes:
        """Another miner's block: the tip moves on, the mempool empties."""
        self._external += 1
        header_time = int(time.time()) if header_time is None else header_time
        await self._advance(self.header_on_tip(header_time), [])
        return self.tip

    async def reorg(self, depth: int, times: list[int] | None = None) -> bytes:
        """Replace the last ``depth`` blocks by ``depth + 1`` others (one notification, as Core sends)."""
        times = times or [int(time.time())] * (depth + 1)
        assert len(times) == depth + 1
        for height in range(self.height - depth + 1, self.height + 1):
            del self.active[height]
        self.height -= depth
        self.tip = self.active[self.height]
        self._external += 1
        for t in times:
            self._connect(self.header_on_tip(t, b"reorg"))
        self.mempool = []
        self.tx_updates += 1
        self._notify_longpoll()
        if self._pub is not None:
            await self.publish_hashblock()
        return self.tip

    async def publish_hashblock(self, block_hash: bytes | None = None) -> None:
        """Send a ZMQ hashblock for the tip (or the hash given): topic, display-order hash, sequence."""
        assert self._pub is not None, "start the fake with zmq_pub=True"
        body = (block_hash or self.tip)[::-1]
        await self._pub.send_multipart([b"hashblock", body, self._zmq_sequence.to_bytes(4, "little")])
        self._zmq_sequence += 1

    def _connect(self, raw_header: bytes) -> None:
        header = FakeHeader(raw_header[:80], self.height + 1)
        assert header.prevhash == self.tip
        self.headers[header.hash] = header
        self.tip = header.hash
        self.known_blocks.add(header.hash)
        self.height += 1
        self.active[self.height] = header.hash

    async def _advance(self, raw_header: bytes, included: list[bytes]) -> None:
        self._connect(raw_header)
        gone = set(included)
        self.mempool = [m for m in self.mempool if m.txid not in gone] if gone else []
        self.tx_updates += 1
        self._notify_longpoll()
        if self._pub is not None:
            await self.publish_hashblock()

    def _notify_longpoll(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def template(self) -> dict:
        entries = self.mempool
        index = {m.txid: i + 1 for i, m in enumerate(entries)}  # GBT "depends" counts from 1
        height = self.height + 1
        gbt = {
            "capabilities": ["proposal"],
            "version": 0x20000000,
            "rules": ["csv", "!segwit", "taproot"],
            "vbavailable": {},
            "vbrequired": 0,
            "previousblockhash": display(self.tip),
            "transactions": [
                {
                    "data": m.tx.serialize(with_witness=True).hex(),
                    "txid": display(m.txid),
                    "hash": display(m.wtxid),
                    "depends": [index[t] for p in m.depends if (t := dsha(p.serialize(with_witness=False))) in index],
                    "fee": m.fee,
                    "sigops": 4,
                    "weight": m.weight,
                }
                for m in entries
            ],
            "coinbaseaux": {},
            "coinbasevalue": subsidy(height, self.halving) + sum(m.fee for m in entries),
            "longpollid": self.longpollid,
            "target": f"{self.target:064x}",
            "mintime": int(time.time()) - 3600,
            "mutable": ["time", "transactions", "prevblock"],
            "noncerange": "00000000ffffffff",
            "sigoplimit": 80000,
            "sizelimit": 4000000,
            "weightlimit": 4000000,
            "curtime": int(time.time()),
            "bits": f"{self.nbits:08x}",
            "height": height,
        }
        if self.witness_commitment:
            root = merkle([bytes(32)] + [m.wtxid for m in entries])
            gbt["default_witness_commitment"] = ("6a24" + WITNESS_HEADER.hex() + dsha(root + bytes(32)).hex())
        return gbt

    # -- RPC methods ---------------------------------------------------------------------

    async def rpc_getblocktemplate(self, template_request=None):
        request = template_request if template_request is not None else {}
        if not isinstance(request, dict):
            raise RpcFault(-3, f"JSON value of type {type(request).__name__} is not of expected type object")
        if "segwit" not in request.get("rules", []):
            raise RpcFault(-8, SEGWIT_RULE_ERROR)
        longpollid = request.get("longpollid")
        if longpollid is not None and self.longpoll:
            while self.longpollid == longpollid:  # Core waits for the tip (or the mempool) to change
                await self._changed.wait()
        return self.template()

    async def rpc_submitblock(self, hexdata=None, dummy=None):
        try:
            raw = bytes.fromhex(hexdata)
            block = parse_block(raw)
        except (TypeError, ValueError):
            raise RpcFault(-22, "Block decode failed") from None
        if not block.transactions[0].is_coinbase:
            raise RpcFault(-22, "Block does not start with a coinbase")
        self.submitted.append(raw)
        return await self.check_and_connect(raw, block)

    async def check_and_connect(self, raw: bytes, block: Block) -> str | None:
        block_hash = dsha(raw[:80])
        if block_hash in self.known_blocks:
            return "duplicate"
        if block.prevhash != self.tip:
            return "inconclusive" if block.prevhash in self.known_blocks else "prev-blk-not-found"
        if block.nbits != self.nbits:
            return "bad-diffbits"
        if int.from_bytes(block_hash, "little") > self.target:
            return "high-hash"
        txs = block.transactions
        txids = [dsha(tx.serialize(with_witness=False)) for tx in txs]
        if merkle(txids) != block.merkle_root:
            return "bad-txnmrklroot"
        coinbase = txs[0]
        height = self.height + 1
        if not coinbase.inputs[0].script_sig.startswith(height_push(height)):
            return "bad-cb-height"
        if not 2 <= len(coinbase.inputs[0].script_sig) <= 100:
            return "bad-cb-length"
        mempool = {m.txid: m for m in self.mempool}
        if any(txid not in mempool for txid in txids[1:]):
            return "bad-txns-inputs-missingorspent"
        fees = sum(mempool[txid].fee for txid in txids[1:])
        if sum(out.value for out in coinbase.outputs) > subsidy(height, self.halving) + fees:
            return "bad-cb-amount"
        commitment = next(
            (o.script_pubkey for o in reversed(coinbase.outputs)
             if len(o.script_pubkey) >= 38 and o.script_pubkey[:6] == b"\x6a\x24" + WITNESS_HEADER),
            None,
        )  # fmt: skip
        if any(tx.has_witness for tx in txs) or commitment is not None:
            if commitment is None:
                return "unexpected-witness"
            if len(coinbase.witnesses) != 1 or [len(item) for item in coinbase.witnesses[0]] != [32]:
                return "bad-witness-nonce-size"
            wtxids = [bytes(32)] + [dsha(tx.serialize(with_witness=True)) for tx in txs[1:]]
            if dsha(merkle(wtxids) + coinbase.witnesses[0][0]) != commitment[6:38]:
                return "bad-witness-merkle-match"
        self.accepted.append(block)
        await self._advance(raw[:80], txids[1:])
        return None

    async def rpc_getbestblockhash(self):
        return display(self.tip)

    async def rpc_getblockchaininfo(self):
        return {
            "chain": self.chain,
            "blocks": self.height,
            "headers": self.height,
            "bestblockhash": display(self.tip),
            "difficulty": 4.656542373906925e-10,
            "time": int(time.time()),
            "mediantime": int(time.time()) - 600,
            "verificationprogress": 1,
            "initialblockdownload": False,
            "chainwork": "00" * 31 + "02",
            "size_on_disk": 293,
            "pruned": False,
            "warnings": [],
        }

    async def rpc_getblockhash(self, height=None):
        if isinstance(height, bool) or not isinstance(height, int):
            raise RpcFault(-3, f"JSON value of type {type(height).__name__} is not of expected type number")
        if height not in self.active:  # the fake knows the chain from first_height only
            raise RpcFault(-8, "Block height out of range")
        return display(self.active[height])

    async def rpc_getblockheader(self, blockhash=None, verbose=True):
        if not isinstance(blockhash, str):
            raise RpcFault(-3, f"JSON value of type {type(blockhash).__name__} is not of expected type string")
        if len(blockhash) != 64:
            raise RpcFault(-8, f"blockhash must be of length 64 (not {len(blockhash)}, for '{blockhash}')")
        try:
            block_hash = bytes.fromhex(blockhash)[::-1]
        except ValueError:
            raise RpcFault(-8, f"blockhash must be hexadecimal string (not '{blockhash}')") from None
        header = self.headers.get(block_hash)
        if header is None:
            raise RpcFault(-5, "Block not found")
        if not verbose:
            return header.raw.hex()
        version, prevhash, merkle_root, header_time, nbits, nonce = _HEADER.unpack(header.raw)
        height = header.height
        in_best_chain = self.active.get(height) == block_hash
        earlier = [self.headers[self.active[h]].time for h in range(max(self.first_height, height - 10), height)]
        answer = {
            "hash": blockhash,
            "confirmations": self.height - height + 1 if in_best_chain else -1,
            "height": height,
            "version": version,
            "versionHex": f"{version:08x}",
            "merkleroot": display(merkle_root),
            "time": header_time,
            "mediantime": int(statistics.median_low(earlier + [header_time])),
            "nonce": nonce,
            "bits": f"{nbits:08x}",
            "difficulty": (0xFFFF << 208) / bits_target(nbits),
            "chainwork": f"{height + 1:064x}",
            "nTx": 1,
        }
        if height > 0:
            answer["previousblockhash"] = display(prevhash)
        if in_best_chain and height + 1 in self.active:
            answer["nextblockhash"] = display(self.active[height + 1])
        return answer

    async def dispatch(self, method: str, params: object) -> object:
        handler = getattr(self, f"rpc_{method}", None)
        if handler is None or method not in METHOD_ARGS:
            raise RpcFault(-32601, "Method not found")
        names = METHOD_ARGS[method]
        if isinstance(params, dict):
            unknown = set(params) - set(names)
            if unknown:
                raise RpcFault(-8, f"Unknown named parameter {sorted(unknown)[0]}")
            return await handler(**params)
        if not isinstance(params, list) or len(params) > len(names):
            raise RpcFault(-1, f"{method} takes at most {len(names)} arguments")
        return await handler(*params)

    # -- HTTP ----------------------------------------------------------------------------

    def reply(self, rpc: dict, value: object) -> web.Response:
        if rpc.get("jsonrpc") == "2.0" or self.force_v2:
            body = {"jsonrpc": "2.0", "result": value, "id": rpc.get("id")}
        else:
            body = {"result": value, "error": None, "id": rpc.get("id")}
        return web.json_response(body)

    def error_reply(self, rpc: dict, code: int, message: str) -> web.Response:
        error = {"code": code, "message": message}
        if rpc.get("jsonrpc") == "2.0" or self.force_v2:
            return web.json_response({"jsonrpc": "2.0", "error": error, "id": rpc.get("id")})
        status = 404 if code == -32601 else 400 if code == -32600 else 500  # Core's legacy mapping
        return web.json_response({"result": None, "error": error, "id": rpc.get("id")}, status=status)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        return given == f"{self.user}:{self.password}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        try:
            rpc = json.loads(await request.read())
        except ValueError:
            return self.error_reply({}, -32700, "Parse error")
        if not isinstance(rpc, dict) or not isinstance(rpc.get("method"), str):
            return self.error_reply({}, -32600, "Invalid Request object")
        method, params = rpc["method"], rpc.get("params", [])
        self.calls.append((method, params))
        if self.delay:
            await asyncio.sleep(self.delay)
        for key in (method, "*"):
            queue = self.faults.get(key)
            if queue:
                response = await queue.popleft()(self, request, rpc)
                if response is not None:
                    return response
                break
        try:
            value = await self.dispatch(method, params)
        except RpcFault as fault:
            return self.error_reply(rpc, fault.code, fault.message)
        return self.reply(rpc, value)


async def started(**kwargs) -> FakeBitcoind:
    return await FakeBitcoind(**kwargs).start()
