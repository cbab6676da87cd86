"""Newline-delimited JSON framing for Stratum v1.

The framer turns received bytes into parsed JSON values, one per line, and stops for good
at the first byte sequence that cannot be Stratum: a line over the length limit, a TLS
ClientHello, an HTTP request, binary, or a line that does not parse as JSON. Its verdict
never depends on how the bytes were split into chunks.

A line nested deeper than ``max_depth`` is not parsed at all: it comes out as ``TooDeep``,
one bad request for the session to answer, and the stream goes on. (orjson parses up to
1024 levels and fails beyond; values that deep break Python code that walks them.) Only a
line with more brackets than the limit is scanned, so a submit line costs two ``count``s;
a line whose brackets do not balance is left to the parser, which refuses it as before.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import orjson

DEFAULT_MAX_LINE_BYTES = 16 * 1024
DEFAULT_MAX_DEPTH = 32  # Stratum's deepest message (mining.configure) nests 3 levels

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_NEWLINE = orjson.OPT_APPEND_NEWLINE

# Bytes a JSON text may begin with (RFC 8259 whitespace included). Anything else on the
# first byte of a line is fatal at once: a TLS client waits for our answer, not a newline.
_JSON_START = frozenset(b'{["-0123456789tfn \t\r')
_TLS_HANDSHAKE = 0x16  # TLS record type "handshake": a ClientHello begins 16 03 0x


class CloseReason(enum.StrEnum):
    """Why a session ended; machine-readable, logged and counted."""

    LINE_TOO_LONG = "line_too_long"
    TLS_HANDSHAKE = "tls_handshake"
    HTTP_REQUEST = "http_request"
    NOT_JSON = "not_json"
    INVALID_JSON = "invalid_json"
    TOO_MANY_BAD_REQUESTS = "too_many_bad_requests"
    LOGIN_TIMEOUT = "login_timeout"  # for the driver: it owns the clock
    CLOSED_BY_SERVER = "closed_by_server"
    INTERNAL_ERROR = "internal_error"


def classify_bad_start(first: int) -> CloseReason:
    """Name what a line starting with a non-JSON byte most likely is."""
    if first == _TLS_HANDSHAKE:
        return CloseReason.TLS_HANDSHAKE
    if 0x41 <= first <= 0x5A:  # an upper-case token: GET, POST, PRI, CONNECT ...
        return CloseReason.HTTP_REQUEST
    return CloseReason.NOT_JSON


@dataclass(frozen=True, slots=True)
class TooDeep:
    """A line nested deeper than the framer's limit, left unparsed: a malformed request."""

    request_id: object  # the top-level "id" where it precedes the nesting, else None


