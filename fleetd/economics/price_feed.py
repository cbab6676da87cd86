"""An optional BTC/USD price read from any HTTP JSON endpoint.

    feed = PriceFeed("https://api.coingecko.com/api/v3/simple/price?ids=bitcoin&vs_currencies=usd",
                     "bitcoin.usd", interval_seconds=300, clock=clock)
    task = asyncio.create_task(feed.run())
    ...
    quote = feed.latest()                    # None until the first good read
    if price_is_stale(quote and quote.fetched_at, clock.wall(), max_age):
        ...                                  # the caller decides what an old price means
    task.cancel()                            # run() closes its HTTP session on the way out

Rules, and why:

- ``json_path`` is a dotted path through objects and lists ("bitcoin.usd", "data.0.price",
  "USD.last"), so one class covers most public price APIs without per-vendor code.
- Only a positive finite number is a price: 0, negatives, NaN, infinities, booleans and
  null are errors, never quotes. The last good quote is kept across failures and never
  overwritten by a bad read; its ``fetched_at`` lets the caller judge staleness.
- The body is read incrementally up to ``max_body_bytes`` (after decompression), so a
  misbehaving source cannot make the daemon buffer an unbounded reply.
- A dead source logs a warning once when it starts failing and an info line once when it
  recovers; the failures in between are debug lines, so a night-long outage is two lines.
  Retries back off from ``MIN_RETRY_SECONDS`` doubling up to the interval.
- URLs are logged without credentials or query string: price APIs often carry a key there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import aiohttp
import orjson
import yarl

from fleetd import __version__
from fleetd import log as logs
from fleetd.clock import SYSTEM_CLOCK, Clock

USER_AGENT = f"fleetd/{__version__}"
MIN_RETRY_SECONDS = 5.0  # first retry after a failure (never sooner, unless the interval is shorter)
_SNIPPET_BYTES = 200  # of a bad reply's body, quoted in errors
_CHUNK = 64 * 1024
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")  # a decimal; no "nan", "inf", "1_000"


@dataclass(frozen=True)
class PriceQuote:
    usd: float  # BTC price in USD
    fetched_at: float  # unix time (the feed's clock) when it was read


class PriceFeedError(ValueError):
    """One fetch that produced no usable price; the message says why."""


# -- the JSON path ----------------------------------------------------------------------


def _segments(json_path: str) -> list[str]:
    if not isinstance(json_path, str) or not json_path.strip():
        raise ValueError(f"json_path must be a non-empty dotted path like 'bitcoin.usd', got {json_path!r}")
    segments = json_path.split(".")
    if any(not s for s in segments):
        raise ValueError(f"json_path {json_path!r} has an empty segment")
    return segments


def _describe(value: object) -> str:
    """A short description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        keys = list(value)[:8]
        more = ", ..." if len(value) > len(keys) else ""
        return f"an object with keys [{', '.join(repr(k) for k in keys)}{more}]" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _positive_finite(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            return None
        value = text
    if not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def price_from_json(document: object, json_path: str) -> float:
    """Follow a dotted path ("bitcoin.usd", "data.0.price", "USD.last") through dicts and lists
    (integer segments index lists) to a positive finite number (a numeric string like "87012.5"
    is accepted). ValueError naming the segment where it failed and what was there otherwise."""
    node = document
    walked: list[str] = []
    for segment in _segments(json_path):
        where = ".".join(walked) or "the top level"
        if isinstance(node, dict):
            if segment not in node:
                raise ValueError(f"no key {segment!r} at {where}: found {_describe(node)}")
            node = node[segment]
        elif isinstance(node, list):
            if not segment.isdigit():
                raise ValueError(f"segment {segment!r} at {where} is not a list index: found {_describe(node)}")
            index = int(segment)
            if index >= len(node):
                raise ValueError(f"index {index} at {where} is out of range: found {_describe(node)}")
            node = node[index]
        else:
            raise ValueError(f"cannot look up {segment!r} at {where}: found {_describe(node)}, not an object or list")
        walked.append(segment)
    price = _positive_finite(node)
    if price is None:
        raise ValueError(f"value at {json_path!r} is {_describe(node)}, not a positive finite number")
    return price


# -- helpers ----------------------------------------------------------------------------


def _redacted(url: yarl.URL) -> str:
    """scheme://host[:port]/path, without credentials, query or fragment."""
    return str(url.with_user(None).with_password(None).with_query(None).with_fragment(None))


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= _SNIPPET_BYTES else text[:_SNIPPET_BYTES] + "…"


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the body, and whether there was more (never buffers more than limit + 1)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], True


# -- the feed ---------------------------------------------------------------------------


