"""A real, independent Stratum client: cpuminer 2.5.1 (``minerd -a sha256d``) mining against
``fleetd serve`` processes, on the demo chain and on a (fake) Bitcoin Core node.

minerd connects through a loopback relay that passes every byte on and records the protocol.
To stop, the relay holds minerd's further requests at a line boundary; once minerd has read
the answer to every share that went through, both sides have counted the same shares, and
the counts are compared exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from fleetd.chain.target import bits_to_target, difficulty_to_target, target_to_bits
from server_support import scrape

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))  # the fake node and its helpers
import fake_bitcoind as fake  # noqa: E402
from bitcoind_support import REGTEST_P2WPKH, REGTEST_P2WPKH_SCRIPT  # noqa: E402
from fake_bitcoind import dsha, merkle  # noqa: E402

# One thread of minerd hashes sha256d at roughly 4-9 MH/s on this kind of machine, so a share
# of 2^21 hashes comes every 0.2-0.5 s. A power of two keeps the credited work exact in floats.
SHARE_DIFFICULTY = 2.0**-11
HASHES_PER_SHARE = 2**21  # SHARE_DIFFICULTY x 2^32
SHARES = 20
BLOCK_DIFFICULTY = 2.0**-9  # the node's target: a block every 4 shares on average
WORKER = "acct.worker"
WAIT = 300.0  # a hang guard for the whole run; it normally takes seconds, a loaded machine a minute
ANSWER = re.compile(r"accepted: (\d+)/(\d+) \([\d.]+%\), \S+ khash/s \((yay!!!|booooo)\)")
STALE_REASONS = {"stale", "unknown_job"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Relay:
    """minerd <-> fleetd on loopback, every line recorded; ``hold()`` stops passing minerd's requests."""

    upstream: tuple[str, int]
    trace: list[tuple[str, dict]] = field(default_factory=list)  # (">" to fleetd | "<" to minerd, message)
    holding: bool = False
    port: int = 0

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._server.close()
        for task in list(getattr(self, "_tasks", ())):
            task.cancel()

    def hold(self) -> None:
        self.holding = True

    async def _handle(self, miner_reader, miner_writer) -> None:
        pool_reader, pool_writer = await asyncio.open_connection(*self.upstream)

        async def pipe(reader, writer, direction: str) -> None:
            with contextlib.suppress(ConnectionError):
                while line := await reader.readline():
                    if direction == ">" and self.holding:
                        return  # held: this request and every later one never reach fleetd
                    self.trace.append((direction, json.loads(line)))
                    writer.write(line)
                    await writer.drain()

        self._tasks = getattr(self, "_tasks", set())
        tasks = [asyncio.ensure_future(pipe(miner_reader, pool_writer, ">")),
                 asyncio.ensure_future(pipe(pool_reader, miner_writer, "<"))]  # fmt: skip
        self._tasks.update(tasks)
        try:
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self.holding:
                await asyncio.wait(pending)  # fleetd's answers still reach minerd
            for task in pending:
                task.cancel()
        finally:
            pool_writer.close()
            miner_writer.close()

    def submits(self) -> list[dict]:
        return [m for d, m in self.trace if d == ">" and m.get("method") == "mining.submit"]

    def answers(self) -> dict[object, dict]:
        return {m["id"]: m for d, m in self.trace if d == "<" and "method" not in m}

    def excerpt(self, count: int = 40) -> str:
        return "\n".join(f"{d} {json.dumps(m)[:300]}" for d, m in self.trace[-count:])


@dataclass
class Process:
    """A child process whose output is read line by line as it comes."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    @classmethod
    async def start(cls, *argv: str) -> Process:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        running = cls(process)
        running.reader = asyncio.ensure_future(running._read())
        return running

    async def _read(self) -> None:
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> int:
        """Signal the process, kill it if it has not exited after ``grace``; every line read."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await asyncio.wait_for(self.reader, WAIT)
        return self.process.returncode

    def tail(self, count: int = 30) -> str:
        return "\n".join(self.lines[-count:])


