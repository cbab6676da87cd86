"""Raw HTTP over loopback for the listener's tests: what a hostile client sends, read to the end."""

from __future__ import annotations

import asyncio
import base64

from yarl import URL

HANG_GUARD_S = 10.0  # far above every timeout the tests configure: reaching it means nothing closed


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (a reset counts as closed, with nothing more)."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def raw(base: str, request: bytes) -> bytes:
    """Send ``request`` as bytes on a new connection; the whole answer, once the server closes."""
    url = URL(base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(request)
    async with asyncio.timeout(HANG_GUARD_S):
        answer = await read_until_closed(reader)
    writer.close()
    return answer
