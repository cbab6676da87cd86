"""The journal on the HTTP API: /api/v1/rigs/{rig}/history, /api/v1/fleet/history,
/api/v1/accounting and /api/v1/curtailment/events. The queries run off the loop, two at a time; errors are JSON (``api.json_errors``)."""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiohttp import web

from fleetd import log as logging
from fleetd.journal import history
from fleetd.telemetry import api

JOURNAL_PATH_KEY = web.AppKey("history_journal_path", Path)
QUERIES_KEY = web.AppKey("history_queries", asyncio.Semaphore)
MAX_QUERIES = 2  # at once: a long accounting range still reads many rows (7 days of 5,000 rigs: about 1.5 s); more wait their turn
DEFAULT_RANGE_SECONDS = 86400
DEFAULT_DAYS = 7
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def setup(app: web.Application, journal_path: Path | None) -> None:
    """Mount the routes; ``journal_path`` None (``[journal] enabled = false``) makes them answer
    404 saying so. Mount before ``api.setup``: the rig history route must come ahead of the
    API's catch-all ``/api/v1/rigs/{rig}``, a rig name holding slashes."""
    if journal_path is not None:
        app[JOURNAL_PATH_KEY] = journal_path
    app[QUERIES_KEY] = asyncio.Semaphore(MAX_QUERIES)
    app.router.add_get("/api/v1/rigs/{rig:.+}/history", rig_history)
    app.router.add_get("/api/v1/fleet/history", fleet_history)
    app.router.add_get("/api/v1/accounting", accounting)
    app.router.add_get("/api/v1/curtailment/events", curtailment_events)


async def rig_history(request: web.Request) -> web.Response:
    return await _history(request, request.match_info["rig"])


async def fleet_history(request: web.Request) -> web.Response:
    return await _history(request, None)


async def _history(request: web.Request, rig: str | None) -> web.Response:
    """``from``/``to``: Unix seconds or RFC 3339 (default: the last 24 hours); ``step``: seconds,
    a duration (``5m``, ``1h``) or ``auto`` (the default: about 720 points)."""
    path, now = _journal_path(request), request.app[api.CLOCK_KEY].wall()
    end = _time(request, "to", now)
    start = _time(request, "from", end - DEFAULT_RANGE_SECONDS)
    raw = request.query.get("step", "auto")
    step = history.auto_step(start, end) if raw == "auto" else _step(raw)
    answer = await _query(request, history.history, path, rig, math.floor(start), math.ceil(end), step)
    return web.json_response(answer)


async def accounting(request: web.Request) -> web.Response:
    """``from``/``to``: UTC dates, both included (default: the last 7 days, today included);
    ``rig``: one rig; ``format``: json or csv."""
    path, now = _journal_path(request), request.app[api.CLOCK_KEY].wall()
    last = _date(request, "to", datetime.fromtimestamp(now, UTC).date())
    first = _date(request, "from", last - timedelta(days=DEFAULT_DAYS - 1))
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise web.HTTPBadRequest(reason=f"format must be json or csv; got {fmt!r}")
    report = await _query(request, history.accounting, path, first, last, request.query.get("rig"), now)
    if fmt == "json":
        return web.json_response(report)
    return web.Response(
        text=history.accounting_csv(report),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="fleetd-accounting-{first}-{last}.csv"'},
    )


async def curtailment_events(request: web.Request) -> web.Response:
    """The curtailment audit trail, oldest first. ``from``/``to``: as for history (default: the
    last 24 hours); ``rig``: one rig's and the site's; ``limit``: the latest that many (at most
    ``history.MAX_EVENTS``, the default)."""
    path, now = _journal_path(request), request.app[api.CLOCK_KEY].wall()
    end = _time(request, "to", now)
    start = _time(request, "from", end - DEFAULT_RANGE_SECONDS)
    raw = request.query.get("limit", str(history.MAX_EVENTS))
    if not raw.isdigit():
        raise web.HTTPBadRequest(reason=f"limit must be a whole number from 1 to {history.MAX_EVENTS}; got {raw!r}")
    rig = request.query.get("rig")
    return web.json_response(await _query(request, history.events, path, start, end, rig, int(raw)))


async def _query(request: web.Request, query, *args):
    """``query(*args)`` in a thread, once one of the ``MAX_QUERIES`` places is free."""
    async with request.app[QUERIES_KEY]:
        try:
            return await asyncio.to_thread(query, *args)
        except history.HistoryQueryError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        except history.UnknownRig as exc:
            raise web.HTTPNotFound(reason=str(exc)) from None
        except sqlite3.Error as exc:
            logging.get("fleetd.http").error("journal_unreadable", path=request.path, error=f"{type(exc).__name__}: {exc}")
            raise web.HTTPServiceUnavailable(reason=f"the journal cannot be read now ({exc}); try again") from None


def _journal_path(request: web.Request) -> Path:
    path = request.app.get(JOURNAL_PATH_KEY)
    if path is None:
        raise web.HTTPNotFound(
            reason="the journal is off ([journal] enabled = false), and history, accounting and the audit trail need it: "
            "set enabled = true under [journal] and restart fleetd"
        )
    return path


def _time(request: web.Request, name: str, default: float) -> float:
    """A query's time: Unix seconds, or an RFC 3339 time with its offset."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            when = None
        seconds = when.timestamp() if when is not None and when.tzinfo is not None else math.nan
    if not 0 <= seconds < 1e11:  # also refuses nan and inf
        raise web.HTTPBadRequest(
            reason=f"{name} must be Unix seconds or an RFC 3339 time such as 2026-01-31T12:00:00Z; got {raw!r}"
        )
    return seconds


def _step(raw: str) -> int:
    """Seconds (``90``), a duration (``5m``, ``1h``, ``1d``); whole seconds, rounded up."""
    duration = _DURATION.fullmatch(raw)
    try:
        seconds = int(duration[1]) * _UNIT_SECONDS[duration[2]] if duration else float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < 1e11:
        raise web.HTTPBadRequest(reason=f"step must be auto, seconds (60) or a duration (5m, 1h, 1d); got {raw!r}")
    return math.ceil(seconds)


def _date(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be a UTC date, YYYY-MM-DD; got {raw!r}") from None