def minerd_answers(lines: list[str]) -> tuple[int, int, list[str]]:
    """minerd's own count from its last ``accepted: A/S`` line, and each answer's verdict."""
    found = [m for line in lines if (m := ANSWER.search(line))]
    if not found:
        return 0, 0, []
    return int(found[-1][1]), int(found[-1][2]), [m[3] for m in found]


def write_config(path: Path, stratum_port: int, http_port: int, source: str) -> Path:
    path.write_text(
        f'[stratum]\nlisten = "127.0.0.1:{stratum_port}"\n'
        f"min_difficulty = {SHARE_DIFFICULTY!r}\nmax_difficulty = {SHARE_DIFFICULTY!r}\n"
        f"start_difficulty = {SHARE_DIFFICULTY!r}\nshutdown_grace_seconds = 5.0\n"
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
        f'[journal]\npath = "{path.with_suffix(".journal.sqlite3")}"\n'  # two fleetd in one test: a journal each
        f"[rigs]\npoll = false\n{source}"
    )
    return path


async def wait_until(predicate, what: str, *processes: Process) -> None:
    """Poll an async predicate until it holds; a child that exits meanwhile fails the test."""
    async with asyncio.timeout(WAIT):
        while not await predicate():
            for child in processes:
                assert child.process.returncode is None, f"{what}: a process exited early:\n{child.tail()}"
            await asyncio.sleep(0.1)


async def rig_samples(http: str) -> dict[tuple[str, tuple], float]:
    try:
        samples, _ = await scrape(http)
    except aiohttp.ClientConnectionError:
        return {}  # not listening yet
    return samples


def rig(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted({"rig": WORKER, **labels}.items()))))


def rejected(samples: dict) -> dict[str, float]:
    return {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "fleetd_rig_shares_total" and dict(labels).get("result") == "rejected" and dict(labels)["rig"] == WORKER
    }


@dataclass
class Run:
    """What one mining run left behind, both sides counted over the same shares."""

    samples: dict
    submits: list[dict]
    answers: dict
    accepted: int  # minerd's own count
    submitted: int
    verdicts: list[str]
    fleetd_log: list[dict]
    relay: Relay
    miner: Process


def log_events(pool: Process) -> list[dict]:
    return [json.loads(line) for line in list(pool.lines) if line.startswith("{")]


async def mine(minerd: Path, tmp_path: Path, source: str, enough, settled=lambda samples, events: True) -> Run:
    """Run ``fleetd serve`` with ``source``, mine on it with minerd until ``enough(samples)``, stop
    minerd, read fleetd's metrics once ``settled(samples, log events)``, then stop fleetd."""
    stratum_port, http_port = _free_port(), _free_port()
    config = write_config(tmp_path / "fleetd.toml", stratum_port, http_port, source)
    http = f"http://127.0.0.1:{http_port}"
    pool = await Process.start(sys.executable, "-m", "fleetd", "serve", "--config", str(config))
    relay = miner = None
    try:
        await wait_until(lambda: _healthy(http), "fleetd serving a job", pool)
        relay = await Relay(("127.0.0.1", stratum_port)).start()
        miner = await Process.start(
            str(minerd), "-a", "sha256d", "-o", f"stratum+tcp://127.0.0.1:{relay.port}",
            "-u", WORKER, "-p", "x", "-t", "1", "-D",
        )  # fmt: skip

        async def mined_enough() -> bool:
            return enough(await rig_samples(http))

        await wait_until(mined_enough, "enough shares", pool, miner)

        # Hold minerd's requests, let it read the answer to every share that reached fleetd, stop it.
        relay.hold()
        sent = len(relay.submits())

        async def all_answered() -> bool:
            return minerd_answers(miner.lines)[1] == sent

        await wait_until(all_answered, f"minerd answered for its {sent} forwarded shares", pool, miner)
        await miner.stop(signal.SIGTERM, grace=10.0)  # its handler may deadlock in its logger: then kill

        async def quiet() -> bool:
            return settled(await rig_samples(http), log_events(pool))

        await wait_until(quiet, "fleetd settled", pool)
        samples = await rig_samples(http)
        accepted, submitted, verdicts = minerd_answers(miner.lines)
        assert await pool.stop(signal.SIGTERM) == 0, pool.tail()
        fleetd_log = log_events(pool)
        return Run(samples, relay.submits(), relay.answers(), accepted, submitted, verdicts, fleetd_log, relay, miner)
    finally:
        if miner is not None:
            await miner.stop(signal.SIGKILL)
        if relay is not None:
            await relay.close()
        await pool.stop(signal.SIGKILL)


