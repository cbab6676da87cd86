"""The journal's read side: a rig's or the fleet's history in time buckets, and daily accounting.

Synchronous and pure but for the file (the HTTP handlers run it with ``asyncio.to_thread``).
Each call opens a read-only connection of its own and closes it, so a read never waits on the
writer's connection lock; in WAL mode it reads while the writer commits. What is shown lags the
rigs by at most one flush.

Sums are taken in SQL, grouped by bucket: a day of a 5,000-rig fleet is 7 million minute rows.
Each rig's rows are read as one range of the primary key: the time index would look every row
up again, four times slower on such a journal.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from fleetd.journal.store import HOUR, MINUTE, POOL, UPSTREAM
from fleetd.journal.writer import JOULES_PER_KWH
from fleetd.rigs.registry import HASHES_PER_DIFFICULTY

DAY = 86400
MAX_POINTS = 11_000  # per history answer, as Prometheus caps a range query
AUTO_POINTS = 720  # what an automatic step aims at: a point per pixel of a wide chart, about
MAX_DAYS = 400  # per accounting answer: the journal's default retention
READ_TIMEOUT = 5.0  # seconds a read waits for the file (a checkpoint holds it briefly)

_SUMMED = (
    "accepted", "accepted_work", "rejected", "blocks", "upstream_forwarded", "upstream_accepted",
    "upstream_accepted_work", "upstream_rejected", "energy_joules", "revenue_btc", "revenue_usd", "cost_usd",
    "unvalued_work", "unpriced_energy_joules",
)  # fmt: skip

# The rigs to read: one named, or every rig in the rollups, each found by a seek on the primary
# key (a loose index scan) rather than a pass over the table.
_ONE_RIG = "WITH picked(rig) AS (VALUES (:rig)) "
_EVERY_RIG = (
    "WITH RECURSIVE picked(rig) AS (SELECT min(rig) FROM rollups UNION ALL "
    "SELECT (SELECT min(rig) FROM rollups WHERE rig > picked.rig) FROM picked WHERE picked.rig IS NOT NULL) "
)
# Minute and hour rows alike: a bucket is a multiple of an hour wherever hour rows are.
_IN_RANGE = "ON {table}.rig = picked.rig AND seconds IN (60, 3600) AND start >= :start AND start < :end "
# Per rig and bucket: the sums, the mean reported hash rate and the hottest chip.
_BY_RIG = (
    "SELECT rollups.rig AS rig, start / :step * :step AS bucket, "
    + ", ".join(f"sum({c}) AS {c}" for c in _SUMMED)
    + ", avg(reported_hashrate) AS reported_hashrate, max(max_chip_celsius) AS max_chip_celsius "
    "FROM picked CROSS JOIN rollups NOT INDEXED " + _IN_RANGE.format(table="rollups") + "GROUP BY rollups.rig, bucket"
)
# Per bucket, over the rigs: a fleet's reported hash rate is the sum of each rig's mean.
_BY_BUCKET = (
    "SELECT bucket, count(*) AS rigs, "
    + ", ".join(f"sum({c}) AS {c}" for c in _SUMMED)
    + f", sum(reported_hashrate) AS reported_hashrate, max(max_chip_celsius) AS max_chip_celsius FROM ({_BY_RIG}) "
    "GROUP BY bucket"
)
_REJECTS = (
    "SELECT rejects.rig, start / :step * :step AS bucket, side, reason, sum(count) "
    "FROM picked CROSS JOIN rejects NOT INDEXED " + _IN_RANGE.format(table="rejects") + "GROUP BY 1, 2, 3, 4"
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
    empty one zero work, so a rig that stopped hashing shows 0."""
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
        picked = _EVERY_RIG if rig is None else _ONE_RIG
        rows = {row["bucket"]: row for row in conn.execute(picked + _BY_BUCKET, params)}
        rejects = _reject_counts(conn, picked, params) if rig is not None else {}
    points = []
    for bucket in range(first, last, step):
        point = {"time": bucket, **_point(rows.get(bucket), step)}
        if rig is None:
            point["rigs"] = rows[bucket]["rigs"] if bucket in rows else 0
        else:
            point["rejected_by_reason"] = rejects.get((rig, bucket, POOL), {})
        points.append(point)
    return {"rig": rig, "from": first, "to": last, "step": step, "points": points}


