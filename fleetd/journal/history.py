"""The journal's read side: a rig's or the fleet's history in time buckets, daily accounting,
and the curtailment audit trail.

Synchronous and pure but for the file (the HTTP handlers run it with ``asyncio.to_thread``).
Each call opens a read-only connection of its own and closes it, so a read never waits on the
writer's connection lock; in WAL mode it reads while the writer commits. What is shown lags the
rigs by at most one flush.

Sums are taken in SQL, grouped by bucket. A rig's history reads its rows as one range of the
primary key (the time index would look every row up again, four times slower on a large
journal). The fleet's history reads the fleet's own rows (``fleet_rollups``, summed over the
rigs as they were written) and accounting each rig's days (``daily``) plus the minutes not yet
in them, so neither reads every rig's minutes: a day of a 5,000-rig fleet is 7 million of them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

from fleetd.journal.store import _SUMMED, DAY, DAYS_KEY, HOUR, MINUTE, POOL, UPSTREAM
from fleetd.journal.writer import JOULES_PER_KWH
from fleetd.rigs.registry import HASHES_PER_DIFFICULTY

MAX_POINTS = 11_000  # per history answer, as Prometheus caps a range query
AUTO_POINTS = 720  # what an automatic step aims at: a point per pixel of a wide chart, about
MAX_DAYS = 400  # per accounting answer: the journal's default retention
MAX_EVENTS = 5_000  # per events answer: the latest ones in the range
READ_TIMEOUT = 5.0  # seconds a read waits for the file (a checkpoint holds it briefly)

_SUMS = ", ".join(f"sum({c}) AS {c}" for c in _SUMMED)
# Minute and hour rows alike: a bucket is a multiple of an hour wherever hour rows are.
_IN_RANGE = "seconds IN (60, 3600) AND start >= :start AND start < :end "
# One rig per bucket: the sums, the mean reported hash rate and the hottest chip. The rig is
# joined in rather than compared, and the table NOT INDEXED, so its rows are read as one range
# of the primary key, never through the time index.
_RIG_BY_BUCKET = (
    f"WITH picked(rig) AS (VALUES (:rig)) SELECT start / :step * :step AS bucket, {_SUMS}, "
    "avg(reported_hashrate) AS reported_hashrate, max(max_chip_celsius) AS max_chip_celsius "
    f"FROM picked CROSS JOIN rollups NOT INDEXED ON rollups.rig = picked.rig AND {_IN_RANGE}GROUP BY bucket"
)
# The fleet per bucket: the sums, the most rigs seen in any one of its intervals, and the mean
# over its intervals of the rigs' reported rates summed. No hottest chip: that is per rig only.
_FLEET_BY_BUCKET = (
    f"SELECT start / :step * :step AS bucket, max(rigs) AS rigs, {_SUMS}, avg(reported_hashrate) AS reported_hashrate, "
    f"NULL AS max_chip_celsius FROM fleet_rollups WHERE {_IN_RANGE}GROUP BY bucket"
)
# Per rig per UTC day: its days, each day a seek on their key (day, rig), so one rig's year
# reads 400 rows, not the fleet's; and from its minute rollups, those from ``:recent`` on that
# are not in the days yet (the minute going on, the last flush's). ``{rig}``: a condition on
# the rig, or nothing for every rig.
_DAYS = (
    f"WITH RECURSIVE days(day) AS (VALUES (:start) UNION ALL SELECT day + {DAY} FROM days WHERE day + {DAY} < :end) "
    f"SELECT rig, daily.day, {', '.join(_SUMMED)} FROM days CROSS JOIN daily ON {{rig}}daily.day = days.day"
)
_NOT_IN_THE_DAYS = (
    f"SELECT rig, start / {DAY} * {DAY} AS bucket, {_SUMS} FROM rollups "
    "WHERE {rig}seconds IN (60, 3600) AND start >= :recent AND start < :end GROUP BY rig, bucket"
)
_THE_RIG = "rig = :rig AND "
_NOTHING = (0,) * len(_SUMMED)  # the sums where there are no rows
_SIDES = (POOL, UPSTREAM)  # whose rejects, in the order _day_figures takes them
# Rejects by reason (rows only for minutes with some): one rig's, or each rig's in turn, every
# rig in the table found by a seek on its key (a loose index scan). Read by rig, the rows are
# ranges of the key; the time index would look each one up again for its count.
_REJECTS = (
    "WITH RECURSIVE picked(rig) AS ({picked}) "
    "SELECT rejects.rig, start / :step * :step AS bucket, side, reason, sum(count) FROM picked "
    f"CROSS JOIN rejects NOT INDEXED ON rejects.rig = picked.rig AND {_IN_RANGE}GROUP BY 1, 2, 3, 4"
)
_ONE_RIG = "VALUES (:rig)"
_EVERY_RIG = (
    "SELECT min(rig) FROM rejects UNION ALL "
    "SELECT (SELECT min(rig) FROM rejects WHERE rig > picked.rig) FROM picked WHERE picked.rig IS NOT NULL"
)
_CSV_TEXT_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula


class HistoryQueryError(ValueError):
    """A range or step the journal cannot answer; the message says what it accepts."""


class UnknownRig(LookupError):
    """No row of the journal names this rig."""


def auto_step(start: float, end: float) -> int:
    """The smallest multiple of a minute that gives at most about ``AUTO_POINTS`` points."""
    return max(1, math.ceil((end - start) / AUTO_POINTS / MINUTE)) * MINUTE


def history(path: Path, rig: str | None, start: int, end: int, step: int) -> dict:
    """One rig's history, or the fleet's (``rig`` None: summed over the rigs), from ``start``
    to ``end`` (Unix seconds) in buckets of ``step`` seconds aligned to multiples of it.

    ``step`` is rounded up to a whole minute, and to a whole hour where the range reaches back
    into compacted (hourly) rows; the answer says the step used. Every bucket has a point, an
    empty one zero work, so a rig that stopped hashing shows 0.

    The fleet's points come from its own rows, one per interval: ``rigs`` is the most rigs seen
    in any interval of the bucket, ``reported_hashrate`` the mean over its intervals of the
    rigs' reported rates summed, and ``max_chip_celsius`` is None (the hottest chip is per rig)."""
    if step <= 0:
        raise HistoryQueryError(f"step must be a positive number of seconds; got {step}")
    if not 0 <= start < end:
        raise HistoryQueryError(f"from must be before to, both Unix seconds from 0; got from={start}, to={end}")
    with _reading(path) as conn:
        if rig is not None:
            _require_rig(conn, rig)
        step = _round_up(step, MINUTE)
        compacted_until = conn.execute(f"SELECT max(start) + {HOUR} FROM rollups WHERE seconds = {HOUR}").fetchone()[0]
        # back into compacted time, an hour row must fall in one bucket
        unit = HOUR if compacted_until is not None and start // step * step < compacted_until else MINUTE
        step = _round_up(step, unit)
        first, last = start // step * step, _round_up(end, step)
        if (last - first) // step > MAX_POINTS:
            smallest = _round_up(math.ceil((end - start) / (MAX_POINTS - 1)), unit)  # MAX_POINTS however aligned
            raise HistoryQueryError(
                f"from={start} to={end} at step {step} s is {(last - first) // step} points, over the {MAX_POINTS} "
                f"allowed: use a step of at least {smallest} s, or a range of at most {(MAX_POINTS - 1) * step} s"
            )
        params = {"rig": rig, "start": first, "end": last, "step": step}
        rows = {row["bucket"]: row for row in conn.execute(_FLEET_BY_BUCKET if rig is None else _RIG_BY_BUCKET, params)}
        rejects = _reject_counts(conn, params) if rig is not None else {}
    points = []
    for bucket in range(first, last, step):
        point = {"time": bucket, **_point(rows.get(bucket), step)}
        if rig is None:
            point["rigs"] = rows[bucket]["rigs"] if bucket in rows else 0
        else:
            point["rejected_by_reason"] = rejects.get((rig, bucket, POOL), {})
        points.append(point)
    return {"rig": rig, "from": first, "to": last, "step": step, "points": points}


