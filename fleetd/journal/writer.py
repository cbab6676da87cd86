"""The journal's writer: group commit of what the rigs did, found blocks at once, restore at start.

The share path never touches the journal. Every ``flush_seconds`` the writer reads the rig
registry's cumulative counters, turns the change since the last read into per-minute rollups
(one pending row per rig and minute; rows merge rather than grow while the disk is slow) and
writes them, with each changed rig's cumulative record, in one transaction off the loop.

A failing disk (full, read-only, locked, corrupt) never stops the daemon: the writer says so
once, exports ``up 0`` and the writes it could not make, keeps what it collected, and retries
each flush until one succeeds (and says that once too).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator

from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.journal.store import (
    HOUR,
    MINUTE,
    DAYS_KEY,
    BlockRecord,
    FlushRows,
    JournalLocked,
    JournalStore,
    RigRecord,
    Rollup,
    default_path,
)
from fleetd.rigs.registry import HASHES_PER_DIFFICULTY, RigRegistry

TIP_KEY = "demo_chain_tip"
ECONOMICS_KEY = "economics_inputs"
JOULES_PER_KWH = 3.6e6
PRUNE_SECONDS = 3600.0  # retention and compaction: at start, then hourly
COLLECT_CHUNK = 100  # rigs read between two turns of the event loop (about 1 ms of work)
MAX_PENDING_MINUTES = 60  # per rig; older pending minutes merge into the next one
MAX_PENDING_EVENTS = 100_000
SEED_SECONDS = 3600.0  # the history the rate averages are rebuilt from: their longest window
SEED_STEPS = 12  # each minute's work goes into the averages in this many even steps
READING_FRESH_SECONDS = 300.0  # a rig's reported hash rate counts in the fleet's while its poll is this recent

__all__ = ["Journal", "JournalLocked", "TIP_KEY"]


class Journal:
    """The writer and what it exports: ``up``, ``dropped_writes``, ``pending_rows``,
    ``file_bytes()``, ``cpu_seconds`` and ``last_flush`` (wall time of the newest state on the disk)."""

    def __init__(
        self, config, rigs: RigRegistry, *, clock: Clock = SYSTEM_CLOCK, economics=None, environ=None
    ) -> None:
        import os

        self.config = config
        self.path = default_path(config.path, os.environ if environ is None else environ)
        self.rigs = rigs
        self.clock = clock
        self.economics = economics  # a SiteEconomicsView: values each minute, and its inputs survive a restart
        self.log = logging.get("fleetd.journal")
        self.store: JournalStore | None = None
        self.server = None
        self.source = None
        self.up = False
        self.dropped_writes = 0
        self.cpu_seconds = 0.0  # what the journal costs: collecting on the loop, writing in its thread
        self.last_flush: float | None = None
        self.restored_upstream: dict[str, RigRecord] = {}
        self._last: dict[str, RigRecord] = {}  # cumulative as of the last collection, per rig
        self._seen: dict[str, tuple] = {}  # per rig, what moves when anything in its record does
        self._last_reading: dict[str, float] = {}
        self._pending: dict[tuple[str, int], Rollup] = {}
        self._dirty: dict[str, RigRecord] = {}
        self._blocks: list[BlockRecord] = []
        self._kv: dict[str, str] = {}
        self._events: list[tuple] = []
        self._minute_rigs: dict[int, set[str]] = {}  # per pending minute, the rigs with a rollup in it
        self._reported: dict[int, float] = {}  # per pending minute, the rigs' reported rates summed
        self._kv_written: dict[str, str] = {}
        self._block_tasks: set[asyncio.Task] = set()
        self._write = asyncio.Lock()  # one write off the loop at a time
        self._failing: str | None = None
        self._pruned_at: float | None = None

    @property
    def pending_rows(self) -> int:
        return len(self._pending) + len(self._dirty) + len(self._blocks) + len(self._events)

    def record(self, events) -> None:
        """Audit events (``time``, ``rig``, ``kind``, ``reason``, ``detail``): written with the next flush."""
        self._events.extend((e.time, e.rig, e.kind, e.reason, json.dumps(e.detail, sort_keys=True)) for e in events)
        del self._events[:-MAX_PENDING_EVENTS]  # a disk down for days keeps the newest

    def keep(self, key: str, value: str) -> None:
        """A small state (JSON) that the next flush writes and ``kept`` returns after a restart."""
        self._kv[key] = value

    def kept(self, key: str) -> str | None:
        return self._kv.get(key, self._kv_written.get(key))

    def file_bytes(self) -> int:
        return self.store.file_bytes() if self.store is not None else 0

    # -- start and stop ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (a second fleetd on it: ``JournalLocked``), restore the rigs and
        their rate history, and prune. A file that cannot be opened for any other reason is
        retried at each flush; the daemon serves meanwhile."""
        store = JournalStore(self.path, on_corrupt=self._corrupt)
        try:
            await asyncio.to_thread(store.open, self.clock.wall())
        except JournalLocked:
            raise
        except (sqlite3.Error, OSError, RuntimeError) as exc:
            self._failed("open", exc)
            return
        self.store = store
        try:
            await self._restore()
            await self._prune()
        except (sqlite3.Error, OSError) as exc:
            self._failed("restore", exc)
            return
        self._recovered()
        self.log.info("journal_opened", path=str(self.path), rigs=len(self._last))

    async def close(self) -> None:
        """The final flush (the server has stopped), then the file and its lock are let go."""
        if self._block_tasks:
            await asyncio.gather(*self._block_tasks, return_exceptions=True)
        await self.flush()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    def attach(self, server, source=None) -> None:
        """The Stratum server: found blocks come from it, upstream counts are read from it and
        the ones restored go back into it."""
        self.server, self.source = server, source
        server.on_block = self.block
        upstream = server.pool.upstream_workers
        for name, record in self.restored_upstream.items():
            if name not in upstream and record.upstream_forwarded:
                stats = server.pool.upstream_stats(name)
                stats.forwarded = record.upstream_forwarded
                stats.accepted = record.upstream_accepted
                stats.accepted_work = record.upstream_accepted_work
                stats.rejected = Counter(record.upstream_rejected)

    async def run(self) -> None:
        """Flush every ``flush_seconds``; prune hourly."""
        while True:
            await self.clock.sleep(self.config.flush_seconds)
            await self.flush()
            if self.store is not None and self.clock.monotonic() - (self._pruned_at or 0.0) >= PRUNE_SECONDS:
                try:
                    await self._prune()
                except (sqlite3.Error, OSError) as exc:
                    self._failed("prune", exc)

    # -- found blocks -----------------------------------------------------------------

    def block(self, job, outcome, worker: str | None) -> None:
        """The server's answer from the source: written and fsynced now, off the loop."""
        record = BlockRecord(
            time=self.clock.wall(),
            hash=outcome.hash,
            height=outcome.height,
            worker=worker,
            job_id=getattr(job, "job_id", None),
            accepted=outcome.accepted,
            reason=outcome.reason,
            block_hex=outcome.block_hex,
            header_hex=outcome.header_hex,
            coinbase_hex=outcome.coinbase_hex,
        )
        self._blocks.append(record)
        task = asyncio.get_running_loop().create_task(self._write_blocks())
        self._block_tasks.add(task)
        task.add_done_callback(self._block_tasks.discard)

    async def _write_blocks(self) -> bool:
        async with self._write:
            while self._blocks:
                if not await self._ensure_open():
                    return False
                block = self._blocks[0]
                try:
                    await self._off_loop(self.store.write_block, block)
                except (sqlite3.Error, OSError) as exc:
                    self._failed("block", exc)
                    return False
                self._blocks.pop(0)
            return True

    # -- group commit -----------------------------------------------------------------

    async def flush(self) -> bool:
        """Collect the change since the last flush and write it in one transaction. False when
        the disk refused it (kept, merged and retried at the next flush)."""
        if not await self._write_blocks():
            self.collect(self.clock.wall())
            return False
        async with self._write:
            now = self.clock.wall()
            await self._in_chunks(self._collecting(now))
            if not await self._ensure_open():
                return False
            rollups, self._pending = self._pending, {}
            dirty, self._dirty = self._dirty, {}
            kv = {k: v for k, v in self._kv.items() if self._kv_written.get(k) != v}
            events, self._events = self._events, []
            current = int(now) // MINUTE * MINUTE
            days = int(self._kv_written.get(DAYS_KEY, 0))
            rows = FlushRows(kv=list(kv.items()), events=events, days_through=days, days_until=max(days, current))
            await self._in_chunks(_rows(rows, rollups, dirty.values()))
            for start, names in self._minute_rigs.items():
                if names:
                    rows.fleet_minute(start, len(names), self._reported.get(start))
            try:
                if rows:
                    await self._off_loop(self.store.write_flush, rows)
            except (sqlite3.Error, OSError) as exc:
                for key, rollup in self._pending.items():  # collected while the write was tried
                    rollups.setdefault(key, Rollup()).merge(rollup)
                self._pending = rollups
                self._dirty = {**dirty, **self._dirty}
                self._events[:0] = events
                self._failed("flush", exc)
                return False
            self._kv_written.update(kv)
            self._kv_written[DAYS_KEY] = str(rows.days_until)
            self._forget_minutes(current)
            self.last_flush = now
            self._recovered()
            return True

    async def _in_chunks(self, steps) -> None:
        """Run ``steps`` (a generator that yields between chunks of its work) on the loop,
        letting shares be served at each yield; its CPU time counted in ``cpu_seconds``."""
        started = time.thread_time()
        for _ in steps:
            self.cpu_seconds += time.thread_time() - started
            await asyncio.sleep(0)
            started = time.thread_time()
        self.cpu_seconds += time.thread_time() - started

    def collect(self, now: float) -> None:
        """The registry's cumulative counters, as changes into this minute's pending rows."""
        for _ in self._collecting(now):
            pass

    def _collecting(self, now: float):
        """``collect``, pausing (a yield) after every ``COLLECT_CHUNK`` rigs."""
        minute = int(now) // MINUTE * MINUTE
        upstream = self.server.pool.upstream_workers if self.server is not None else {}
        prices = self.economics.work_prices(now) if self.economics is not None else None
        minute_rigs = self._minute_rigs.setdefault(minute, set())
        reported, fresh = 0.0, now - READING_FRESH_SECONDS
        btc_per_work = prices.btc_per_work if prices is not None else None
        btc_usd = prices.btc_usd if prices is not None else None
        for count, rig in enumerate(self.rigs, 1):  # the registry hands out a list: rigs may come meanwhile
            if count % COLLECT_CHUNK == 0:
                yield
            name, stats = rig.name, upstream.get(rig.name)
            reading = rig.reading
            if reading is not None and reading.hashrate and reading.time >= fresh:
                reported += reading.hashrate
            # Most rigs have not moved since the last flush: a tuple says so for a fraction of
            # what building their record would cost.
            seen = (rig.last_seen, rig.accepted, rig.accepted_work, rig.blocks, rig.energy_joules,
                    rig.rejected.total(), rig.ip, rig.model, rig.firmware,
                    (stats.forwarded, stats.accepted, stats.rejected.total()) if stats else None)  # fmt: skip
            if self._seen.get(name) == seen:
                continue
            self._seen[name] = seen
            record = RigRecord(
                name=name, ip=rig.ip, model=rig.model, firmware=rig.firmware, first_seen=rig.first_seen,
                last_seen=rig.last_seen, last_share=rig.last_share, accepted=rig.accepted,
                accepted_work=rig.accepted_work, rejected=dict(rig.rejected), blocks=rig.blocks,
                energy_joules=rig.energy_joules,
                upstream_forwarded=stats.forwarded if stats else 0,
                upstream_accepted=stats.accepted if stats else 0,
                upstream_accepted_work=stats.accepted_work if stats else 0.0,
                upstream_rejected=dict(stats.rejected) if stats else {},
            )  # fmt: skip
            last = self._last.get(name)
            if last == record:
                continue
            if last is None or record.accepted < last.accepted or record.accepted_work < last.accepted_work:
                last = RigRecord(name)  # a new record (or one retired and made again): all of it is new
            work = record.accepted_work - last.accepted_work
            energy = max(0.0, record.energy_joules - last.energy_joules)
            delta = Rollup(
                accepted=record.accepted - last.accepted,
                accepted_work=work,
                rejected=_minus(record.rejected, last.rejected),
                blocks=max(0, record.blocks - last.blocks),
                upstream_forwarded=max(0, record.upstream_forwarded - last.upstream_forwarded),
                upstream_accepted=max(0, record.upstream_accepted - last.upstream_accepted),
                upstream_accepted_work=max(0.0, record.upstream_accepted_work - last.upstream_accepted_work),
                upstream_rejected=_minus(record.upstream_rejected, last.upstream_rejected),
                energy_joules=energy,
            )
            # valued at the prices of this moment, so a later price or contract never rewrites the past
            if btc_per_work is not None:
                delta.revenue_btc = work * btc_per_work
            if btc_per_work is not None and btc_usd is not None:
                delta.revenue_usd = delta.revenue_btc * btc_usd
            else:
                delta.unvalued_work = work
            if prices is not None:
                delta.cost_usd = energy / JOULES_PER_KWH * prices.usd_per_kwh(name)
            else:
                delta.unpriced_energy_joules = energy
            if reading is not None and self._last_reading.get(name) != reading.time:
                self._last_reading[name] = reading.time
                delta.watts = rig.power(now)[0]
                delta.reported_hashrate = reading.hashrate
                delta.max_chip_celsius = rig.hottest_chip()
            minute_rigs.add(name)
            pending = self._pending.get((name, minute))
            if pending is None:
                self._pending[(name, minute)] = delta
            else:
                pending.merge(delta)
            self._dirty[name] = self._last[name] = record
        self._reported[minute] = reported or None
        tip = getattr(self.source, "tip", None)
        if callable(tip):
            self._kv[TIP_KEY] = json.dumps(tip().to_dict(), sort_keys=True)
        if self.economics is not None:
            self._kv[ECONOMICS_KEY] = json.dumps(self.economics.inputs(), sort_keys=True)
        self._bound()

    def _forget_minutes(self, current: int) -> None:
        """The fleet's samples of minutes that are over (written, or kept in the rows pending)."""
        for start in [start for start in self._minute_rigs if start < current]:
            del self._minute_rigs[start]
            self._reported.pop(start, None)

    def _bound(self) -> None:
        """At most ``MAX_PENDING_MINUTES`` pending rows per rig: the oldest merge into the next."""
        if len(self._pending) <= MAX_PENDING_MINUTES * max(1, len(self._last)):
            return
        by_rig: dict[str, list[int]] = {}
        for rig, start in self._pending:
            by_rig.setdefault(rig, []).append(start)
        for rig, starts in by_rig.items():
            starts.sort()
            while len(starts) > MAX_PENDING_MINUTES:
                oldest = self._pending.pop((rig, starts.pop(0)))
                oldest.merge(self._pending[(rig, starts[0])])
                self._pending[(rig, starts[0])] = oldest

    async def _off_loop(self, write, *args):
        """``write(*args)`` in a worker thread, its CPU time counted in ``cpu_seconds``."""

        def timed():
            started = time.thread_time()
            try:
                return write(*args)
            finally:
                spent.append(time.thread_time() - started)

        spent: list[float] = []
        try:
            return await asyncio.to_thread(timed)
        finally:
            self.cpu_seconds += sum(spent)

    # -- restore and retention --------------------------------------------------------

    async def _restore(self) -> None:
        now = self.clock.wall()
        records = await asyncio.to_thread(self.store.rigs)
        history = await asyncio.to_thread(self.store.rollups, now - SEED_SECONDS)
        restored = self.rigs.restore(records)
        by_name = {record.name: record for record in records}
        self.restored_upstream = {r.name: r for r in records if r.upstream_forwarded}
        work: dict[str, list[tuple[float, float, float]]] = {}
        for rig, start, rollup in history:
            # a minute's work and shares spread evenly over it, up to the last share if that
            # came sooner; its shares taken to be of one difficulty (its work / its shares)
            record = by_name.get(rig)
            end = start + MINUTE
            if record is not None and record.last_share is not None:
                end = max(start + 1.0, min(end, record.last_share))
            piece = rollup.accepted_work * HASHES_PER_DIFFICULTY / SEED_STEPS
            shares = rollup.accepted / SEED_STEPS
            work.setdefault(rig, []).extend(
                (start + (end - start) * (i + 1) / SEED_STEPS, piece, shares) for i in range(SEED_STEPS)
            )
        for rig in restored:
            self._last[rig.name] = by_name[rig.name]
            if rig.name in work:
                rig.seed(work[rig.name], min(at for at, _, _ in work[rig.name]) - MINUTE / SEED_STEPS)
        self._kv_written.update(await asyncio.to_thread(self.store.kv))
        inputs = self._kv_written.get(ECONOMICS_KEY)
        if inputs is not None and self.economics is not None:
            try:
                self.economics.restore(json.loads(inputs))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a damaged row: the next flush replaces it
                self.log.error("journal_economics_unreadable", path=str(self.path), error=f"{type(exc).__name__}: {exc}")
        if restored:
            self.log.info("journal_restored", rigs=len(restored), path=str(self.path))

    async def _prune(self) -> None:
        self._pruned_at = self.clock.monotonic()
        deleted, compacted = await self._off_loop(
            self.store.prune, self.clock.wall(), self.config.retention_days, self.config.compact_after_days
        )
        if deleted or compacted:
            self.log.info("journal_pruned", deleted=deleted, compacted_minutes=compacted)

    # -- faults -----------------------------------------------------------------------

    async def _ensure_open(self) -> bool:
        if self.store is not None:
            return True
        store = JournalStore(self.path, on_corrupt=self._corrupt)
        try:
            await asyncio.to_thread(store.open, self.clock.wall())
        except (sqlite3.Error, OSError, RuntimeError) as exc:  # JournalLocked included: retried
            self._failed("open", exc)
            return False
        self.store = store
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        self.dropped_writes += 1
        self.up = False
        if self._failing is None:
            self._failing = what
            self.log.error(
                "journal_unavailable", path=str(self.path), during=what, error=f"{type(exc).__name__}: {exc}",
                pending_rows=self.pending_rows, detail="serving on; retrying each flush",
            )  # fmt: skip

    def _recovered(self) -> None:
        self.up = True
        if self._failing is not None:
            self._failing = None
            self.log.warning("journal_recovered", path=str(self.path), dropped_writes=self.dropped_writes)

    def _corrupt(self, path, moved, error: str) -> None:
        self.log.error(
            "journal_corrupt", path=str(path), moved_to=str(moved), error=error,
            detail="the damaged file is kept as moved_to; a fresh journal starts at path",
        )  # fmt: skip


def _rows(rows: FlushRows, rollups: dict[tuple[str, int], Rollup], records) -> Iterator[None]:
    """``rows`` filled from the pending rollups and rig records, a yield every ``COLLECT_CHUNK``."""
    for count, ((rig, start), rollup) in enumerate(rollups.items(), 1):
        rows.add_rollup(rig, start, rollup)
        if count % COLLECT_CHUNK == 0:
            yield
    for count, record in enumerate(records, 1):
        rows.add_rig(record)
        if count % COLLECT_CHUNK == 0:
            yield


def _minus(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    if now == before:
        return {}
    return {k: v - before.get(k, 0) for k, v in now.items() if v > before.get(k, 0)}