async def _healthy(http: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{http}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


def blocks_answered(samples: dict, events: list[dict]) -> bool:
    """Every block fleetd handed to its source has its answer (logged once the node replied)."""
    handed = samples.get(("fleetd_blocks_submitted_total", ()))
    return handed is not None and sum(e["event"] == "block_submitted" for e in events) == handed


def accepted_at_least(count: int):
    return lambda samples: (rig(samples, "fleetd_rig_shares_total", result="accepted", reason="") or 0) >= count


async def test_cpuminer_shares_are_all_accepted_and_credited_exactly(minerd, tmp_path):
    run = await mine(
        minerd, tmp_path, '[source]\nkind = "demo"\nnetwork_difficulty = 1e9\n', accepted_at_least(SHARES)
    )  # no share meets 1e9: the chain stays put, every job stays current
    context = f"minerd:\n{run.miner.tail()}\nprotocol:\n{run.relay.excerpt()}"
    accepted = rig(run.samples, "fleetd_rig_shares_total", result="accepted", reason="")

    assert run.submitted == len(run.submits) >= SHARES, context  # minerd heard back on every share it sent
    assert run.accepted == run.submitted and set(run.verdicts) == {"yay!!!"}, context
    assert all(run.answers[s["id"]]["result"] is True for s in run.submits), context
    assert accepted == run.accepted and rejected(run.samples) == {}, (run.samples, context)
    assert rig(run.samples, "fleetd_rig_hashes_total") == run.accepted * SHARE_DIFFICULTY * 2**32
    assert rig(run.samples, "fleetd_rig_hashes_total") == run.accepted * HASHES_PER_SHARE
    assert rig(run.samples, "fleetd_rig_difficulty") == SHARE_DIFFICULTY
    assert {s["params"][0] for s in run.submits} == {WORKER}


async def test_cpuminer_blocks_reach_the_node_valid(minerd, tmp_path):
    node = await fake.started(mempool=40, nbits=target_to_bits(difficulty_to_target(BLOCK_DIFFICULTY)))
    start_height = node.height
    source = (
        '[source]\nkind = "bitcoind"\n[source.bitcoind]\n'
        f'url = "{node.url}"\nuser = "{node.user}"\npassword = "{node.password}"\n'
        f'payout_address = "{REGTEST_P2WPKH}"\npoll_interval_seconds = 0.1\n'
    )
    try:
        run = await mine(minerd, tmp_path, source, lambda s: len(node.submitted) >= 2 and accepted_at_least(10)(s), blocks_answered)
    finally:
        await node.close()
    context = f"minerd:\n{run.miner.tail()}\nprotocol:\n{run.relay.excerpt()}"

    # Every block fleetd handed on passed the node's own checks (PoW against its target, merkle
    # root, BIP34 height, coinbase amount, witness commitment) and moved its tip.
    assert len(node.submitted) >= 2
    assert [block.serialize() for block in node.accepted] == node.submitted, context
    assert node.height == start_height + len(node.accepted)
    target = bits_to_target(node.nbits)
    for block in node.accepted:
        raw = block.serialize()
        assert int.from_bytes(dsha(raw[:80]), "little") <= target
        assert block.merkle_root == merkle([dsha(tx.serialize(with_witness=False)) for tx in block.transactions])
        assert block.transactions[0].outputs[0].script_pubkey == REGTEST_P2WPKH_SCRIPT
    assert len(node.accepted[0].transactions) == 41  # minerd built the first block's merkle root over the mempool

    # fleetd reports as found exactly the blocks the node took.
    submitted = [e for e in run.fleetd_log if e["event"] == "block_submitted"]
    assert len(submitted) == len(node.submitted) and all(e["accepted"] for e in submitted), submitted
    assert run.samples[("fleetd_blocks_found_total", ())] == len(node.accepted)
    assert rig(run.samples, "fleetd_rig_blocks_found_total") == len(node.accepted)

    # A share minerd finds for a job a new block has just retired, sent before the clean job
    # reached it, is legitimately stale: those are the only rejects allowed.
    accepted = rig(run.samples, "fleetd_rig_shares_total", result="accepted", reason="")
    reasons = rejected(run.samples)
    assert set(reasons) <= STALE_REASONS, (reasons, context)
    assert run.submitted == len(run.submits) and accepted == run.accepted, context
    assert accepted + sum(reasons.values()) == run.submitted, context
    assert rig(run.samples, "fleetd_rig_hashes_total") == run.accepted * HASHES_PER_SHARE


async def test_cpuminer_behind_fleetd_as_proxy_is_capped_and_paid_in_full_upstream(minerd, tmp_path):
    """fleetd in upstream mode in front of a demo fleetd pinned at half the proxy's own difficulty:
    the rig is capped at the upstream's, so every share it finds meets the upstream difficulty
    and goes up; the upstream's credit equals the rig's work exactly (no luck involved)."""
    from upstream_support import fleetd_config, start_fleetd, wait_for

    up_difficulty = SHARE_DIFFICULTY / 2  # a power of two: the credited work stays exact in floats
    up = await start_fleetd(fleetd_config(difficulty=up_difficulty))
    try:
        await wait_for(lambda: up.server.current_job is not None, WAIT)
        source = f'[source]\nkind = "upstream"\n[source.upstream]\npools = ["{up.url}"]\nuser = "acct"\n'

        def answered(samples: dict, events: list[dict]) -> bool:
            forwarded = rig(samples, "fleetd_rig_upstream_shares_total", result="forwarded", reason="")
            answers = sum(v for (name, labels), v in samples.items() if name == "fleetd_rig_upstream_shares_total"
                          and dict(labels)["rig"] == WORKER and dict(labels)["result"] != "forwarded")  # fmt: skip
            return forwarded is not None and forwarded == answers

        run = await mine(minerd, tmp_path, source, accepted_at_least(SHARES), answered)
        credited = up.server.workers["acct"].accepted_work  # what the upstream pool credited
    finally:
        await up.stop()
    context = f"minerd:\n{run.miner.tail()}\nprotocol:\n{run.relay.excerpt()}"
    accepted = rig(run.samples, "fleetd_rig_shares_total", result="accepted", reason="")
    assert run.accepted == run.submitted == accepted >= SHARES and rejected(run.samples) == {}, context
    assert rig(run.samples, "fleetd_rig_difficulty") == up_difficulty  # capped: the proxy's own never applied
    assert {m["params"][0] for d, m in run.relay.trace if d == "<" and m.get("method") == "mining.set_difficulty"} == {
        up_difficulty
    }, context
    rig_work = rig(run.samples, "fleetd_rig_hashes_total")
    assert rig_work == accepted * up_difficulty * 2**32
    assert rig(run.samples, "fleetd_rig_upstream_shares_total", result="forwarded", reason="") == accepted
    assert rig(run.samples, "fleetd_rig_upstream_shares_total", result="accepted", reason="") == accepted
    assert rig(run.samples, "fleetd_rig_upstream_hashes_total") == credited * 2**32 == rig_work