def events(path: Path, start: float, end: float, rig: str | None = None, limit: int = MAX_EVENTS) -> dict:
    """The audit trail from ``start`` to ``end`` (Unix seconds, end excluded), oldest first: of
    one rig and the site's (``*``) when ``rig`` is given. Past ``limit`` events, the latest
    ``limit`` of them, and ``truncated`` says so."""
    if not 0 <= start < end:
        raise HistoryQueryError(f"from must be before to, both Unix seconds from 0; got from={start}, to={end}")
    if not 0 < limit <= MAX_EVENTS:
        raise HistoryQueryError(f"limit must be from 1 to {MAX_EVENTS}; got {limit}")
    which = "" if rig is None else "rig IN (:rig, '*') AND "
    with _reading(path) as conn:
        rows = conn.execute(
            f"SELECT time, rig, kind, reason, detail FROM events WHERE {which}time >= :start AND time < :end "
            "ORDER BY time DESC, rowid DESC LIMIT :limit",
            {"rig": rig, "start": start, "end": end, "limit": limit + 1},  # one more: were some left out?
        ).fetchall()
    truncated = len(rows) > limit
    found = [{"time": t, "rig": r, "kind": k, "reason": why, "detail": json.loads(d)} for t, r, k, why, d in rows[:limit]]
    return {"from": start, "to": end, "rig": rig, "truncated": truncated, "events": found[::-1]}


