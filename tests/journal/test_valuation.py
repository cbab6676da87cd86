"""Each minute is valued at the prices of its moment, those prices survive a restart, and a
version-1 journal is migrated in place."""

from __future__ import annotations

import sqlite3

import pytest

from fake_clock import FakeClock
from fleetd.chain.network import NetworkState
from fleetd.config import JournalConfig, parse
from fleetd.economics.price_feed import PriceQuote
from fleetd.journal.store import SCHEMA_VERSION, JournalStore
from fleetd.journal.writer import Journal
from fleetd.rigs.registry import RigRegistry
from fleetd.telemetry.economics import SiteEconomicsView

DIFFICULTY = 1.2e14
SUBSIDY, FEES = 3.125, 0.025

# UTC: power costs 0.04 $/kWh before 12:00 and 0.10 after; one override for rack 2
PRICED = """
[economics]
btc_price_usd = 80000
fees_btc_per_block = 0.025
[[economics.power_schedule]]
start = "00:00"
usd_per_kwh = 0.04
[[economics.power_schedule]]
start = "12:00"
usd_per_kwh = 0.10
[[economics.power_override]]
rigs = ["rack2.*"]
usd_per_kwh = 0.05
"""
FED = """
[economics]
power_price_usd_per_kwh = 0.05
[economics.price_feed]
url = "https://prices.example/btc"
json_path = "usd"
max_age_seconds = 1800
"""


class _Node:
    def __init__(self, network):
        self.network = network

    def network_state(self):
        return self.network


def _journal(path, rigs, clock, view):
    return Journal(JournalConfig(path=str(path)), rigs, clock=clock, economics=view)


async def test_work_and_energy_are_valued_at_the_prices_of_their_minute(tmp_path):
    clock, rigs = FakeClock(wall=1_767_225_600.0 + 11 * 3600), RigRegistry()  # 2026-01-01 11:00 UTC
    node = _Node(NetworkState(DIFFICULTY, 900_000, FEES))
    view = SiteEconomicsView(parse(PRICED).economics, rigs, node)
    journal = _journal(tmp_path / "j.sqlite3", rigs, clock, view)
    await journal.open()
    for hour in range(2):  # 11:00 at 0.04 $/kWh, then 12:00 at 0.10 (the override stays at 0.05)
        for name in ("rack1.a", "rack2.b"):
            rigs.share(name, 1e6, clock.wall())
            rigs.get(name).energy_joules += 3.6e6  # one kWh
        assert await journal.flush()
        clock.tick(3600.0)
    rows = {(rig, start): r for rig, start, r in journal.store.rollups(0)}
    reward_per_work = (SUBSIDY + FEES) / DIFFICULTY
    eleven = 1_767_225_600 + 11 * 3600
    for (rig, start), r in rows.items():
        assert r.revenue_btc == pytest.approx(1e6 * reward_per_work)
        assert r.revenue_usd == pytest.approx(1e6 * reward_per_work * 80000)
        price = 0.05 if rig.startswith("rack2") else (0.04 if start == eleven else 0.10)
        assert r.cost_usd == pytest.approx(price), (rig, start)
        assert r.unvalued_work == 0 and r.unpriced_energy_joules == 0
    assert len(rows) == 4
    await journal.close()


async def test_work_with_no_known_value_is_kept_as_unvalued(tmp_path):
    clock, rigs = FakeClock(), RigRegistry()
    view = SiteEconomicsView(parse(PRICED).economics, rigs, _Node(None))  # no network known yet
    journal = _journal(tmp_path / "j.sqlite3", rigs, clock, view)
    await journal.open()
    rigs.share("rack1.a", 500.0, clock.wall())
    assert await journal.flush()
    ((_, _, row),) = journal.store.rollups(0)
    assert (row.revenue_btc, row.revenue_usd, row.unvalued_work) == (0.0, 0.0, 500.0)
    await journal.close()

    rigs = RigRegistry()  # no [economics] at all: energy has no price either
    journal = _journal(tmp_path / "k.sqlite3", rigs, clock, None)
    await journal.open()
    rigs.share("rack1.a", 500.0, clock.wall())
    rigs.get("rack1.a").energy_joules = 1000.0
    assert await journal.flush()
    ((_, _, row),) = journal.store.rollups(0)
    assert (row.unvalued_work, row.unpriced_energy_joules, row.cost_usd) == (500.0, 1000.0, 0.0)
    await journal.close()


class _Feed:
    def __init__(self, quote):
        self.quote = quote

    def latest(self):
        return self.quote