class PriceFeed:
    """Polls one HTTP JSON endpoint for the BTC price. Runs on the daemon's loop; not thread-safe.

    ``fetches`` counts every attempt and ``failures`` the ones that failed; ``last_error`` is
    the message of the latest failure, cleared by the next success.
    """

    def __init__(
        self,
        url: str,
        json_path: str,
        *,
        interval_seconds: float = 300.0,
        timeout_seconds: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        max_body_bytes: int = 1 << 20,
    ) -> None:
        try:
            parsed = yarl.URL(url)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"price feed url {url!r} is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"price feed url must be http:// or https:// with a host, got {url!r}")
        _segments(json_path)
        checks = (
            ("interval_seconds", interval_seconds, 0 < interval_seconds < math.inf, "must be positive and finite"),
            ("timeout_seconds", timeout_seconds, 0 < timeout_seconds < math.inf, "must be positive and finite"),
            ("max_body_bytes", max_body_bytes, isinstance(max_body_bytes, int) and max_body_bytes >= 1, "must be >= 1"),
        )
        for key, value, ok, rule in checks:
            if not ok:
                raise ValueError(f"price feed {key} {rule}, got {value!r}")
        self.url = url
        self.json_path = json_path
        self.interval_seconds = float(interval_seconds)
        self.timeout_seconds = float(timeout_seconds)
        self.max_body_bytes = max_body_bytes
        self._url = parsed
        self._source = _redacted(parsed)
        self._clock = clock
        self._latest: PriceQuote | None = None
        self._session: aiohttp.ClientSession | None = None
        self._running = False
        self.fetches = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self._log = logs.get("fleetd.economics.price_feed")

    def latest(self) -> PriceQuote | None:
        """The last good quote, kept across failures (staleness is the caller's to judge)."""
        return self._latest

    def retry_delay(self, consecutive_failures: int) -> float:
        """Seconds before the next attempt after ``consecutive_failures`` failures in a row."""
        if consecutive_failures <= 0:
            return self.interval_seconds
        exponent = min(consecutive_failures - 1, 32)  # past the cap anyway; keeps the power small
        return min(self.interval_seconds, MIN_RETRY_SECONDS * 2.0**exponent)

    async def run(self) -> None:
        """Fetch now, then every interval (sooner, with backoff, after a failure) until cancelled.

        Fetch and parse errors are logged and counted, never raised. The HTTP session lives
        as long as this call and is closed when it ends, cancellation included.
        """
        if self._running:
            raise RuntimeError("this price feed is already running")
        self._running = True
        clock = self._clock
        self._session = self._new_session()
        try:
            while True:
                started = clock.monotonic()
                try:
                    await self.fetch_once()
                except PriceFeedError:
                    pass  # counted and logged by fetch_once
                delay = self.retry_delay(self.consecutive_failures)
                await clock.sleep(max(0.0, started + delay - clock.monotonic()))
        finally:
            session, self._session = self._session, None
            self._running = False
            if session is not None:
                await session.close()

    async def fetch_once(self) -> PriceQuote:
        """Read the price once; PriceFeedError (a ValueError) says why when it cannot.

        Outside ``run()`` a session is opened for this one call and closed after it.
        """
        self.fetches += 1
        try:
            if self._session is not None and not self._session.closed:
                quote = await self._fetch(self._session)
            else:
                async with self._new_session() as session:
                    quote = await self._fetch(session)
        except PriceFeedError as exc:
            self._failed(str(exc))
            raise
        self._succeeded(quote)
        return quote

    # -- internals ------------------------------------------------------------------

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    async def _fetch(self, session: aiohttp.ClientSession) -> PriceQuote:
        status, body = await self._get(session)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PriceFeedError(
                f"{self._source}: reply is not JSON: {_snippet(body[:_SNIPPET_BYTES * 4]) or '(empty body)'}"
            ) from None
        try:
            usd = price_from_json(document, self.json_path)
        except ValueError as exc:
            raise PriceFeedError(f"{self._source}: price path {self.json_path!r}: {exc}") from None
        return PriceQuote(usd=usd, fetched_at=self._clock.wall())

    async def _get(self, session: aiohttp.ClientSession) -> tuple[int, bytes]:
        limit = self.max_body_bytes
        try:
            # the session's total timeout covers connecting, the headers and reading the body
            async with session.get(self._url) as response:
                status = response.status
                if not 200 <= status < 300:
                    head, _ = await _read_at_most(response, _SNIPPET_BYTES * 4)
                    reason = f" {response.reason}" if response.reason else ""
                    raise PriceFeedError(
                        f"{self._source}: HTTP {status}{reason}: {_snippet(head) or '(empty body)'}"
                    )
                declared = response.content_length
                if declared is not None and declared > limit and not response.headers.get("Content-Encoding"):
                    raise PriceFeedError(f"{self._source}: body of {declared} bytes is over the {limit}-byte limit")
                body, more = await _read_at_most(response, limit)
                if more:
                    raise PriceFeedError(f"{self._source}: body is over the {limit}-byte limit")
                return status, body
        except PriceFeedError:
            raise
        except TimeoutError:
            raise PriceFeedError(f"{self._source}: no complete answer within {self.timeout_seconds:g} s") from None
        except aiohttp.ClientError as exc:
            raise PriceFeedError(f"{self._source}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise PriceFeedError(f"{self._source}: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - whatever the HTTP stack raises is this source's failure
            raise PriceFeedError(f"{self._source}: {type(exc).__name__}: {exc}") from None

    def _failed(self, error: str) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = error
        fields = {
            "url": self._source,
            "error": error,
            "consecutive_failures": self.consecutive_failures,
            "retry_in": self.retry_delay(self.consecutive_failures),
            "have_price": self._latest is not None,
        }
        if self.consecutive_failures == 1:
            self._log.warning("price_fetch_failed", **fields)  # once, on the transition to failing
        else:
            self._log.debug("price_fetch_failed", **fields)

    def _succeeded(self, quote: PriceQuote) -> None:
        if self.consecutive_failures:
            self._log.info(
                "price_fetch_recovered", url=self._source, usd=quote.usd, after_failures=self.consecutive_failures
            )
        else:
            self._log.debug("price_fetched", url=self._source, usd=quote.usd)
        self._latest = quote
        self.consecutive_failures = 0
        self.last_error = None


__all__ = ["MIN_RETRY_SECONDS", "PriceFeed", "PriceFeedError", "PriceQuote", "USER_AGENT", "price_from_json"]