def accounting(path: Path, first_day: date, last_day: date, rig: str | None, now: float) -> dict:
    """What the fleet and each rig did, earned and cost per UTC day, from ``first_day`` to
    ``last_day`` included. A day not over at ``now`` is ``complete: false``, and its hash rate
    is averaged over the part of it gone by. With ``rig``, that rig every day and no fleet
    totals; without, each day lists the rigs that have rows in it, and the fleet line sums them.
    Each rig's days are read whole, and today's minutes not in them yet from its rollups."""
    if last_day < first_day:
        raise HistoryQueryError(f"from must be on or before to; got from={first_day}, to={last_day}")
    if (last_day - first_day).days >= MAX_DAYS:
        raise HistoryQueryError(f"at most {MAX_DAYS} days at a time; got {(last_day - first_day).days + 1}")
    start, end = _epoch(first_day), _epoch(last_day) + DAY
    with _reading(path) as conn:
        if rig is not None:
            _require_rig(conn, rig)
        params = {"rig": rig, "start": start, "end": end, "step": DAY, "recent": max(start, _days_through(conn))}
        by_day: dict[int, dict[str, list]] = {}  # day -> rig -> its sums, in _SUMMED's order
        condition = "" if rig is None else _THE_RIG
        for name, bucket, *sums in conn.execute(_DAYS.format(rig=condition), params):
            by_day.setdefault(bucket, {})[name] = sums
        for name, bucket, *sums in conn.execute(_NOT_IN_THE_DAYS.format(rig=condition), params):
            found = by_day.setdefault(bucket, {})
            found[name] = [a + b for a, b in zip(found[name], sums)] if name in found else sums
        rejects = _reject_counts(conn, params)
    days = []
    for day_start in range(start, end, DAY):
        seconds = min(float(DAY), max(0.0, now - day_start))  # of the day gone by at now
        found = by_day.get(day_start, {})
        day = {"date": _day(day_start).isoformat(), "complete": seconds >= DAY, "seconds": seconds}
        if rig is None:
            fleet = [sum(column) for column in zip(*found.values())] or _NOTHING
            by_reason = [_add_reasons(rejects.get((name, day_start, side)) for name in found) for side in _SIDES]
            day["fleet"] = {"rigs": len(found), **_day_figures(fleet, by_reason, seconds)}
        day["rigs"] = []
        for name in sorted(found) if rig is None else [rig]:
            by_reason = [rejects.get((name, day_start, side), {}) for side in _SIDES]
            day["rigs"].append({"rig": name, **_day_figures(found.get(name, _NOTHING), by_reason, seconds)})
        days.append(day)
    return {"from": first_day.isoformat(), "to": last_day.isoformat(), "rig": rig, "days": days}


def accounting_csv(report: dict) -> str:
    """``accounting``'s answer as CSV: a header, then per day a fleet line (empty ``rig``) and a
    line per rig; rejects by reason in a column per reason (``rejected:stale``). Text that a
    spreadsheet would run as a formula (a worker named ``=...``) is quoted with a leading ``'``."""
    entries = []
    for day in report["days"]:
        if "fleet" in day:
            entries.append((day, "", day["fleet"]))
        entries.extend((day, entry["rig"], entry) for entry in day["rigs"])
    # every day has a line (the fleet's, or the one rig's): the first names the figures
    figures = [k for k in entries[0][2] if k != "rigs" and not k.endswith("_by_reason")]
    reasons = [(side, reason) for side in ("rejected", "upstream_rejected")
               for reason in sorted({r for _, _, entry in entries for r in entry[f"{side}_by_reason"]})]  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "rig", "complete", "seconds", "rigs", *figures, *(_cell(f"{s}:{r}") for s, r in reasons)])
    for day, name, entry in entries:
        writer.writerow(
            [day["date"], _cell(name), day["complete"], day["seconds"], entry.get("rigs", "")]
            + ["" if entry[k] is None else entry[k] for k in figures]
            + [entry[f"{side}_by_reason"].get(reason, 0) for side, reason in reasons]
        )
    return out.getvalue()


# -- shaping ----------------------------------------------------------------------------