async def test_the_network_and_the_fetched_price_survive_a_restart(tmp_path):
    clock, rigs = FakeClock(), RigRegistry()
    config = parse(FED).economics
    view = SiteEconomicsView(config, rigs, _Node(NetworkState(DIFFICULTY, 900_000, None)))
    view.feed = _Feed(PriceQuote(91_000.0, clock.wall() - 60))
    journal = _journal(tmp_path / "j.sqlite3", rigs, clock, view)
    await journal.open()
    rigs.share("rack1.a", 1.0, clock.wall())
    assert await journal.flush()
    await journal.close()

    # after the restart the source has no job yet and the feed has not answered
    again = SiteEconomicsView(config, RigRegistry(), _Node(None))
    again.feed = _Feed(None)
    journal = _journal(tmp_path / "j.sqlite3", again.rigs, clock, again)
    await journal.open()
    snap = again.snapshot(clock.wall())
    assert snap.network.difficulty == DIFFICULTY and snap.network.height == 900_000
    assert snap.btc_usd == 91_000.0 and snap.price_age_seconds == 60.0 and not snap.price_stale
    assert snap.hashprice_usd_per_ph_day is not None
    clock.tick(1800.0)  # the restored price ages like a fetched one
    assert again.snapshot(clock.wall()).price_stale
    again.source = _Node(NetworkState(2 * DIFFICULTY, 900_001, None))  # the source's own report wins
    assert again.network().difficulty == 2 * DIFFICULTY
    assert await journal.flush()  # a flush before the feed answers keeps the restored price for the next restart
    await journal.close()
    third = SiteEconomicsView(config, RigRegistry(), _Node(None))
    journal = _journal(tmp_path / "j.sqlite3", third.rigs, clock, third)
    await journal.open()
    assert third.restored_quote == PriceQuote(91_000.0, clock.wall() - 1860.0)
    await journal.close()


_VERSION_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE blocks (hash TEXT PRIMARY KEY, time REAL NOT NULL, worker TEXT, job_id TEXT, height INTEGER,
    accepted INTEGER NOT NULL, reason TEXT NOT NULL, block_hex TEXT, resubmits INTEGER NOT NULL DEFAULT 0);
CREATE TABLE rollups (rig TEXT NOT NULL, start INTEGER NOT NULL, seconds INTEGER NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 0, accepted_work REAL NOT NULL DEFAULT 0, rejected TEXT NOT NULL DEFAULT '{}',
    blocks INTEGER NOT NULL DEFAULT 0, upstream_forwarded INTEGER NOT NULL DEFAULT 0,
    upstream_accepted INTEGER NOT NULL DEFAULT 0, upstream_accepted_work REAL NOT NULL DEFAULT 0,
    upstream_rejected TEXT NOT NULL DEFAULT '{}', energy_joules REAL NOT NULL DEFAULT 0, watts REAL,
    reported_hashrate REAL, max_chip_celsius REAL, PRIMARY KEY (rig, seconds, start)) WITHOUT ROWID;
CREATE INDEX rollups_by_time ON rollups (seconds, start);
CREATE TABLE rigs (name TEXT PRIMARY KEY, ip TEXT, model TEXT, firmware TEXT, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, last_share REAL, accepted INTEGER NOT NULL DEFAULT 0,
    accepted_work REAL NOT NULL DEFAULT 0, rejected TEXT NOT NULL DEFAULT '{}', blocks INTEGER NOT NULL DEFAULT 0,
    energy_joules REAL NOT NULL DEFAULT 0, upstream_forwarded INTEGER NOT NULL DEFAULT 0,
    upstream_accepted INTEGER NOT NULL DEFAULT 0, upstream_accepted_work REAL NOT NULL DEFAULT 0,
    upstream_rejected TEXT NOT NULL DEFAULT '{}') WITHOUT ROWID;
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO rollups VALUES ('acct.rig1', 600, 60, 9, 900.0, '{"stale": 2, "duplicate": 1}', 0, 4, 3, 300.0,
    '{"lost": 1}', 5000.0, 3100.0, 1.1e14, 71.5);
INSERT INTO blocks (hash, time, worker, job_id, height, accepted, reason) VALUES ('ab', 1.0, 'acct.rig1', 'j', 7, 1,
    'accepted');
"""


def test_a_version_1_journal_is_migrated_keeping_every_count(tmp_path):
    path = tmp_path / "j.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(_VERSION_1)
    conn.close()
    store = JournalStore(path)
    store.open(0.0)
    ((rig, start, row),) = store.rollups(0)
    assert (rig, start, row.accepted, row.accepted_work, row.energy_joules) == ("acct.rig1", 600, 9, 900.0, 5000.0)
    assert row.rejected == {"stale": 2, "duplicate": 1} and row.upstream_rejected == {"lost": 1}
    assert (row.upstream_forwarded, row.upstream_accepted, row.upstream_accepted_work) == (4, 3, 300.0)
    assert (row.watts, row.reported_hashrate, row.max_chip_celsius) == (3100.0, 1.1e14, 71.5)
    # nothing valued it then: all of it is work and energy of unknown value
    assert (row.revenue_usd, row.unvalued_work, row.unpriced_energy_joules) == (0.0, 900.0, 5000.0)
    assert store.blocks()[0]["height"] == 7 and store.blocks()[0]["header_hex"] is None
    assert store.conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    # the fleet's minutes and the rigs' days are made from the rollups it had
    assert store.conn.execute("SELECT start, rigs, accepted, reported_hashrate FROM fleet_rollups").fetchall() == [
        (600, 1, 9, 1.1e14)]  # fmt: skip
    assert store.conn.execute("SELECT rig, day, accepted, rejected, energy_joules FROM daily").fetchall() == [
        ("acct.rig1", 0, 9, 3, 5000.0)]  # fmt: skip
    store.close()
    store.open(0.0)  # opening again changes nothing
    assert store.rollups(0)[0][2] == row
    store.close()
