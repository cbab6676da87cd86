"""The HTTP JSON BTC price feed against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import logging
import math
import warnings
from collections.abc import Awaitable, Callable

import pytest
import structlog
from aiohttp import web
from fake_clock import FakeClock
from structlog.testing import capture_logs

from fleetd import __version__
from fleetd.economics.price_feed import (
    MIN_RETRY_SECONDS,
    PriceFeed,
    PriceFeedError,
    PriceQuote,
    price_from_json,
)
from fleetd.economics.prices import price_is_stale

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HANG_S = 30.0  # a hang guard for what takes milliseconds on loopback; a loaded machine may take seconds


class PriceServer:
    """One loopback HTTP server; each test sets what ``/price`` answers."""

    def __init__(self) -> None:
        self.handler: Handler = self.json({"bitcoin": {"usd": 87012.5}})
        self.requests: list[web.Request] = []
        self.release = asyncio.Event()  # ends any handler that is stalling on purpose
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> PriceServer:
        app = web.Application()
        app.router.add_get("/price", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/price"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        return await self.handler(request)

    # -- canned answers -------------------------------------------------------------

    @staticmethod
    def json(document: object) -> Handler:
        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.json_response(document)

        return handler

    @staticmethod
    def raw(body: bytes | str, status: int = 200, content_type: str = "application/json") -> Handler:
        async def handler(_request: web.Request) -> web.StreamResponse:
            data = body.encode() if isinstance(body, str) else body
            return web.Response(body=data, status=status, content_type=content_type)

        return handler

    def stalling(self) -> Handler:
        """Headers, half a document, then nothing until the test ends."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_type = "application/json"
            await response.prepare(request)
            await response.write(b'{"bitcoin": {"usd": ')
            await self.release.wait()
            return response

        return handler

    @staticmethod
    def endless() -> Handler:
        """A chunked body with no length that never ends: only an incremental reader survives it."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_type = "application/json"
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                await response.write(b'{"bitcoin": {"usd": 1, "pad": "')
                while True:  # until the client hangs up
                    await response.write(b"x" * 65536)
            return response

        return handler


@pytest.fixture
async def server():
    running = await PriceServer().start()
    yield running
    await running.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def loop_errors():
    """Whatever the event loop reports to its exception handler (e.g. "Unclosed client session")."""
    loop = asyncio.get_running_loop()
    seen: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)


async def wait_until(condition: Callable[[], bool], timeout: float = HANG_S) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def fetch_again(feed: PriceFeed, clock: FakeClock, times: int = 1) -> None:
    """Move the clock to ``run()``'s next fetch and wait until it is asleep again, ``times`` over."""
    await wait_until(lambda: len(clock.sleeps) >= feed.fetches >= 1)  # asleep after its first fetch
    for _ in range(times):
        asleep = len(clock.sleeps)
        await clock.advance(clock.sleeps[-1])
        await wait_until(lambda: len(clock.sleeps) > asleep)


def assert_no_unclosed_sessions(loop_errors: list[dict], caught: list[warnings.WarningMessage]) -> None:
    gc.collect()
    messages = [str(c.get("message")) for c in loop_errors] + [str(w.message) for w in caught]
    assert not [m for m in messages if "Unclosed" in m], messages


