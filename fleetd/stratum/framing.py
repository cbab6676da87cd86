"""Newline-delimited JSON framing for Stratum v1.

The framer turns received bytes into parsed JSON values, one per line, and stops for good
at the first byte sequence that cannot be Stratum: a line over the length limit, a TLS
ClientHello, an HTTP request, binary, or a line that does not parse as JSON. Its verdict
never depends on how the bytes were split into chunks.
"""

from __future__ import annotations

import enum

import orjson

DEFAULT_MAX_LINE_BYTES = 16 * 1024

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


def encode_line(message: object) -> bytes:
    """A message as one compact JSON line."""
    return orjson.dumps(message, option=_NEWLINE)


class LineFramer:
    """Splits a byte stream into JSON values, one per line; blank lines and CRLF tolerated.

    ``feed`` returns the values of every complete line before the first fatal one; after
    that ``error`` holds ``(reason, detail)`` and every later ``feed`` returns nothing.
    """

    __slots__ = ("max_line_bytes", "error", "_partial")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes!r}")
        self.max_line_bytes = max_line_bytes
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
        for line in lines:
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
