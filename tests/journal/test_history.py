"""The journal's read side on real SQLite files: history in buckets, daily accounting and its
CSV, and the three HTTP routes on a real aiohttp server over loopback.

Every figure is written as a known rollup and checked exactly; the values are chosen to be
exact in binary, so sums taken in SQL and by hand agree to the bit."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import threading
from datetime import date

import aiohttp
import pytest
from aiohttp import web

from fake_clock import FakeClock
from fleetd.app import JOURNAL_KEY
from fleetd.journal import history
from fleetd.journal.history import HistoryQueryError, UnknownRig
from fleetd.journal.store import DAYS_KEY, FlushRows, JournalStore, RigRecord, Rollup
from fleetd.rigs.registry import RigRegistry
from fleetd.telemetry import api, history_api
from server_support import http_json, make_config, start_fleetd

T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
DAY, HOUR = 86400, 3600
H = 2**32  # hashes per unit of difficulty
KWH = 3.6e6


def _write(path, rows: dict[tuple[str, int], Rollup], *, compact_before: int | None = None, now: int | None = None):
    """Minute rollups into the journal at ``path`` as the writer's flush at ``now`` puts them:
    each minute into the fleet's too (the rigs with a rollup in it, their reported rates summed),
    and into the days once it is over (by default every minute written is). With
    ``compact_before``, every minute before it is then compacted into hours as the hourly prune does."""
    store = JournalStore(path)
    store.open(0.0)
    through = int(store.kv().get(DAYS_KEY, 0))
    over = max(start for _, start in rows) + 60 if now is None else now // 60 * 60
    flush = FlushRows(days_through=through, days_until=max(through, over))
    rates: dict[int, list[float | None]] = {}
    for (rig, start), rollup in rows.items():
        flush.add_rollup(rig, start, rollup)
        rates.setdefault(start, []).append(rollup.reported_hashrate)
    for start, reported in rates.items():
        known = [rate for rate in reported if rate is not None]
        flush.fleet_minute(start, len(reported), sum(known) if known else None)
    for name in sorted({rig for rig, _ in rows}):
        flush.add_rig(RigRecord(name))
    store.write_flush(flush)
    if compact_before is not None:
        store.prune(compact_before + 35 * DAY, 400.0, 35.0)
    store.close()


# -- history -----------------------------------------------------------------------------


def test_a_rigs_history_gives_every_figure_of_each_bucket_and_zeros_where_it_did_nothing(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _write(path, {
        ("acct.rig1", T0): Rollup(
            accepted=10, accepted_work=1000.0, rejected={"stale": 1, "duplicate": 1}, energy_joules=7200.0,
            revenue_usd=2.0, cost_usd=0.5, reported_hashrate=100e12, max_chip_celsius=70.0, upstream_forwarded=10,
            upstream_accepted=9, upstream_accepted_work=900.0, upstream_rejected={"lost": 1}),
        ("acct.rig1", T0 + 60): Rollup(
            accepted=5, accepted_work=500.0, rejected={"stale": 2}, energy_joules=4800.0, revenue_usd=1.0,
            cost_usd=0.25, unvalued_work=500.0, reported_hashrate=120e12, max_chip_celsius=75.0),
        ("acct.rig1", T0 + 180): Rollup(accepted=1, accepted_work=64.0),
        ("acct.rig2", T0): Rollup(accepted=99, accepted_work=9900.0),  # another rig: not in rig1's history
    })  # fmt: skip
    answer = history.history(path, "acct.rig1", T0 + 30, T0 + 300, 120)
    assert (answer["rig"], answer["from"], answer["to"], answer["step"]) == ("acct.rig1", T0, T0 + 360, 120)
    first, second, empty = answer["points"]
    assert first == {
        "time": T0, "hashrate": 1500 * H / 120, "accepted": 15, "rejected": 4, "reject_ratio": 4 / 19,
        "watts": 12000 / 120, "energy_kwh": 12000 / KWH, "joules_per_terahash": 12000 / (1500 * H / 1e12),
        "revenue_usd": 3.0, "cost_usd": 0.75, "margin_usd": 2.25, "unvalued_ratio": 500 / 1500,
        "reported_hashrate": 110e12, "max_chip_celsius": 75.0,
        "upstream": {"forwarded": 10, "accepted": 9, "accepted_work": 900.0, "rejected": 1},
        "rejected_by_reason": {"stale": 3, "duplicate": 1},
    }  # fmt: skip
    assert second == {
        "time": T0 + 120, "hashrate": 64 * H / 120, "accepted": 1, "rejected": 0, "reject_ratio": 0.0,
        "watts": None, "energy_kwh": 0.0, "joules_per_terahash": None, "revenue_usd": 0.0, "cost_usd": 0.0,
        "margin_usd": 0.0, "unvalued_ratio": 0.0, "reported_hashrate": None, "max_chip_celsius": None,
        "upstream": {"forwarded": 0, "accepted": 0, "accepted_work": 0.0, "rejected": 0}, "rejected_by_reason": {},
    }  # fmt: skip
    assert empty == {**second, "time": T0 + 240, "hashrate": 0.0, "accepted": 0}  # stopped hashing: a zero, not a gap


def test_the_fleet_sums_its_rigs_and_counts_them_per_point(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _write(path, {
        ("a/b", T0): Rollup(accepted=1, accepted_work=100.0, energy_joules=600.0, reported_hashrate=100e12),
        ("a/b", T0 + 60): Rollup(accepted=2, accepted_work=200.0, reported_hashrate=200e12, max_chip_celsius=60.0),
        ("x{1}", T0 + 60): Rollup(accepted=4, accepted_work=400.0, energy_joules=1800.0, reported_hashrate=50e12,
                                  max_chip_celsius=80.0, rejected={"stale": 1}),
        ("rig one", T0 + 120): Rollup(accepted=8, accepted_work=800.0),
        ("rig one", T0 + 300): Rollup(accepted=16, accepted_work=1600.0, revenue_usd=0.5, cost_usd=0.75),
    })  # fmt: skip
    answer = history.history(path, None, T0, T0 + 360, 120)
    assert answer["rig"] is None and answer["step"] == 120
    by_time = {p["time"]: p for p in answer["points"]}
    first = by_time[T0]
    assert (first["rigs"], first["accepted"], first["rejected"], first["hashrate"]) == (2, 7, 1, 700 * H / 120)
    assert first["watts"] == 2400 / 120 and first["max_chip_celsius"] is None  # the hottest chip: per rig only
    assert first["reported_hashrate"] == (100e12 + (200e12 + 50e12)) / 2  # the rigs' rates summed, each minute's mean
    assert "rejected_by_reason" not in first  # by reason: per rig only
    assert (by_time[T0 + 120]["rigs"], by_time[T0 + 120]["accepted"]) == (1, 8)
    assert by_time[T0 + 240]["margin_usd"] == -0.25 and by_time[T0 + 240]["rigs"] == 1
    # each rig, whatever its name, on its own
    for rig, accepted in (("a/b", 3), ("x{1}", 4), ("rig one", 24)):
        assert sum(p["accepted"] for p in history.history(path, rig, T0, T0 + 360, 60)["points"]) == accepted


def test_the_step_is_rounded_up_to_minutes_and_to_hours_back_in_compacted_time(tmp_path):
    path = tmp_path / "journal.sqlite3"
    old = {("a/b", T0 + m * 600): Rollup(accepted=1, accepted_work=10.0, reported_hashrate=float(m)) for m in range(18)}
    _write(path, old, compact_before=T0 + 3 * HOUR)  # three hours of minutes, now three hour rows
    recent = T0 + 39 * DAY
    _write(path, {("a/b", recent + 60): Rollup(accepted=2, accepted_work=20.0),
                  ("c", recent + 120): Rollup(accepted=4, accepted_work=40.0)})  # fmt: skip

    compacted = history.history(path, None, T0, T0 + 3 * HOUR, 90)
    assert compacted["step"] == HOUR and len(compacted["points"]) == 3
    assert [(p["accepted"], p["rigs"], p["hashrate"]) for p in compacted["points"]] == [(6, 1, 60 * H / HOUR)] * 3
    assert [p["reported_hashrate"] for p in compacted["points"]] == [2.5, 8.5, 14.5]  # the mean of each hour's
    straddling = history.history(path, "a/b", T0, recent + HOUR, 5400)
    assert straddling["step"] == 7200 and sum(p["accepted"] for p in straddling["points"]) == 20
    minutes = history.history(path, None, recent, recent + 600, 90)
    assert minutes["step"] == 120 and [p["accepted"] for p in minutes["points"]][:2] == [2, 4]


def test_more_than_11000_points_is_refused_with_the_step_and_range_that_would_do(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _write(path, {("a", T0): Rollup(accepted=1, accepted_work=1.0)})
    assert len(history.history(path, None, T0, T0 + 11_000 * 60, 60)["points"]) == 11_000
    with pytest.raises(HistoryQueryError, match=r"11001 points, over the 11000 allowed: use a step of at least 120 s, "
                                                r"or a range of at most 659940 s"):  # fmt: skip
        history.history(path, None, T0, T0 + 11_001 * 60, 60)


def test_bad_ranges_and_unknown_rigs_are_refused(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _write(path, {("a", T0): Rollup(accepted=1, accepted_work=1.0)})
    for start, end, step in ((T0, T0, 60), (T0 + 60, T0, 60), (-60, T0, 60), (T0, T0 + 60, 0)):
        with pytest.raises(HistoryQueryError):
            history.history(path, None, start, end, step)
    with pytest.raises(UnknownRig, match="'nobody'"):
        history.history(path, "nobody", T0, T0 + 60, 60)
    with pytest.raises(UnknownRig, match="'nobody'"):
        history.accounting(path, date(2026, 1, 1), date(2026, 1, 1), "nobody", T0)
    with pytest.raises(HistoryQueryError, match="at most 400 days"):
        history.accounting(path, date(2025, 1, 1), date(2026, 2, 5), None, T0)
    assert len(history.accounting(path, date(2025, 1, 1), date(2026, 2, 4), None, T0)["days"]) == 400
    with pytest.raises(HistoryQueryError, match="from must be on or before to"):
        history.accounting(path, date(2026, 1, 2), date(2026, 1, 1), None, T0)
    assert history.auto_step(T0, T0 + DAY) == 120 and history.auto_step(T0, T0 + 60) == 60


# -- accounting --------------------------------------------------------------------------


def _accounting_journal(path) -> None:
    """Day 1 compacted into hours, day 2 in minutes: rig a/b both days, rig one on day 1, and a
    rig whose name a spreadsheet would take for a formula."""
    _write(path, {
        ("a/b", T0 + 600): Rollup(
            accepted=6, accepted_work=6000.0, rejected={"stale": 2}, blocks=1, energy_joules=2 * KWH,
            revenue_btc=2**-10, revenue_usd=64.0, cost_usd=0.25, unvalued_work=1000.0, upstream_forwarded=6,
            upstream_accepted=4, upstream_accepted_work=3000.0, upstream_rejected={"lost": 1, "no_upstream": 1}),
        ("a/b", T0 + 5 * HOUR): Rollup(accepted=2, accepted_work=2000.0, energy_joules=KWH, unpriced_energy_joules=KWH),
        ("rig one", T0 + 60): Rollup(accepted=1, accepted_work=64.0, rejected={"duplicate": 1}),
        ("=cmd", T0 + 60): Rollup(accepted=1, accepted_work=1.0),
    }, compact_before=T0 + DAY)  # fmt: skip
    _write(path, {("a/b", T0 + DAY + 60): Rollup(accepted=3, accepted_work=300.0, upstream_forwarded=3,
                                                 upstream_accepted=3, upstream_accepted_work=600.0)})  # fmt: skip


def test_accounting_per_utc_day_for_the_fleet_and_each_rig_with_the_upstream_reconciliation(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _accounting_journal(path)
    now = T0 + DAY + 12 * HOUR  # noon on day 2
    report = history.accounting(path, date(2026, 1, 1), date(2026, 1, 3), None, now)
    assert (report["from"], report["to"], report["rig"]) == ("2026-01-01", "2026-01-03", None)
    one, two, three = report["days"]
    assert (one["date"], one["complete"], one["seconds"]) == ("2026-01-01", True, 86400.0)
    assert [r["rig"] for r in one["rigs"]] == ["=cmd", "a/b", "rig one"]
    ab = one["rigs"][1]
    assert ab == {
        "rig": "a/b", "accepted": 8, "accepted_work": 8000.0, "hashes": 8000 * H, "hashrate": 8000 * H / DAY,
        "rejected": 2, "rejected_by_reason": {"stale": 2}, "reject_ratio": 0.2, "energy_kwh": 3.0,
        "revenue_btc": 2**-10, "revenue_usd": 64.0, "cost_usd": 0.25, "margin_usd": 63.75, "unvalued_work": 1000.0,
        "unpriced_energy_kwh": 1.0, "blocks": 1, "upstream_forwarded": 6, "upstream_accepted": 4,
        "upstream_accepted_work": 3000.0, "upstream_rejected": 2,
        "upstream_rejected_by_reason": {"lost": 1, "no_upstream": 1}, "upstream_work_ratio": 3000 / 8000,
    }  # fmt: skip
    fleet = one["fleet"]
    assert (fleet["rigs"], fleet["accepted"], fleet["accepted_work"], fleet["rejected"]) == (3, 10, 8065.0, 3)
    assert fleet["rejected_by_reason"] == {"stale": 2, "duplicate": 1} and fleet["reject_ratio"] == 3 / 13
    assert fleet["upstream_work_ratio"] == 3000 / 8065 and fleet["hashrate"] == 8065 * H / DAY
    assert one["rigs"][2]["upstream_work_ratio"] is None  # no upstream work: nothing to reconcile
    # today: not complete, its hash rate over the half day gone by
    assert (two["complete"], two["seconds"], two["fleet"]["hashrate"]) == (False, 43200.0, 300 * H / 43200)
    assert two["fleet"]["upstream_work_ratio"] == 2.0  # the pool credited twice the work fleetd accepted
    assert (three["complete"], three["seconds"], three["fleet"]["hashrate"], three["rigs"]) == (False, 0.0, None, [])

    one_rig = history.accounting(path, date(2026, 1, 1), date(2026, 1, 3), "rig one", now)
    assert [(d["date"], [r["accepted"] for r in d["rigs"]]) for d in one_rig["days"]] == [
        ("2026-01-01", [1]), ("2026-01-02", [0]), ("2026-01-03", [0])]  # every day, and no fleet line
    assert all("fleet" not in d for d in one_rig["days"])


def test_accounting_takes_the_minutes_not_yet_in_the_days_from_the_rollups_and_counts_each_once(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _write(path, {("a", T0): Rollup(accepted=1, accepted_work=1.0),
                  ("a", T0 + 60): Rollup(accepted=2, accepted_work=2.0),
                  ("a", T0 + 120): Rollup(accepted=4, accepted_work=4.0, rejected={"stale": 1}),
                  ("b", T0 + 120): Rollup(accepted=8, accepted_work=8.0)}, now=T0 + 150)  # fmt: skip
    store = JournalStore(path)
    store.open(0.0)
    assert store.conn.execute("SELECT rig, accepted FROM daily").fetchall() == [("a", 3)]  # T0 + 120 is going on
    store.close()

    def today(now):
        day = history.accounting(path, date(2026, 1, 1), date(2026, 1, 1), None, now)["days"][0]
        rigs = [(r["rig"], r["accepted"], r["rejected_by_reason"]) for r in day["rigs"]]
        return day["fleet"]["accepted"], day["fleet"]["rigs"], rigs

    assert today(T0 + 150) == (15, 2, [("a", 7, {"stale": 1}), ("b", 8, {})])
    _write(path, {("a", T0 + 60): Rollup(accepted=16, accepted_work=16.0),  # a minute written late, once it was over
                  ("b", T0 + 180): Rollup(accepted=32, accepted_work=32.0)}, now=T0 + 300)  # fmt: skip
    assert today(T0 + 300) == (63, 2, [("a", 23, {"stale": 1}), ("b", 40, {})])
    one_rig = history.accounting(path, date(2026, 1, 1), date(2026, 1, 1), "b", T0 + 300)
    assert one_rig["days"][0]["rigs"][0]["accepted"] == 40


def test_the_fleets_rigs_are_the_most_seen_in_one_interval_of_the_point(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _write(path, {("a", T0): Rollup(accepted=1), ("b", T0 + 60): Rollup(accepted=1),  # one rig a minute, in turn
                  ("a", T0 + 120): Rollup(accepted=1), ("b", T0 + 120): Rollup(accepted=1)})  # fmt: skip
    assert [p["rigs"] for p in history.history(path, None, T0, T0 + 240, 120)["points"]] == [1, 2]


def test_the_accounting_csv_parses_and_says_what_the_json_says(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _accounting_journal(path)
    report = history.accounting(path, date(2026, 1, 1), date(2026, 1, 2), None, T0 + DAY + 12 * HOUR)
    lines = list(csv.DictReader(io.StringIO(history.accounting_csv(report))))
    expected = []
    for day in report["days"]:
        expected += [(day, "", day["fleet"])] + [(day, r["rig"], r) for r in day["rigs"]]
    assert [(line["date"], line["rig"]) for line in lines] == [
        ("2026-01-01", ""), ("2026-01-01", "'=cmd"), ("2026-01-01", "a/b"), ("2026-01-01", "rig one"),
        ("2026-01-02", ""), ("2026-01-02", "a/b")]  # a formula quoted, never run  # fmt: skip
    for line, (day, _, entry) in zip(lines, expected, strict=True):
        assert line["complete"] == str(day["complete"]) and float(line["seconds"]) == day["seconds"]
        assert line["rigs"] == str(entry.get("rigs", ""))
        for key, value in entry.items():
            if key.endswith("_by_reason"):
                side = key.removesuffix("_by_reason")
                counts = {c.split(":", 1)[1]: int(v) for c, v in line.items() if c.startswith(f"{side}:") and int(v)}
                assert counts == value, key
            elif key not in ("rig", "rigs"):
                assert (float(line[key]) if line[key] else None) == value, key
    assert "rejected:stale" in lines[0] and "upstream_rejected:no_upstream" in lines[0]


# -- HTTP --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _serving(journal_path, rigs: RigRegistry | None = None, now: float = T0 + DAY):
    """The history routes and the API on a real aiohttp server on loopback, at ``now``."""
    app = web.Application()
    history_api.setup(app, journal_path)
    api.setup(app, rigs or RigRegistry(), clock=FakeClock(wall=now))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_http_history_answers_as_the_query_does_and_leaves_the_rig_route_alone(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _write(path, {("a/b", T0): Rollup(accepted=1, accepted_work=100.0), ("x{1}", T0 + 60): Rollup(accepted=2)})
    rigs = RigRegistry()
    rigs.share("a/b", 1.0, T0 + DAY)
    async with _serving(path, rigs) as base:
        status, body = await http_json(base, f"/api/v1/rigs/a%2Fb/history?from={T0}&to={T0 + 300}&step=2m")
        assert status == 200 and body == history.history(path, "a/b", T0, T0 + 300, 120)
        status, body = await http_json(base, "/api/v1/rigs/a%2Fb/history?from=2026-01-01T00:00:00Z&to=2026-01-01T02:05:00%2B02:00")
        assert status == 200 and body == history.history(path, "a/b", T0, T0 + 300, 60)  # RFC 3339, any offset
        status, body = await http_json(base, "/api/v1/rigs/x%7B1%7D/history")  # the last 24 hours, about 720 points
        assert status == 200 and (body["rig"], body["from"], body["to"], body["step"]) == ("x{1}", T0, T0 + DAY, 120)
        assert len(body["points"]) == 720 and body["points"][0]["accepted"] == 2
        status, body = await http_json(base, f"/api/v1/fleet/history?from={T0}&to={T0 + 120}&step=60")
        assert status == 200 and [p["rigs"] for p in body["points"]] == [1, 1]
        status, body = await http_json(base, "/api/v1/rigs/a%2Fb")  # the live rig, as before
        assert status == 200 and body["rig"] == "a/b" and body["shares"]["accepted"] == 1
        status, body = await http_json(base, "/api/v1/rigs/nobody/history")
        assert status == 404 and "'nobody'" in body["error"]

        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/v1/accounting?from=2026-01-01&to=2026-01-02&format=csv") as response:
                assert response.status == 200 and response.content_type == "text/csv"
                assert response.headers["Content-Disposition"] == (
                    'attachment; filename="fleetd-accounting-2026-01-01-2026-01-02.csv"')  # fmt: skip
                report = history.accounting(path, date(2026, 1, 1), date(2026, 1, 2), None, T0 + DAY)
                assert await response.text() == history.accounting_csv(report)
        status, body = await http_json(base, "/api/v1/accounting?rig=a%2Fb")  # the last 7 days, today included
        assert status == 200 and (body["from"], body["to"], body["rig"]) == ("2025-12-27", "2026-01-02", "a/b")
        assert [d["rigs"][0]["accepted"] for d in body["days"]] == [0, 0, 0, 0, 0, 1, 0]


@pytest.mark.parametrize(
    "query, named",
    [
        ("/api/v1/fleet/history?step=0", "step"),
        ("/api/v1/fleet/history?step=fast", "step"),
        ("/api/v1/fleet/history?step=nan", "step"),
        ("/api/v1/fleet/history?from=yesterday", "from"),
        ("/api/v1/fleet/history?from=2026-01-01T00:00:00", "from"),  # no offset: which zone?
        ("/api/v1/fleet/history?to=inf", "to"),
        (f"/api/v1/fleet/history?from={T0 + 60}&to={T0}", "from must be before to"),
        (f"/api/v1/fleet/history?from={T0 - 30 * DAY}&step=60", "11000 allowed"),
        ("/api/v1/accounting?from=2026-13-01", "from"),
        ("/api/v1/accounting?from=2020-01-01", "at most 400 days"),
        ("/api/v1/accounting?format=xml", "format"),
    ],
)
async def test_http_bad_parameters_are_a_400_naming_them(tmp_path, query, named):
    path = tmp_path / "journal.sqlite3"
    _write(path, {("a", T0): Rollup(accepted=1)})
    async with _serving(path) as base:
        status, body = await http_json(base, query)
    assert status == 400 and named in body["error"], body


async def test_http_journal_off_is_a_404_saying_how_and_an_unreadable_one_a_503(tmp_path):
    async with _serving(None) as base:
        for route in ("/api/v1/rigs/a/history", "/api/v1/fleet/history", "/api/v1/accounting"):
            status, body = await http_json(base, route)
            assert status == 404 and "enabled = true" in body["error"] and body["path"] == route
    broken = tmp_path / "journal.sqlite3"
    broken.write_bytes(b"not a database" * 100)
    async with _serving(broken) as base:
        status, body = await http_json(base, "/api/v1/fleet/history")
    assert status == 503 and "cannot be read" in body["error"]


async def test_http_runs_two_queries_at_once_and_the_others_wait(tmp_path, monkeypatch):
    running, most, release = [], [], threading.Event()

    def held(*args):
        running.append(1)
        most.append(len(running))
        release.wait(10)
        running.pop()
        return {"held": True}

    monkeypatch.setattr(history, "history", held)
    async with _serving(tmp_path / "journal.sqlite3") as base:
        requests = [asyncio.create_task(http_json(base, "/api/v1/fleet/history")) for _ in range(5)]
        for _ in range(200):  # until two have started (threads: real time)
            await asyncio.sleep(0.01)
            if len(running) == 2:
                break
        await asyncio.sleep(0.2)  # time enough for a third to start, were it let
        assert len(running) == 2
        release.set()
        answers = await asyncio.gather(*requests)
    assert answers == [(200, {"held": True})] * 5 and max(most) == 2


async def test_end_to_end_shares_through_the_registry_and_a_flush_show_in_the_history(tmp_path):
    clock = FakeClock(wall=T0 + 30)
    running = await start_fleetd(make_config(), clock=clock)
    try:
        running.app[api.RIGS_KEY].share("acct.e2e", 1000.0, clock.wall())
        running.app[api.RIGS_KEY].share("acct.e2e", 500.0, clock.wall())
        assert await running.app[JOURNAL_KEY].flush()
        clock.tick(60.0)
        status, body = await http_json(running.http, "/api/v1/rigs/acct.e2e/history?from=2026-01-01T00:00:00Z&step=60")
        assert status == 200 and body["to"] == T0 + 120  # to: now, on the app's clock
        assert [(p["accepted"], p["hashrate"]) for p in body["points"]] == [(2, 1500 * H / 60), (0, 0.0)]
    finally:
        await running.runner.cleanup()


# -- the curtailment audit trail -----------------------------------------------------------


def _events_journal(path) -> None:
    """Five events a minute apart from T0: three of one rig, one of another, one of the site."""
    store = JournalStore(path)
    store.open(0.0)
    flush = FlushRows()
    for n, (rig, kind) in enumerate((("a", "stop"), ("b", "stop"), ("*", "released"), ("a", "verified"), ("a", "resume"))):
        flush.events.append((T0 + 60 * n, rig, kind, "unprofitable", f'{{"n": {n}}}'))
    store.write_flush(flush)
    store.close()


def test_events_in_a_range_oldest_first_of_a_rig_with_the_sites_and_the_latest_past_a_limit(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _events_journal(path)
    every = history.events(path, T0, T0 + 300)
    assert [(e["time"], e["rig"], e["kind"], e["detail"]) for e in every["events"]] == [
        (T0, "a", "stop", {"n": 0}), (T0 + 60, "b", "stop", {"n": 1}), (T0 + 120, "*", "released", {"n": 2}),
        (T0 + 180, "a", "verified", {"n": 3}), (T0 + 240, "a", "resume", {"n": 4})]  # fmt: skip
    assert not every["truncated"] and every["events"][0]["reason"] == "unprofitable"
    # the end is left out; a rig's are its own and the site's
    assert [e["kind"] for e in history.events(path, T0 + 60, T0 + 240)["events"]] == ["stop", "released", "verified"]
    assert [e["rig"] for e in history.events(path, T0, T0 + 300, "a")["events"]] == ["a", "*", "a", "a"]
    latest = history.events(path, T0, T0 + 300, limit=2)
    assert latest["truncated"] and [e["kind"] for e in latest["events"]] == ["verified", "resume"]
    assert history.events(path, T0 + 300, T0 + 400)["events"] == []
    for start, end, limit, named in ((T0, T0, 10, "from must be before to"), (T0, T0 + 1, 0, "limit")):
        with pytest.raises(HistoryQueryError, match=named):
            history.events(path, start, end, limit=limit)


async def test_http_events_answer_as_the_query_does_and_bad_parameters_are_a_400(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _events_journal(path)
    async with _serving(path, now=T0 + 600) as base:
        status, body = await http_json(base, "/api/v1/curtailment/events")  # the last 24 hours
        assert status == 200 and body == history.events(path, T0 + 600 - DAY, T0 + 600)
        status, body = await http_json(base, f"/api/v1/curtailment/events?from={T0 + 60}&to={T0 + 240}&rig=b&limit=5")
        assert status == 200 and [(e["rig"], e["kind"]) for e in body["events"]] == [("b", "stop"), ("*", "released")]
        for query, named in (("limit=-1", "limit"), ("limit=99999", "limit"), ("from=soon", "from")):
            status, body = await http_json(base, f"/api/v1/curtailment/events?{query}")
            assert status == 400 and named in body["error"], body
    async with _serving(None) as base:
        status, body = await http_json(base, "/api/v1/curtailment/events")
    assert status == 404 and "enabled = true" in body["error"]
