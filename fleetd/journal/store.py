"""The journal's SQLite file: schema, the single-instance lock, and every statement.

Synchronous on purpose: the writer calls it through ``asyncio.to_thread``, so the loop never
waits on the disk. One connection, used by one thread at a time (``_lock``).

WAL mode; rollups commit with ``synchronous=NORMAL`` (a power cut may lose the last
transaction, never corrupt the file); a found block commits with ``synchronous=FULL``, so it
is on the disk when ``write_block`` returns.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA_VERSION = 2
MINUTE = 60
HOUR = 3600
POOL, UPSTREAM = "pool", "upstream"  # whose rejects: fleetd's own, or the upstream pool's
DAY = 86400

_SUMMED = (
    "accepted", "accepted_work", "rejected", "blocks", "upstream_forwarded", "upstream_accepted",
    "upstream_accepted_work", "upstream_rejected", "energy_joules", "revenue_btc", "revenue_usd", "cost_usd",
    "unvalued_work", "unpriced_energy_joules",
)  # fmt: skip
_COUNTS = {"accepted", "rejected", "blocks", "upstream_forwarded", "upstream_accepted", "upstream_rejected"}
_SUMMED_COLUMNS = "".join(
    f"    {c} {'INTEGER' if c in _COUNTS else 'REAL'} NOT NULL DEFAULT 0,\n" for c in _SUMMED
)  # the summed columns of the fleet's and the days' tables

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
-- every found block, written and fsynced when the source has answered; one row per hash,
-- a block submitted again counts in resubmits and keeps the latest answer
CREATE TABLE IF NOT EXISTS blocks (
    hash TEXT PRIMARY KEY,        -- display hex
    time REAL NOT NULL,           -- Unix seconds of the source's answer
    worker TEXT,
    job_id TEXT,
    height INTEGER,
    accepted INTEGER NOT NULL,
    reason TEXT NOT NULL,
    block_hex TEXT,               -- the whole block as submitted (none in upstream mode: the pool has it)
    resubmits INTEGER NOT NULL DEFAULT 0,
    header_hex TEXT,              -- the 80-byte header, serialized
    coinbase_hex TEXT             -- the coinbase transaction as the miner completed it
);
-- per rig per interval (60 s; compacted to 3600 s with age): what it did, what that was worth
-- and what it cost at the prices of the moment, and the latest samples
CREATE TABLE IF NOT EXISTS rollups (
    rig TEXT NOT NULL,
    start INTEGER NOT NULL,       -- Unix seconds, a multiple of seconds
    seconds INTEGER NOT NULL,     -- 60 or 3600
    accepted INTEGER NOT NULL DEFAULT 0,
    accepted_work REAL NOT NULL DEFAULT 0,  -- sum of difficulties; x 2^32 is hashes
    rejected INTEGER NOT NULL DEFAULT 0,    -- by reason in rejects
    blocks INTEGER NOT NULL DEFAULT 0,
    upstream_forwarded INTEGER NOT NULL DEFAULT 0,
    upstream_accepted INTEGER NOT NULL DEFAULT 0,
    upstream_accepted_work REAL NOT NULL DEFAULT 0,
    upstream_rejected INTEGER NOT NULL DEFAULT 0,
    energy_joules REAL NOT NULL DEFAULT 0,
    revenue_btc REAL NOT NULL DEFAULT 0,    -- accepted work x block reward / network difficulty
    revenue_usd REAL NOT NULL DEFAULT 0,    -- ... x the BTC price of the moment
    cost_usd REAL NOT NULL DEFAULT 0,       -- energy x the rig's power price of the moment
    unvalued_work REAL NOT NULL DEFAULT 0,  -- work done while its USD value was unknown
    unpriced_energy_joules REAL NOT NULL DEFAULT 0,  -- energy drawn while no power price was known
    watts REAL,                   -- latest samples within the interval (hours: their mean)
    reported_hashrate REAL,
    max_chip_celsius REAL,
    PRIMARY KEY (rig, seconds, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_by_time ON rollups (seconds, start);
CREATE TABLE IF NOT EXISTS rejects (
    rig TEXT NOT NULL,
    start INTEGER NOT NULL,
    seconds INTEGER NOT NULL,
    side TEXT NOT NULL,           -- pool: fleetd's answer; upstream: the upstream pool's
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (rig, seconds, start, side, reason)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rejects_by_time ON rejects (seconds, start);
-- each rig's identity and cumulative counters as of the last flush: what a restart restores
CREATE TABLE IF NOT EXISTS rigs (
    name TEXT PRIMARY KEY,
    ip TEXT, model TEXT, firmware TEXT,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, last_share REAL,
    accepted INTEGER NOT NULL DEFAULT 0,
    accepted_work REAL NOT NULL DEFAULT 0,
    rejected TEXT NOT NULL DEFAULT '{}',
    blocks INTEGER NOT NULL DEFAULT 0,
    energy_joules REAL NOT NULL DEFAULT 0,
    upstream_forwarded INTEGER NOT NULL DEFAULT 0,
    upstream_accepted INTEGER NOT NULL DEFAULT 0,
    upstream_accepted_work REAL NOT NULL DEFAULT 0,
    upstream_rejected TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
-- the whole fleet per interval (the rollups summed as they are written): what fleet history
-- reads instead of every rig's rows
CREATE TABLE IF NOT EXISTS fleet_rollups (
    start INTEGER NOT NULL,
    seconds INTEGER NOT NULL,
""" + _SUMMED_COLUMNS + """    rigs INTEGER NOT NULL DEFAULT 0,        -- rigs with a rollup in the interval
    reported_hashrate REAL,                 -- the rigs' reported rates summed (hours: their mean)
    PRIMARY KEY (seconds, start)
) WITHOUT ROWID;
-- per rig per UTC day: what daily accounting reads
CREATE TABLE IF NOT EXISTS daily (
    rig TEXT NOT NULL,
    day INTEGER NOT NULL,                   -- Unix seconds of 00:00 UTC
""" + _SUMMED_COLUMNS + """    PRIMARY KEY (day, rig)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- the audit trail: every curtailment decision and action, its reason and the figures behind it
CREATE TABLE IF NOT EXISTS events (
    time REAL NOT NULL,
    rig TEXT NOT NULL,            -- "*": the whole site (a demand request, its release)
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'  -- JSON
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE INDEX IF NOT EXISTS events_by_rig ON events (rig, time);
"""