# -- price_from_json ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "path", "usd"),
    [
        ({"bitcoin": {"usd": 87012.5}}, "bitcoin.usd", 87012.5),  # CoinGecko simple/price
        ({"data": [{"price": "87012.5"}]}, "data.0.price", 87012.5),  # list index, numeric string
        ({"data": [{"price": 1}, {"price": 2}]}, "data.1.price", 2.0),
        ({"USD": {"last": 91000, "symbol": "$"}}, "USD.last", 91000.0),  # blockchain.info ticker, an int
        ({"price": " 9.1e4 "}, "price", 91000.0),
        ({"0": {"usd": 5}}, "0.usd", 5.0),  # an integer segment on an object is a key
        ([[1, 2], [3, 4]], "1.0", 3.0),
        ({"rate": 10**400}, "rate", None),  # out of float range: not finite, refused below
    ],
)
def test_price_from_json_follows_objects_and_lists(document, path, usd):
    if usd is None:
        with pytest.raises(ValueError, match="not a positive finite number"):
            price_from_json(document, path)
    else:
        assert price_from_json(document, path) == usd


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"bitcoin": {"eur": 80000}}, "bitcoin.usd", r"no key 'usd' at bitcoin: found an object with keys \['eur'\]"),
        ({"bitcoin": 5}, "bitcoin.usd", r"cannot look up 'usd' at bitcoin: found 5, not an object or list"),
        ({"data": [{"price": 1}]}, "data.3.price", r"index 3 at data is out of range: found a list of 1"),
        ({"data": [1]}, "data.first", r"segment 'first' at data is not a list index"),
        ([1], "usd", r"segment 'usd' at the top level is not a list index"),
        ({"usd": -87012.5}, "usd", r"value at 'usd' is -87012.5, not a positive finite number"),
        ({"usd": 0}, "usd", r"value at 'usd' is 0, not a positive"),
        ({"usd": "NaN"}, "usd", r"value at 'usd' is 'NaN', not a positive"),
        ({"usd": "inf"}, "usd", r"'inf', not a positive"),
        ({"usd": "1e999"}, "usd", r"'1e999', not a positive"),
        ({"usd": "87,012.50"}, "usd", r"'87,012.50', not a positive"),
        ({"usd": "1_000"}, "usd", r"'1_000', not a positive"),
        ({"usd": True}, "usd", r"value at 'usd' is true, not a positive"),
        ({"usd": None}, "usd", r"value at 'usd' is null, not a positive"),
        ({"usd": {"last": 1}}, "usd", r"is an object with keys \['last'\], not a positive"),
        ({"usd": 1}, "usd..x", r"empty segment"),
        ({"usd": 1}, "", r"non-empty dotted path"),
    ],
)
def test_price_from_json_says_where_it_failed(document, path, message):
    with pytest.raises(ValueError, match=message):
        price_from_json(document, path)


def test_float_nan_and_inf_values_are_refused():
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="not a positive finite number"):
            price_from_json({"usd": value}, "usd")


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "options", "message"),
    [
        ("ftp://example.com/price", "usd", {}, "http:// or https://"),
        ("file:///etc/price.json", "usd", {}, "http:// or https://"),
        ("example.com/price", "usd", {}, "http:// or https://"),
        ("http:///price", "usd", {}, "with a host"),
        ("https://example.com/price", "a..b", {}, "empty segment"),
        ("https://example.com/price", "usd", {"interval_seconds": 0}, "interval_seconds"),
        ("https://example.com/price", "usd", {"timeout_seconds": math.nan}, "timeout_seconds"),
        ("https://example.com/price", "usd", {"max_body_bytes": 0}, "max_body_bytes"),
    ],
)
def test_bad_configuration_is_a_value_error_at_construction(url, path, options, message):
    with pytest.raises(ValueError, match=message):
        PriceFeed(url, path, **options)


def test_retries_back_off_from_five_seconds_up_to_the_interval():
    feed = PriceFeed("https://example.com/price", "usd", interval_seconds=300)
    assert MIN_RETRY_SECONDS == 5.0
    assert [feed.retry_delay(k) for k in range(0, 9)] == [300, 5, 10, 20, 40, 80, 160, 300, 300]
    assert feed.retry_delay(10_000) == 300
    short = PriceFeed("https://example.com/price", "usd", interval_seconds=2)
    assert [short.retry_delay(k) for k in (0, 1, 5)] == [2, 2, 2]  # never slower than the interval


# -- one fetch ------------------------------------------------------------------------------


async def test_a_good_document_gives_a_quote_at_the_feeds_clock(server, clock, loop_errors):
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock)
    assert feed.latest() is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quote = await asyncio.wait_for(feed.fetch_once(), HANG_S)
        assert quote == PriceQuote(usd=87012.5, fetched_at=clock.wall())
        assert feed.latest() == quote
        assert (feed.fetches, feed.failures, feed.last_error) == (1, 0, None)
        assert server.requests[0].headers["User-Agent"] == f"fleetd/{__version__}"
        assert_no_unclosed_sessions(loop_errors, caught)  # fetch_once alone closes its own session


async def test_list_path_and_numeric_string_over_http(server, clock):
    server.handler = server.json({"data": [{"symbol": "BTC", "price": "91234.56"}]})
    feed = PriceFeed(server.url, "data.0.price", clock=clock)
    assert await asyncio.wait_for(feed.fetch_once(), HANG_S) == PriceQuote(91234.56, clock.wall())