def _point(row: sqlite3.Row | None, step: int) -> dict:
    """One history bucket: rates over ``step``, ratios, and the sampled figures."""
    s = dict(zip(_SUMMED, _NOTHING)) if row is None else {c: row[c] for c in _SUMMED}
    work, energy = s["accepted_work"], s["energy_joules"]
    return {
        "hashrate": work * HASHES_PER_DIFFICULTY / step,
        "accepted": s["accepted"],
        "rejected": s["rejected"],
        "reject_ratio": _ratio(s["rejected"], s["accepted"] + s["rejected"]) or 0.0,
        "watts": energy / step if energy else None,
        "energy_kwh": energy / JOULES_PER_KWH,
        "joules_per_terahash": _ratio(energy, work * HASHES_PER_DIFFICULTY / 1e12) if energy else None,
        "revenue_usd": s["revenue_usd"],
        "cost_usd": s["cost_usd"],
        "margin_usd": s["revenue_usd"] - s["cost_usd"],
        "unvalued_ratio": _ratio(s["unvalued_work"], work) or 0.0,  # the share of the work revenue misses
        "reported_hashrate": row["reported_hashrate"] if row is not None else None,
        "max_chip_celsius": row["max_chip_celsius"] if row is not None else None,
        "upstream": {
            "forwarded": s["upstream_forwarded"],
            "accepted": s["upstream_accepted"],
            "accepted_work": s["upstream_accepted_work"],
            "rejected": s["upstream_rejected"],
        },
    }


def _day_figures(sums: Sequence[float], by_reason: Sequence[dict[str, int]], seconds: float) -> dict:
    """One day's accounting of a rig or the fleet from its ``sums`` (in ``_SUMMED``'s order)
    and its rejects by reason (``_SIDES``): what an operator checks against the pool's payout
    and the power bill."""
    rejected, upstream_rejected = by_reason
    s = dict(zip(_SUMMED, sums, strict=True))
    hashes = s["accepted_work"] * HASHES_PER_DIFFICULTY
    return {
        "accepted": s["accepted"],
        "accepted_work": s["accepted_work"],
        "hashes": hashes,
        "hashrate": hashes / seconds if seconds else None,
        "rejected": s["rejected"],
        "rejected_by_reason": rejected,
        "reject_ratio": _ratio(s["rejected"], s["accepted"] + s["rejected"]) or 0.0,
        "energy_kwh": s["energy_joules"] / JOULES_PER_KWH,
        "revenue_btc": s["revenue_btc"],
        "revenue_usd": s["revenue_usd"],
        "cost_usd": s["cost_usd"],
        "margin_usd": s["revenue_usd"] - s["cost_usd"],
        "unvalued_work": s["unvalued_work"],
        "unpriced_energy_kwh": s["unpriced_energy_joules"] / JOULES_PER_KWH,
        "blocks": s["blocks"],
        "upstream_forwarded": s["upstream_forwarded"],
        "upstream_accepted": s["upstream_accepted"],
        "upstream_accepted_work": s["upstream_accepted_work"],
        "upstream_rejected": s["upstream_rejected"],
        "upstream_rejected_by_reason": upstream_rejected,
        # the upstream pool's credit against the work fleetd accepted: null without upstream work
        "upstream_work_ratio": _ratio(s["upstream_accepted_work"], s["accepted_work"]) if s["upstream_accepted_work"] else None,
    }


def _add_reasons(counts: Iterable[dict[str, int] | None]) -> dict[str, int]:
    """Counts by reason added up (None for none)."""
    total: dict[str, int] = {}
    for by_reason in counts:
        for reason, count in (by_reason or {}).items():
            total[reason] = total.get(reason, 0) + count
    return total


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_CSV_TEXT_START) else text


# -- reading ----------------------------------------------------------------------------


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection in one read transaction: every query of an answer sees the same flushes."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=READ_TIMEOUT, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("BEGIN")
        yield conn
    finally:
        conn.close()


def _require_rig(conn: sqlite3.Connection, rig: str) -> None:
    known = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM rollups WHERE rig = ?) OR EXISTS (SELECT 1 FROM rigs WHERE name = ?)", (rig, rig)
    ).fetchone()[0]
    if not known:
        raise UnknownRig(f"the journal has no rig named {rig!r}")


def _days_through(conn: sqlite3.Connection) -> int:
    """The minute (Unix seconds) before which every minute is in the days; 0 for none."""
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (DAYS_KEY,)).fetchone()
    return int(row[0]) if row is not None else 0


def _reject_counts(conn: sqlite3.Connection, params: dict) -> dict[tuple[str, int, str], dict[str, int]]:
    """Rejects by (rig, bucket, side), counted by reason: of ``params["rig"]``, or every rig's."""
    counts: dict[tuple[str, int, str], dict[str, int]] = {}
    query = _REJECTS.format(picked=_EVERY_RIG if params["rig"] is None else _ONE_RIG)
    for rig, bucket, side, reason, count in conn.execute(query, params):
        counts.setdefault((rig, bucket, side), {})[reason] = count
    return counts


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _epoch(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY


def _day(epoch: int) -> date:
    return date(1970, 1, 1) + timedelta(seconds=epoch)


__all__ = ["HistoryQueryError", "UnknownRig", "accounting", "accounting_csv", "auto_step", "events", "history"]
