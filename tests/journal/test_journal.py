"""The journal on real SQLite files, on a fake clock: group commit, restore, blocks, faults, retention."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fake_clock import FakeClock
from fleetd.config import JournalConfig, parse
from fleetd.journal import history
from fleetd.journal.store import FlushRows, JournalLocked, JournalStore, default_path
from fleetd.journal.writer import Journal
from fleetd.rigs.registry import RigRegistry
from fleetd.sources.base import BlockOutcome


def _journal(path, rigs=None, clock=None, **options):
    config = JournalConfig(path=str(path), **options)
    return Journal(config, rigs if rigs is not None else RigRegistry(), clock=clock or FakeClock())


class _Job:
    job_id = "j1"


def test_config_section_and_defaults(tmp_path):
    config = parse("")
    assert config.journal == JournalConfig(True, "", 1.0, 400.0, 35.0)
    config = parse('[journal]\nenabled = false\npath = "/x/j.sqlite3"\nflush_seconds = 0.5\n')
    assert (config.journal.enabled, config.journal.path, config.journal.flush_seconds) == (False, "/x/j.sqlite3", 0.5)
    with pytest.raises(ValueError, match=r"\[journal\] compact_after_days must be shorter"):
        parse("[journal]\nretention_days = 30\ncompact_after_days = 40\n")
    assert default_path("", {"STATE_DIRECTORY": str(tmp_path)}) == tmp_path / "journal.sqlite3"
    assert default_path("", {}).name == "journal.sqlite3" and str(default_path("", {}).parent) == "."


async def test_counters_and_rate_windows_survive_a_restart(tmp_path):
    clock, rigs = FakeClock(), RigRegistry()
    journal = _journal(tmp_path / "j.sqlite3", rigs, clock)
    await journal.open()
    for second in range(600):  # ten minutes of one share of difficulty 100 a second
        rigs.share("acct.rig1", 100.0, clock.wall())
        if second % 7 == 0:
            rigs.reject("acct.rig1", "stale", clock.wall())
        clock.tick(1.0)
        assert await journal.flush()  # every second, as flush_seconds is by default
    rigs.get("acct.rig1").ip = "10.0.0.5"
    assert await journal.flush()
    assert journal.cpu_seconds > 0  # what collecting and writing took, counted for fleetd_journal_cpu_seconds_total
    before = rigs.get("acct.rig1")
    rate = {w: before.hashrate(w, clock.wall()) for w in ("1m", "5m", "1h")}
    await journal.close()

    again = RigRegistry()
    journal = _journal(tmp_path / "j.sqlite3", again, clock)
    await journal.open()
    after = again.get("acct.rig1")
    assert (after.accepted, after.accepted_work, after.rejected) == (600, 60000.0, before.rejected)
    assert after.ip == "10.0.0.5" and after.first_seen == before.first_seen and after.last_share == before.last_share
    for window, expected in rate.items():  # the windows are rebuilt from minute rollups
        assert after.hashrate(window, clock.wall()) == pytest.approx(expected, rel=0.1), window  # minute resolution
    # minute rollups add up to the counters
    rows = journal.store.rollups(0)
    assert sum(r.accepted for _, _, r in rows) == 600 and len({start for _, start, _ in rows}) == 11
    assert await journal.flush() and journal.store.rollups(0) == rows  # nothing new, nothing written
    await journal.close()


async def test_a_second_journal_on_one_file_is_refused_naming_the_file_and_pid(tmp_path):
    import os

    path = tmp_path / "j.sqlite3"
    first = _journal(path)
    await first.open()
    with pytest.raises(JournalLocked, match=rf"{path}.*pid {os.getpid()}"):
        await _journal(path).open()
    await first.close()
    second = _journal(path)
    await second.open()  # the lock went with the first
    assert second.up
    await second.close()


async def test_a_found_block_is_on_disk_at_once_and_a_resubmit_is_counted(tmp_path):
    clock = FakeClock()
    journal = _journal(tmp_path / "j.sqlite3", clock=clock)
    await journal.open()
    block = ("00" * 31 + "ab", 7)
    journal.block(_Job(), BlockOutcome(True, *block, "accepted", "beef" * 100, "11" * 80, "22" * 60), "acct.rig1")
    await journal._write_blocks()
    journal.block(_Job(), BlockOutcome(False, *block, "duplicate"), "acct.rig1")  # a resubmit without its bytes
    await journal._write_blocks()
    conn = sqlite3.connect(tmp_path / "j.sqlite3")  # another reader sees it: committed
    rows = conn.execute(
        "SELECT hash, height, worker, job_id, accepted, reason, resubmits, block_hex, header_hex, coinbase_hex FROM blocks"
    ).fetchall()
    assert rows == [(*block, "acct.rig1", "j1", 1, "duplicate", 1, "beef" * 100, "11" * 80, "22" * 60)]
    conn.close()
    await journal.close()


async def test_a_full_disk_is_said_once_counted_and_recovered_without_losing_counts(tmp_path, capsys):
    clock, rigs = FakeClock(), RigRegistry()
    journal = _journal(tmp_path / "j.sqlite3", rigs, clock)
    await journal.open()
    conn = journal.store.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    for minute in range(5):
        for i in range(200):
            rigs.share(f"acct.rig{i}", 1.0, clock.wall())
        clock.tick(60.0)
        assert not await journal.flush()
    assert not journal.up and journal.dropped_writes == 5
    assert journal.pending_rows <= 200 * 5 + 200  # a row per rig and minute, at most
    conn.execute("PRAGMA max_page_count=1073741823")  # space again
    assert await journal.flush() and journal.up and journal.pending_rows == 0
    out = capsys.readouterr().out
    assert out.count("journal_unavailable") == 1 and out.count("journal_recovered") == 1
    records = {r.name: r for r in journal.store.rigs()}
    assert len(records) == 200 and all(r.accepted == 5 for r in records.values())
    await journal.close()


async def test_a_read_only_and_a_locked_database_are_retried(tmp_path):
    clock, rigs = FakeClock(), RigRegistry()
    path = tmp_path / "j.sqlite3"
    journal = _journal(path, rigs, clock)
    await journal.open()
    journal.store.conn.execute("PRAGMA query_only=ON")  # writes refused as by a read-only file
    rigs.share("acct.rig1", 1.0, clock.wall())
    assert not await journal.flush() and not journal.up
    journal.store.conn.execute("PRAGMA query_only=OFF")
    assert await journal.flush() and journal.up
    other = sqlite3.connect(path, timeout=0)  # another process holds the write lock
    other.execute("BEGIN EXCLUSIVE")
    rigs.share("acct.rig1", 1.0, clock.wall())
    assert not await journal.flush() and not journal.up and journal.dropped_writes == 2
    other.execute("ROLLBACK")
    other.close()
    assert await journal.flush() and journal.up
    assert journal.store.rigs()[0].accepted == 2
    await journal.close()


async def test_a_corrupt_file_is_moved_aside_and_a_fresh_one_started(tmp_path, capsys):
    path = tmp_path / "j.sqlite3"
    path.write_bytes(b"this is not a database" * 1000)
    journal = _journal(path)
    await journal.open()
    assert journal.up
    moved = list(tmp_path.glob("j.sqlite3.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not a database")
    out = capsys.readouterr().out
    assert "journal_corrupt" in out and str(path) in out and str(moved[0]) in out
    await journal.close()


async def test_retention_deletes_old_rollups_and_compacts_minutes_into_hours(tmp_path):
    clock, rigs = FakeClock(), RigRegistry()
    journal = _journal(tmp_path / "j.sqlite3", rigs, clock, retention_days=10.0, compact_after_days=2.0)
    await journal.open()
    for _ in range(12 * 24 * 6):  # twelve days, a share every ten minutes
        rigs.share("acct.rig1", 1.0, clock.wall())
        clock.tick(600.0)
        assert await journal.flush()
    await journal._prune()
    store, now = journal.store, clock.wall()
    minutes, hours = store.rollups(0, 60), store.rollups(0, 3600)
    assert min(start for _, start, _ in minutes) >= now - 2 * 86400 - 3600
    assert min(start for _, start, _ in hours) >= now - 10 * 86400 - 3600
    kept = sum(r.accepted for _, _, r in minutes + hours)
    assert 8 * 24 * 6 <= kept <= 10 * 24 * 6 + 6
    assert store.rigs()[0].accepted == 12 * 24 * 6  # the counters are not rollups: never pruned
    await journal.close()


def _demo_config(journal_path):
    return parse(f'[journal]\npath = "{journal_path}"\n[source]\nkind = "demo"\n', "test")


@pytest.mark.parametrize("saved", ['{"height": "three"}', "not json", '{"format": 1}'])
def test_an_unreadable_demo_tip_starts_a_fresh_chain_and_says_so(tmp_path, saved, capsys):
    from fleetd.app import build_source
    from fleetd.journal.writer import TIP_KEY

    path = tmp_path / "journal.sqlite3"
    store = JournalStore(path)
    store.open(0.0)
    store.write_flush(FlushRows(kv=[(TIP_KEY, saved)]))
    store.close()
    chain = build_source(_demo_config(path))
    assert chain.tip().height == 0  # genesis: the next block is height 1
    assert "demo_tip_unreadable" in capsys.readouterr().out


def test_a_saved_demo_tip_resumes_the_chain(tmp_path):
    from fleetd.app import build_source
    from fleetd.journal.writer import TIP_KEY

    path = tmp_path / "journal.sqlite3"
    first = build_source(_demo_config(tmp_path / "other.sqlite3"))
    saved = {**first.tip().to_dict(), "height": 7}  # a chain that went on since its genesis
    store = JournalStore(path)
    store.open(0.0)
    store.write_flush(FlushRows(kv=[(TIP_KEY, json.dumps(saved))]))
    store.close()
    resumed = build_source(_demo_config(path))
    assert resumed.tip().to_dict() == saved and resumed.tip().height == 7


async def test_a_flush_builds_no_record_for_a_rig_that_has_not_moved(tmp_path, monkeypatch):
    from fleetd.journal import writer

    clock = FakeClock()
    rigs = RigRegistry()
    for i in range(50):
        rigs.share(f"acct.rig{i}", 1.0, clock.wall())
    journal = _journal(tmp_path / "journal.sqlite3", rigs, clock)
    await journal.open()
    assert await journal.flush()
    built = []
    real = writer.RigRecord
    monkeypatch.setattr(writer, "RigRecord", lambda *args, **kwargs: built.append(1) or real(*args, **kwargs))
    clock.tick(1.0)
    rigs.share("acct.rig7", 1.0, clock.wall())
    assert await journal.flush()
    assert len(built) == 1  # the one rig that mined; 49 skipped on a tuple compare
    await journal.close()


class _Event:
    def __init__(self, time, rig, kind):
        self.time, self.rig, self.kind, self.reason, self.detail = time, rig, kind, "unprofitable", {"watts": 3000.0}


async def test_audit_events_and_kept_state_are_written_with_the_flush_and_survive_a_restart(tmp_path):
    clock = FakeClock()
    journal = _journal(tmp_path / "j.sqlite3", clock=clock)
    await journal.open()
    journal.record([_Event(clock.wall(), "acct.rig1", "stop"), _Event(clock.wall() + 1, "acct.rig2", "stop")])
    journal.keep("curtailment", '{"curtailed": {}}')
    assert journal.pending_rows == 2 and journal.kept("curtailment") == '{"curtailed": {}}'
    journal.store.conn.execute("PRAGMA query_only=ON")  # a refused flush keeps them for the next one
    assert not await journal.flush()
    journal.store.conn.execute("PRAGMA query_only=OFF")
    assert await journal.flush() and journal.pending_rows == 0
    events = history.events(journal.store.path, 0, clock.wall() + 60)["events"]
    assert [(e["rig"], e["kind"], e["detail"]) for e in events] == [
        ("acct.rig1", "stop", {"watts": 3000.0}), ("acct.rig2", "stop", {"watts": 3000.0})]  # fmt: skip
    assert [e["rig"] for e in history.events(journal.store.path, 0, clock.wall() + 60, "acct.rig2")["events"]] == ["acct.rig2"]
    await journal.close()
    again = _journal(tmp_path / "j.sqlite3", clock=clock)
    await again.open()
    assert again.kept("curtailment") == '{"curtailed": {}}' and again.kept("nothing") is None
    await again.close()


async def test_the_fleet_minutes_and_the_rig_days_add_up_to_the_rollups_through_compaction(tmp_path):
    from fleetd.journal.store import _SUMMED

    clock, rigs = FakeClock(wall=1_767_225_600.0 - 1800.0), RigRegistry()  # half an hour before a UTC midnight
    journal = _journal(tmp_path / "j.sqlite3", rigs, clock, compact_after_days=1.0, retention_days=30.0)
    await journal.open()
    for second in range(0, 3600, 20):  # an hour across midnight, three rigs, a flush every 20 s
        for i in range(3):
            rigs.share(f"acct.rig{i}", 10.0 * (i + 1), clock.wall())
            rigs.get(f"acct.rig{i}").energy_joules += 100.0
        if second % 300 == 0:
            rigs.reject("acct.rig0", "stale", clock.wall())
        assert await journal.flush()
        clock.tick(20.0)
    clock.tick(60.0)  # the last minute is over: the days take it in at the next flush
    assert await journal.flush()
    conn = journal.store.conn
    sums = ", ".join(f"sum({c})" for c in _SUMMED)

    def agree():
        by_minute = conn.execute(f"SELECT seconds, start, {sums} FROM rollups GROUP BY seconds, start ORDER BY 1, 2").fetchall()
        fleet = conn.execute(f"SELECT seconds, start, {', '.join(_SUMMED)} FROM fleet_rollups ORDER BY 1, 2").fetchall()
        assert len(fleet) == len(by_minute) and all(f == pytest.approx(m) for f, m in zip(fleet, by_minute))
        by_day = conn.execute(f"SELECT rig, start / 86400 * 86400, {sums} FROM rollups GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        daily = conn.execute(f"SELECT rig, day, {', '.join(_SUMMED)} FROM daily ORDER BY 1, 2").fetchall()
        assert len(daily) == 6 and all(d == pytest.approx(b) for d, b in zip(daily, by_day))  # three rigs, two days

    agree()
    rigs_seen = conn.execute("SELECT DISTINCT rigs FROM fleet_rollups").fetchall()
    assert rigs_seen == [(3,)]
    clock.tick(3 * 86400.0)  # the minutes are compacted into hours: the fleet's too
    await journal._prune()
    assert conn.execute("SELECT DISTINCT seconds FROM fleet_rollups").fetchall() == [(3600,)]
    agree()
    await journal.close()