BAD_ANSWERS = {
    "500": (PriceServer.raw("upstream exploded", status=500, content_type="text/plain"), {},
            r"HTTP 500.*upstream exploded"),
    "404": (PriceServer.raw('{"error": "no such coin"}', status=404), {}, r"HTTP 404.*no such coin"),
    "html": (PriceServer.raw("<html><body>Just a moment...</body></html>", content_type="text/html"), {},
             r"reply is not JSON: <html><body>Just a moment"),
    "empty": (PriceServer.raw(b""), {}, r"reply is not JSON: \(empty body\)"),
    "huge": (PriceServer.raw(b'{"usd": 1, "pad": "' + b"x" * 4096 + b'"}'), {"max_body_bytes": 1024},
             r"body of 4117 bytes is over the 1024-byte limit"),
    "wrong path": (PriceServer.json({"bitcoin": {"eur": 80000.0}}), {},
                   r"price path 'bitcoin.usd': no key 'usd' at bitcoin"),
    "negative": (PriceServer.json({"bitcoin": {"usd": -1.5}}), {}, r"is -1.5, not a positive finite number"),
    "zero": (PriceServer.json({"bitcoin": {"usd": 0}}), {}, r"is 0, not a positive finite number"),
    "NaN": (PriceServer.json({"bitcoin": {"usd": "NaN"}}), {}, r"is 'NaN', not a positive finite number"),
    "NaN literal": (PriceServer.raw('{"bitcoin": {"usd": NaN}}'), {}, r"reply is not JSON"),
    "bool": (PriceServer.json({"bitcoin": {"usd": True}}), {}, r"is true, not a positive finite number"),
    "null": (PriceServer.json({"bitcoin": {"usd": None}}), {}, r"is null, not a positive finite number"),
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
async def test_each_bad_answer_is_a_price_feed_error_naming_the_problem(server, clock, case):
    handler, options, message = BAD_ANSWERS[case]
    server.handler = handler
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock, **options)
    with pytest.raises(PriceFeedError, match=message) as raised:
        await asyncio.wait_for(feed.fetch_once(), HANG_S)
    assert isinstance(raised.value, ValueError)
    assert (feed.fetches, feed.failures, feed.latest()) == (1, 1, None)
    assert feed.last_error == str(raised.value)


async def test_an_endless_body_is_cut_off_at_the_limit_not_buffered(server, clock):
    server.handler = server.endless()
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock, max_body_bytes=100_000, timeout_seconds=5)
    with pytest.raises(PriceFeedError, match=r"body is over the 100000-byte limit"):
        await asyncio.wait_for(feed.fetch_once(), HANG_S)  # well before the timeout: read only to the limit


async def test_the_limit_applies_to_the_decompressed_body(server, clock):
    def gzipped(document: bytes) -> Handler:
        body = gzip.compress(document)

        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, content_type="application/json", headers={"Content-Encoding": "gzip"})

        return handler

    server.handler = gzipped(b'{"bitcoin": {"usd": 1, "pad": "' + b"0" * (4 << 20) + b'"}}')  # 4 MiB in ~4 KiB
    with pytest.raises(PriceFeedError, match=r"body is over the 65536-byte limit"):
        await asyncio.wait_for(PriceFeed(server.url, "bitcoin.usd", max_body_bytes=65536).fetch_once(), HANG_S)
    server.handler = gzipped(b'{"bitcoin": {"usd": 87000}}')  # compressed and small: decoded as usual
    assert (await asyncio.wait_for(PriceFeed(server.url, "bitcoin.usd").fetch_once(), HANG_S)).usd == 87000


async def test_a_server_slower_than_the_timeout_is_an_error(server, clock):
    server.handler = server.stalling()  # headers and half a body arrive; the rest never does
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock, timeout_seconds=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PriceFeedError, match=r"no complete answer within 0.2 s"):
        await asyncio.wait_for(feed.fetch_once(), HANG_S)
    # the server never finishes, so only the feed's own deadline ends the fetch: not before its
    # 0.2 s, and far short of the 10 s default (which would mean the setting was not used)
    assert 0.19 <= loop.time() - started < 10


async def test_a_refused_connection_is_an_error(server, clock):
    port = server.port
    await server.close()
    feed = PriceFeed(f"http://127.0.0.1:{port}/price", "bitcoin.usd", clock=clock)
    with pytest.raises(PriceFeedError, match=rf"http://127.0.0.1:{port}/price: "):
        await asyncio.wait_for(feed.fetch_once(), HANG_S)


async def test_credentials_and_query_are_kept_out_of_errors_and_logs(server, clock):
    server.handler = server.raw("down", status=503, content_type="text/plain")
    url = f"http://user:hunter2@127.0.0.1:{server.port}/price?x_cg_demo_api_key=SECRET"
    feed = PriceFeed(url, "bitcoin.usd", clock=clock)
    with capture_logs() as logs, pytest.raises(PriceFeedError) as raised:
        await asyncio.wait_for(feed.fetch_once(), HANG_S)
    assert server.requests[0].query["x_cg_demo_api_key"] == "SECRET"  # the query is still sent
    text = str(raised.value) + repr(logs)
    assert "SECRET" not in text and "hunter2" not in text
    assert f"127.0.0.1:{server.port}/price" in text