# Version 1 kept rejects as JSON in each rollup and no prices: its rows move over as work of
# unknown value.
_FROM_VERSION_1 = """
ALTER TABLE rollups RENAME TO rollups_v1;
DROP INDEX IF EXISTS rollups_by_time;
""" + _SCHEMA + """
INSERT INTO rollups (rig, start, seconds, accepted, accepted_work, rejected, blocks, upstream_forwarded,
    upstream_accepted, upstream_accepted_work, upstream_rejected, energy_joules, unvalued_work,
    unpriced_energy_joules, watts, reported_hashrate, max_chip_celsius)
SELECT rig, start, seconds, accepted, accepted_work, (SELECT coalesce(sum(value), 0) FROM json_each(rejected)),
    blocks, upstream_forwarded, upstream_accepted, upstream_accepted_work,
    (SELECT coalesce(sum(value), 0) FROM json_each(upstream_rejected)), energy_joules, accepted_work,
    energy_joules, watts, reported_hashrate, max_chip_celsius FROM rollups_v1;
INSERT INTO rejects SELECT rig, start, seconds, 'pool', key, value FROM rollups_v1, json_each(rollups_v1.rejected);
INSERT INTO rejects SELECT rig, start, seconds, 'upstream', key, value
    FROM rollups_v1, json_each(rollups_v1.upstream_rejected);
DROP TABLE rollups_v1;
INSERT INTO fleet_rollups (start, seconds, """ + ", ".join(_SUMMED) + """, rigs, reported_hashrate)
    SELECT start, seconds, """ + ", ".join(f"sum({c})" for c in _SUMMED) + """, count(*), sum(reported_hashrate)
    FROM rollups GROUP BY seconds, start;
INSERT INTO daily (rig, day, """ + ", ".join(_SUMMED) + """)
    SELECT rig, start / 86400 * 86400, """ + ", ".join(f"sum({c})" for c in _SUMMED) + """
    FROM rollups GROUP BY rig, start / 86400;
INSERT OR REPLACE INTO kv (key, value) SELECT 'days_through', coalesce(max(start + seconds), 0) FROM rollups;
ALTER TABLE blocks ADD COLUMN header_hex TEXT;
ALTER TABLE blocks ADD COLUMN coinbase_hex TEXT;
UPDATE schema_version SET version = 2;
"""