# A JSON string, or an unterminated one to the end of the line: it never fails to match,
# so stripping strings stays linear whatever the quotes and backslashes.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+"?')
_NOT_BRACKETS = b"".join(bytes([b]) for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")  # for depth, an object is as deep as an array
_SCALAR = rb'(?:"(?:[^"\\]|\\.)*+"|[-+.\w]++)'
# The top-level "id", after any members with scalar values (how every client writes it).
_TOP_LEVEL_ID = re.compile(
    rb'\s*\{(?:\s*"(?:[^"\\]|\\.)*+"\s*:\s*' + _SCALAR + rb'\s*,)*?\s*"id"\s*:\s*(' + _SCALAR + rb')\s*[,}]'
)
_ID_TYPES = (int, float, str, type(None))


def nested_deeper_than(line: bytes, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in ``line`` (brackets inside
    strings do not count). False for unbalanced brackets: the parser refuses those anyway.

    At C speed, not a Python loop over bytes: ``limit + 1`` openers in a row are too deep,
    and each ``replace`` pass takes away the innermost pairs, one level; after ``limit``
    passes only a deeper line has brackets left.
    """
    if b'"' in line:
        line = _STRING.sub(b"", line)
    brackets = line.translate(_SQUARE, _NOT_BRACKETS)
    if 2 * brackets.count(b"[") != len(brackets):
        return False
    run = b"[" * (limit + 1)
    for _ in range(limit):
        if run in brackets:
            return True
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):  # no pair left to take: "][" , not JSON
            return False
        brackets = inner
    return bool(brackets)


def leading_id(line: bytes) -> object:
    """The request id of a line that will not be parsed, where it can be read cheaply; else None."""
    found = _TOP_LEVEL_ID.match(line)
    if found is None:
        return None
    try:
        request_id = _loads(found.group(1))
    except _JSONDecodeError:
        return None
    return request_id if type(request_id) in _ID_TYPES else None


def encode_line(message: object) -> bytes:
    """A message as one compact JSON line."""
    return orjson.dumps(message, option=_NEWLINE)


class LineFramer:
    """Splits a byte stream into JSON values, one per line; blank lines and CRLF tolerated.

    ``feed`` returns the values of every complete line before the first fatal one (a line
    nested deeper than ``max_depth`` as a ``TooDeep``); after that ``error`` holds
    ``(reason, detail)`` and every later ``feed`` returns nothing.
    """

    __slots__ = ("max_line_bytes", "max_depth", "error", "_partial")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes!r}")
        if max_depth < 1:
            raise ValueError(f"max_depth must be positive, got {max_depth!r}")
        self.max_line_bytes = max_line_bytes
        self.max_depth = max_depth
        self.error: tuple[CloseReason, str] | None = None
        self._partial = bytearray()

    def feed(self, data: bytes) -> list:
        if self.error is not None or not data:
            return []
        partial = self._partial
        if partial:
            cut = data.find(b"\n")
            if cut < 0:
                partial += data
                self._check_partial(False)
                return []
            partial += data[:cut]
            lines = data[cut + 1 :].split(b"\n")
            lines[0:0] = [bytes(partial)]
            partial.clear()
        else:
            lines = data.split(b"\n")
        tail = lines.pop()  # bytes after the last newline: b"" when data ends with one
        values = []
        limit = self.max_line_bytes
        max_depth = self.max_depth
        for line in lines:
            # Bad start bytes and overlong lines keep their fatal verdicts below.
            if line.count(b"[") + line.count(b"{") > max_depth and len(line) <= limit and line[0] in _JSON_START:
                if nested_deeper_than(line, max_depth):
                    values.append(TooDeep(leading_id(line)))
                    continue
            try:
                value = _loads(line)
            except _JSONDecodeError as exc:
                if len(line) <= limit and (not line or line.isspace()):
                    continue
                self._fail_line(line, str(exc))
                return values
            if len(line) > limit:  # only reachable when the line arrived whole
                self._fail_line(line, "")
                return values
            values.append(value)
        if tail:
            partial += tail
            self._check_partial(True)
        return values

    def _check_partial(self, starts_line: bool) -> None:
        partial = self._partial
        if starts_line and partial[0] not in _JSON_START:
            self._fail(classify_bad_start(partial[0]), f"line starts with byte 0x{partial[0]:02x}")
        elif len(partial) > self.max_line_bytes:
            self._fail(CloseReason.LINE_TOO_LONG, f"more than {self.max_line_bytes} bytes without a newline")

    def _fail_line(self, line: bytes, parse_error: str) -> None:
        # Same verdict as if the line had arrived a byte at a time: start byte, then length.
        if line[0] not in _JSON_START:
            self._fail(classify_bad_start(line[0]), f"line starts with byte 0x{line[0]:02x}")
        elif len(line) > self.max_line_bytes:
            self._fail(CloseReason.LINE_TOO_LONG, f"more than {self.max_line_bytes} bytes without a newline")
        else:
            self._fail(CloseReason.INVALID_JSON, parse_error)

    def _fail(self, reason: CloseReason, detail: str) -> None:
        self.error = (reason, detail)
        self._partial = bytearray()