# -- run() ----------------------------------------------------------------------------------


async def test_run_keeps_the_last_good_price_logs_the_outage_once_and_recovers(server, clock):
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))  # restored by conftest
    max_age = 100.0
    with capture_logs() as logs:
        feed = PriceFeed(server.url, "bitcoin.usd", clock=clock, interval_seconds=60)
        task = asyncio.create_task(feed.run())
        try:
            await wait_until(lambda: feed.latest() is not None)
            good = feed.latest()
            assert good == PriceQuote(87012.5, clock.wall())
            assert not price_is_stale(good.fetched_at, clock.wall(), max_age)

            server.handler = server.raw("maintenance", status=502, content_type="text/plain")
            await fetch_again(feed, clock, 4)  # retried after 60 + 5 + 10 + 20 s
            assert feed.failures == 4 and feed.latest() is good  # never replaced by a failed read
            assert "HTTP 502" in feed.last_error
            assert not price_is_stale(good.fetched_at, clock.wall(), max_age)

            await fetch_again(feed, clock, 2)  # the source stays down past max_age: the price is flagged stale
            assert feed.latest() is good
            assert price_is_stale(feed.latest().fetched_at, clock.wall(), max_age)

            server.handler = server.json({"bitcoin": {"usd": 90000}})
            await fetch_again(feed, clock)
            assert feed.latest() == PriceQuote(90000.0, clock.wall())
            assert not price_is_stale(feed.latest().fetched_at, clock.wall(), max_age)
            # the interval, then retries backing off from MIN_RETRY_SECONDS up to it, then the interval
            assert clock.sleeps == [60, 5, 10, 20, 40, 60, 60, 60]
            assert feed.last_error is None
            outage = feed.failures
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, HANG_S)

    failed = [e for e in logs if e["event"] == "price_fetch_failed"]
    warned = [e for e in failed if e["log_level"] == "warning"]
    assert len(warned) == 1, warned  # once, on the transition to failing
    assert warned[0]["consecutive_failures"] == 1
    assert "HTTP 502" in warned[0]["error"] and warned[0]["url"] == server.url and warned[0]["have_price"]
    assert {e["log_level"] for e in failed} == {"warning", "debug"}
    assert len(failed) == outage  # one line per failure: the first a warning, the rest debug
    recovered = [e for e in logs if e["event"] == "price_fetch_recovered"]
    assert len(recovered) == 1 and recovered[0]["log_level"] == "info"
    assert recovered[0]["after_failures"] == outage and recovered[0]["usd"] == 90000
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]


async def test_run_against_a_dead_source_has_no_price_and_never_raises(server, clock):
    server.handler = server.raw("nope", status=500, content_type="text/plain")
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock)
    with capture_logs() as logs:
        task = asyncio.create_task(feed.run())
        await fetch_again(feed, clock, 4)
        assert feed.failures == 5 and not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_S)
    assert feed.latest() is None
    assert price_is_stale(None, clock.wall(), 600)
    assert feed.fetches == feed.failures
    assert len([e for e in logs if e["event"] == "price_fetch_failed" and e["log_level"] == "warning"]) == 1


async def test_run_stops_on_cancel_and_closes_its_session(server, clock, loop_errors):
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock, interval_seconds=60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.create_task(feed.run())
        await wait_until(lambda: feed.fetches == 1 and feed.latest() is not None)
        session = feed._session
        assert session is not None and not session.closed
        task.cancel()  # while it sleeps toward the next fetch
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_S)
        assert session.closed and feed._session is None
        del session, task
        assert_no_unclosed_sessions(loop_errors, caught)
    assert feed.latest() == PriceQuote(87012.5, clock.wall())


async def test_run_cancelled_mid_fetch_closes_its_session_too(server, clock, loop_errors):
    server.handler = server.stalling()
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock, timeout_seconds=30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.create_task(feed.run())
        await wait_until(lambda: len(server.requests) == 1)
        session = feed._session
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_S)
        assert session.closed
        assert (feed.fetches, feed.failures) == (1, 0)  # a cancelled fetch is not a source failure
        del session, task
        assert_no_unclosed_sessions(loop_errors, caught)


async def test_run_twice_at_once_is_refused(server, clock):
    feed = PriceFeed(server.url, "bitcoin.usd", clock=clock, interval_seconds=60)
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.latest() is not None)
        with pytest.raises(RuntimeError, match="already running"):
            await asyncio.wait_for(feed.run(), HANG_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_S)
    # and it can run again once stopped
    again = asyncio.create_task(feed.run())
    await wait_until(lambda: feed.fetches == 2)
    again.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(again, HANG_S)