_SAMPLED = ("watts", "reported_hashrate", "max_chip_celsius")
_ROLLUP_COLUMNS = _SUMMED + _SAMPLED
# A rollup written again for the same rig and interval adds to what is there; samples keep the newest.
_UPSERT_ROLLUP = (
    f"INSERT INTO rollups (rig, start, seconds, {', '.join(_ROLLUP_COLUMNS)}) "
    f"VALUES (?, ?, ?{', ?' * len(_ROLLUP_COLUMNS)}) ON CONFLICT (rig, seconds, start) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMMED)
    + ", watts = coalesce(excluded.watts, watts), reported_hashrate = coalesce(excluded.reported_hashrate, reported_hashrate)"
    ", max_chip_celsius = max(coalesce(excluded.max_chip_celsius, max_chip_celsius), "
    "coalesce(max_chip_celsius, excluded.max_chip_celsius))"
)
_ADD_SUMS = ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMMED)
_UPSERT_FLEET = (
    f"INSERT INTO fleet_rollups (start, seconds, {', '.join(_SUMMED)}, rigs, reported_hashrate) "
    f"VALUES (?, ?{', ?' * len(_SUMMED)}, ?, ?) ON CONFLICT (seconds, start) DO UPDATE SET {_ADD_SUMS}, "
    "rigs = max(rigs, excluded.rigs), reported_hashrate = coalesce(excluded.reported_hashrate, reported_hashrate)"
)
_UPSERT_DAILY = (
    f"INSERT INTO daily (rig, day, {', '.join(_SUMMED)}) VALUES (?, ?{', ?' * len(_SUMMED)}) "
    f"ON CONFLICT (day, rig) DO UPDATE SET {_ADD_SUMS}"
)
_DAYS_FROM_MINUTES = (
    f"{_UPSERT_DAILY.split(' VALUES ')[0]} SELECT rig, start / {DAY} * {DAY}, {', '.join(f'sum({c})' for c in _SUMMED)} "
    f"FROM rollups WHERE seconds = {MINUTE} AND start >= ? AND start < ? GROUP BY rig, start / {DAY} "
    f"ON CONFLICT {_UPSERT_DAILY.split(' ON CONFLICT ')[1]}"
)
DAYS_KEY = "days_through"  # kv: minutes before this (Unix seconds) are in the days
_UPSERT_REJECTS = (
    "INSERT INTO rejects (rig, start, seconds, side, reason, count) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (rig, seconds, start, side, reason) DO UPDATE SET count = count + excluded.count"
)
_RIG_COLUMNS = (
    "name", "ip", "model", "firmware", "first_seen", "last_seen", "last_share", "accepted", "accepted_work",
    "rejected", "blocks", "energy_joules", "upstream_forwarded", "upstream_accepted", "upstream_accepted_work",
    "upstream_rejected",
)  # fmt: skip
_NO_REJECTS: dict[str, int] = {}  # shared, never written to: most rollups and rigs have none


class JournalLocked(RuntimeError):
    """Another fleetd holds the journal: the message names the file and the holder's pid."""