def accounting(path: Path, first_day: date, last_day: date, rig: str | None, now: float) -> dict:
    """What the fleet and each rig did, earned and cost per UTC day, from ``first_day`` to
    ``last_day`` included. A day not over at ``now`` is ``complete: false``, and its hash rate
    is averaged over the part of it gone by. With ``rig``, that rig every day and no fleet
    totals; without, each day lists the rigs that have rows in it."""
    if last_day < first_day:
        raise HistoryQueryError(f"from must be on or before to; got from={first_day}, to={last_day}")
    if (last_day - first_day).days >= MAX_DAYS:
        raise HistoryQueryError(f"at most {MAX_DAYS} days at a time; got {(last_day - first_day).days + 1}")
    start, end = _epoch(first_day), _epoch(last_day) + DAY
    params = {"rig": rig, "start": start, "end": end, "step": DAY}
    with _reading(path) as conn:
        if rig is not None:
            _require_rig(conn, rig)
        picked = _EVERY_RIG if rig is None else _ONE_RIG
        rows: dict[int, dict[str, sqlite3.Row]] = {}
        for row in conn.execute(picked + _BY_RIG, params):
            rows.setdefault(row["bucket"], {})[row["rig"]] = row
        rejects = _reject_counts(conn, picked, params)
    days = []
    for day_start in range(start, end, DAY):
        seconds = min(float(DAY), max(0.0, now - day_start))  # of the day gone by at now
        found = rows.get(day_start, {})
        day = {"date": _day(day_start).isoformat(), "complete": seconds >= DAY, "seconds": seconds}
        if rig is None:
            day["fleet"] = {"rigs": len(found), **_day_figures(list(found.values()), rejects, day_start, seconds)}
        day["rigs"] = [
            {"rig": name, **_day_figures([found[name]] if name in found else [], rejects, day_start, seconds)}
            for name in (sorted(found) if rig is None else [rig])
        ]
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
    s = _sums([row] if row is not None else [])
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


def _day_figures(rows: list[sqlite3.Row], rejects: dict, day_start: int, seconds: float) -> dict:
    """One day's accounting of ``rows`` (one rig's, or every rig's for the fleet): what an
    operator checks against the pool's payout and the power bill."""
    s = _sums(rows)
    by_side = {side: {} for side in (POOL, UPSTREAM)}
    for row in rows:
        for side, counts in by_side.items():
            for reason, count in rejects.get((row["rig"], day_start, side), {}).items():
                counts[reason] = counts.get(reason, 0) + count
    hashes = s["accepted_work"] * HASHES_PER_DIFFICULTY
    return {
        "accepted": s["accepted"],
        "accepted_work": s["accepted_work"],
        "hashes": hashes,
        "hashrate": hashes / seconds if seconds else None,
        "rejected": s["rejected"],
        "rejected_by_reason": by_side[POOL],
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
        "upstream_rejected_by_reason": by_side[UPSTREAM],
        # the upstream pool's credit against the work fleetd accepted: null without upstream work
        "upstream_work_ratio": _ratio(s["upstream_accepted_work"], s["accepted_work"]) if s["upstream_accepted_work"] else None,
    }


def _sums(rows: list[sqlite3.Row]) -> dict:
    return {c: sum(row[c] for row in rows) for c in _SUMMED}


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


def _reject_counts(conn: sqlite3.Connection, picked: str, params: dict) -> dict[tuple[str, int, str], dict[str, int]]:
    """Rejects by (rig, bucket, side), counted by reason."""
    counts: dict[tuple[str, int, str], dict[str, int]] = {}
    for rig, bucket, side, reason, count in conn.execute(picked + _REJECTS, params):
        counts.setdefault((rig, bucket, side), {})[reason] = count
    return counts


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _epoch(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY


def _day(epoch: int) -> date:
    return date(1970, 1, 1) + timedelta(seconds=epoch)


__all__ = ["HistoryQueryError", "UnknownRig", "accounting", "accounting_csv", "auto_step", "history"]