@dataclass(slots=True)
class Rollup:
    """What one rig did in one interval: changes summed, samples the latest. ``rejected`` and
    ``upstream_rejected`` count by reason; an empty one may be the shared ``_NO_REJECTS``, so
    ``merge`` replaces rather than updates them."""

    accepted: int = 0
    accepted_work: float = 0.0
    rejected: dict[str, int] = field(default_factory=lambda: _NO_REJECTS)
    blocks: int = 0
    upstream_forwarded: int = 0
    upstream_accepted: int = 0
    upstream_accepted_work: float = 0.0
    upstream_rejected: dict[str, int] = field(default_factory=lambda: _NO_REJECTS)
    energy_joules: float = 0.0
    revenue_btc: float = 0.0
    revenue_usd: float = 0.0
    cost_usd: float = 0.0
    unvalued_work: float = 0.0
    unpriced_energy_joules: float = 0.0
    watts: float | None = None
    reported_hashrate: float | None = None
    max_chip_celsius: float | None = None

    def merge(self, later: Rollup) -> None:
        """Take ``later`` in: its changes added, its samples where it has them."""
        self.accepted += later.accepted
        self.accepted_work += later.accepted_work
        self.rejected = _add_counts(self.rejected, later.rejected)
        self.blocks += later.blocks
        self.upstream_forwarded += later.upstream_forwarded
        self.upstream_accepted += later.upstream_accepted
        self.upstream_accepted_work += later.upstream_accepted_work
        self.upstream_rejected = _add_counts(self.upstream_rejected, later.upstream_rejected)
        self.energy_joules += later.energy_joules
        self.revenue_btc += later.revenue_btc
        self.revenue_usd += later.revenue_usd
        self.cost_usd += later.cost_usd
        self.unvalued_work += later.unvalued_work
        self.unpriced_energy_joules += later.unpriced_energy_joules
        self.watts = later.watts if later.watts is not None else self.watts
        self.reported_hashrate = later.reported_hashrate if later.reported_hashrate is not None else self.reported_hashrate
        if later.max_chip_celsius is not None:
            self.max_chip_celsius = max(later.max_chip_celsius, self.max_chip_celsius or later.max_chip_celsius)

    def row(self) -> tuple:
        return (
            self.accepted, self.accepted_work, sum(self.rejected.values()), self.blocks, self.upstream_forwarded,
            self.upstream_accepted, self.upstream_accepted_work, sum(self.upstream_rejected.values()),
            self.energy_joules, self.revenue_btc, self.revenue_usd, self.cost_usd, self.unvalued_work,
            self.unpriced_energy_joules, self.watts, self.reported_hashrate, self.max_chip_celsius,
        )  # fmt: skip


def _add_counts(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    if not more:
        return counts
    added = dict(counts)
    for reason, count in more.items():
        added[reason] = added.get(reason, 0) + count
    return added


@dataclass(slots=True)
class RigRecord:
    """A rig's identity and cumulative counters, as the journal keeps them between runs."""

    name: str
    ip: str | None = None
    model: str | None = None
    firmware: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    last_share: float | None = None
    accepted: int = 0
    accepted_work: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)
    blocks: int = 0
    energy_joules: float = 0.0
    upstream_forwarded: int = 0
    upstream_accepted: int = 0
    upstream_accepted_work: float = 0.0
    upstream_rejected: dict[str, int] = field(default_factory=dict)

    def row(self) -> tuple:
        return (
            self.name, self.ip, self.model, self.firmware, self.first_seen, self.last_seen, self.last_share,
            self.accepted, self.accepted_work, _counts_json(self.rejected), self.blocks, self.energy_joules,
            self.upstream_forwarded, self.upstream_accepted, self.upstream_accepted_work,
            _counts_json(self.upstream_rejected),
        )  # fmt: skip

    @classmethod
    def from_row(cls, row) -> RigRecord:
        values = dict(zip(_RIG_COLUMNS, row))
        values["rejected"] = json.loads(values["rejected"])
        values["upstream_rejected"] = json.loads(values["upstream_rejected"])
        return cls(**values)


def _counts_json(counts: dict[str, int]) -> str:
    return json.dumps(counts, sort_keys=True) if counts else "{}"


@dataclass(slots=True)
class FlushRows:
    """One flush's statement parameters, built on the event loop (in chunks, between shares) so
    the writing thread runs SQLite's C code and rarely needs the interpreter. Each rollup also
    goes into its rig's day and the fleet's minute."""

    rollups: list[tuple] = field(default_factory=list)
    rejects: list[tuple] = field(default_factory=list)
    # The days take each minute once it is over, from the rollups, in SQL (``days_until``);
    # only a minute already over that comes late (a write retried) goes in row by row.
    days_through: int = 0  # minutes before this are in the days
    days_until: int = 0  # ... and this flush takes in those before this
    daily: list[tuple] = field(default_factory=list)
    fleet: dict[int, list] = field(default_factory=dict)  # minute -> [sums..., rigs, reported hash rate]
    rigs: list[tuple] = field(default_factory=list)
    kv: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)  # (time, rig, kind, reason, detail JSON)

    def add_rollup(self, rig: str, start: int, rollup: Rollup) -> None:
        row = rollup.row()
        sums = row[: len(_SUMMED)]
        self.rollups.append((rig, start, MINUTE, *row))
        if start < self.days_through:
            self.daily.append((rig, start // DAY * DAY, *sums))
        fleet = self.fleet.get(start)
        if fleet is None:
            self.fleet[start] = [*sums, 0, None]
        else:
            for i, value in enumerate(sums):
                fleet[i] += value
        for side, counts in ((POOL, rollup.rejected), (UPSTREAM, rollup.upstream_rejected)):
            self.rejects.extend((rig, start, MINUTE, side, reason, count) for reason, count in counts.items())

    def fleet_minute(self, start: int, rigs: int, reported_hashrate: float | None) -> None:
        """The fleet's samples for a minute: rigs seen in it, their reported rates summed."""
        fleet = self.fleet.setdefault(start, [0] * len(_SUMMED) + [0, None])
        fleet[-2:] = [rigs, reported_hashrate]

    def add_rig(self, record: RigRecord) -> None:
        self.rigs.append(record.row())

    def __bool__(self) -> bool:
        return bool(self.rollups or self.rigs or self.kv or self.events or self.fleet) or self.days_until > self.days_through


@dataclass(frozen=True, slots=True)
class BlockRecord:
    time: float
    hash: str
    height: int | None
    worker: str | None
    job_id: str | None
    accepted: bool
    reason: str
    block_hex: str | None = None
    header_hex: str | None = None
    coinbase_hex: str | None = None


def default_path(configured: str, environ=os.environ) -> Path:
    """``[journal] path``; when empty, ``journal.sqlite3`` in ``$STATE_DIRECTORY`` (systemd's
    StateDirectory=, the first when it lists several), else in the working directory."""
    if configured:
        return Path(configured).expanduser()
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state or ".") / "journal.sqlite3"


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


class JournalStore:
    """The open journal: a lock held for its lifetime and one SQLite connection."""

    def __init__(self, path: str | Path, *, on_corrupt=None) -> None:
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}.lock")
        self.on_corrupt = on_corrupt  # (path, moved_to, error): told when a corrupt file is moved aside
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self.conn: sqlite3.Connection | None = None

    # -- open and close ---------------------------------------------------------------

    def open(self, now: float | None = None) -> None:
        """Take the lock, open (moving a corrupt file aside) and create the schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            try:
                self._connect()
            except sqlite3.DatabaseError as exc:
                moved = self._move_aside(now if now is not None else time.time())
                if self.on_corrupt is not None:
                    self.on_corrupt(self.path, moved, str(exc))
                self._connect()
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise JournalLocked(
                f"the journal {self.path} is in use by another fleetd (pid {holder}, holding {self.lock_path}); "
                "stop it, or give this one its own [journal] path"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.2)
        try:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.DatabaseError(f"cannot use WAL mode (journal_mode is {mode})")
            conn.execute("PRAGMA synchronous=NORMAL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            row = conn.execute("SELECT version FROM schema_version").fetchone() if _has_table(conn, "schema_version") else None
            if row is not None and row[0] > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the journal {self.path} has schema version {row[0]}, newer than this fleetd's "
                    f"{SCHEMA_VERSION}: run the newer fleetd, or give this one another [journal] path"
                )
            if row is not None and row[0] == 1:
                conn.executescript(f"BEGIN IMMEDIATE; {_FROM_VERSION_1} COMMIT;")
            conn.executescript(_SCHEMA)
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def _move_aside(self, now: float) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while moved.exists():
            n += 1
            moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        os.replace(self.path, moved)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{moved}{suffix}"))
        return moved

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                try:
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass
                self.conn.close()
                self.conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- writes -----------------------------------------------------------------------

    def write_flush(self, rows: FlushRows) -> None:
        """Minute rollups added to what is there, rig records replaced: one transaction."""
        with self._lock, self._transaction() as conn:
            conn.executemany(_UPSERT_ROLLUP, rows.rollups)
            conn.executemany(_UPSERT_REJECTS, rows.rejects)
            conn.executemany(_UPSERT_DAILY, rows.daily)
            if rows.days_until > rows.days_through:
                conn.execute(_DAYS_FROM_MINUTES, (rows.days_through, rows.days_until))
                conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (DAYS_KEY, str(rows.days_until)))
            conn.executemany(_UPSERT_FLEET, [(start, MINUTE, *values) for start, values in rows.fleet.items()])
            conn.executemany(
                f"INSERT OR REPLACE INTO rigs ({', '.join(_RIG_COLUMNS)}) VALUES ({', '.join('?' * len(_RIG_COLUMNS))})",
                rows.rigs,
            )
            conn.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", rows.kv)
            conn.executemany("INSERT INTO events (time, rig, kind, reason, detail) VALUES (?, ?, ?, ?, ?)", rows.events)

    def write_block(self, block: BlockRecord) -> None:
        """One found block, on the disk when this returns (``synchronous=FULL``)."""
        with self._lock:
            conn = self._conn()
            conn.execute("PRAGMA synchronous=FULL")
            try:
                with self._transaction():
                    conn.execute(
                        "INSERT INTO blocks (hash, time, worker, job_id, height, accepted, reason, block_hex, "
                        "header_hex, coinbase_hex) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE "
                        "SET resubmits = resubmits + 1, time = excluded.time, accepted = max(accepted, excluded.accepted), "
                        "reason = excluded.reason, block_hex = coalesce(excluded.block_hex, block_hex), "
                        "header_hex = coalesce(excluded.header_hex, header_hex), "
                        "coinbase_hex = coalesce(excluded.coinbase_hex, coinbase_hex)",
                        (block.hash, block.time, block.worker, block.job_id, block.height, int(block.accepted),
                         block.reason, block.block_hex, block.header_hex, block.coinbase_hex),  # fmt: skip
                    )
            finally:
                conn.execute("PRAGMA synchronous=NORMAL")

    def prune(self, now: float, retention_days: float, compact_after_days: float) -> tuple[int, int]:
        """Delete rollups older than the retention; compact minute rollups older than
        ``compact_after_days`` into hours. Returns (deleted, compacted) row counts."""
        deleted_before = int(now - retention_days * 86400)
        compact_before = int(now - compact_after_days * 86400) // HOUR * HOUR  # whole hours only
        with self._lock, self._transaction() as conn:
            deleted = conn.execute("DELETE FROM rollups WHERE start < ?", (deleted_before,)).rowcount
            conn.execute("DELETE FROM rejects WHERE start < ?", (deleted_before,))
            conn.execute("DELETE FROM events WHERE time < ?", (deleted_before,))
            conn.execute("DELETE FROM fleet_rollups WHERE start < ?", (deleted_before,))
            conn.execute("DELETE FROM daily WHERE day < ?", (deleted_before // DAY * DAY,))
            old = (MINUTE, compact_before)
            compacted = conn.execute("SELECT count(*) FROM rollups WHERE seconds=? AND start < ?", old).fetchone()[0]
            sums = ", ".join(f"sum({c})" for c in _SUMMED)
            conn.execute(
                f"{_UPSERT_ROLLUP.split(' VALUES ')[0]} SELECT rig, start / {HOUR} * {HOUR}, {HOUR}, {sums}, "
                "avg(watts), avg(reported_hashrate), max(max_chip_celsius) FROM rollups "
                "WHERE seconds=? AND start < ? GROUP BY rig, start / 3600 "
                f"ON CONFLICT {_UPSERT_ROLLUP.split(' ON CONFLICT ')[1]}",
                old,
            )
            conn.execute(
                f"INSERT INTO rejects (rig, start, seconds, side, reason, count) SELECT rig, start / {HOUR} * {HOUR}, "
                f"{HOUR}, side, reason, sum(count) FROM rejects WHERE seconds=? AND start < ? "
                f"GROUP BY rig, start / {HOUR}, side, reason ON CONFLICT {_UPSERT_REJECTS.split(' ON CONFLICT ')[1]}",
                old,
            )
            conn.execute(
                f"{_UPSERT_FLEET.split(' VALUES ')[0]} SELECT start / {HOUR} * {HOUR}, {HOUR}, {sums}, max(rigs), "
                "avg(reported_hashrate) FROM fleet_rollups WHERE seconds=? AND start < ? GROUP BY start / 3600 "
                f"ON CONFLICT {_UPSERT_FLEET.split(' ON CONFLICT ')[1]}",
                old,
            )
            conn.execute("DELETE FROM fleet_rollups WHERE seconds=? AND start < ?", old)
            conn.execute("DELETE FROM rollups WHERE seconds=? AND start < ?", old)
            conn.execute("DELETE FROM rejects WHERE seconds=? AND start < ?", old)
        with self._lock:
            conn = self._conn()
            conn.execute("PRAGMA incremental_vacuum")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted, compacted

    # -- reads ------------------------------------------------------------------------

    def rigs(self) -> list[RigRecord]:
        with self._lock:
            rows = self._conn().execute(f"SELECT {', '.join(_RIG_COLUMNS)} FROM rigs").fetchall()
        return [RigRecord.from_row(row) for row in rows]

    def rollups(self, since: float, seconds: int = MINUTE) -> list[tuple[str, int, Rollup]]:
        """(rig, start, rollup) of one interval length since ``since``, oldest first."""
        with self._lock:
            conn = self._conn()
            rows = conn.execute(
                f"SELECT rig, start, {', '.join(_ROLLUP_COLUMNS)} FROM rollups WHERE seconds=? AND start >= ? "
                "ORDER BY start, rig",
                (seconds, int(since)),
            ).fetchall()
            rejects = conn.execute(
                "SELECT rig, start, side, reason, count FROM rejects WHERE seconds=? AND start >= ?", (seconds, int(since))
            ).fetchall()
        by_key = {}
        for rig, start, *values in rows:
            fields = dict(zip(_ROLLUP_COLUMNS, values))
            fields["rejected"] = fields["upstream_rejected"] = _NO_REJECTS  # the totals; by reason below
            by_key[(rig, start)] = Rollup(**fields)
        for rig, start, side, reason, count in rejects:
            rollup = by_key.get((rig, start))
            if rollup is not None:
                name = "rejected" if side == POOL else "upstream_rejected"
                setattr(rollup, name, _add_counts(getattr(rollup, name), {reason: count}))
        return [(rig, start, rollup) for (rig, start), rollup in by_key.items()]

    def blocks(self) -> list[dict]:
        with self._lock:
            conn = self._conn()
            cursor = conn.execute("SELECT * FROM blocks ORDER BY time")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def kv(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conn().execute("SELECT key, value FROM kv").fetchall())

    def file_bytes(self) -> int:
        """The database and its write-ahead log on the disk."""
        total = 0
        for name in (self.path, Path(f"{self.path}-wal")):
            try:
                total += name.stat().st_size
            except OSError:
                pass
        return total

    # -- plumbing ---------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self.conn is None:
            raise sqlite3.ProgrammingError(f"the journal {self.path} is closed")
        return self.conn

    def _transaction(self):
        return _Transaction(self._conn())


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (a full disk leaves nothing half done)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            try:
                self.conn.execute("COMMIT")
                return
            except BaseException:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def read_value(path: str | Path, key: str) -> str | None:
    """One kv value, read without the lock or any write (before the journal is opened); None
    when there is no readable journal there."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.2)
        try:
            row = conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None
