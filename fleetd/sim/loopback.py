"""The simulator talks to loopback only: it must never be pointed at someone else's pool."""

from __future__ import annotations

import ipaddress
import socket


class NotLoopbackError(ValueError):
    pass


def require_loopback(host: str) -> str:
    """Return ``host`` if every address it names is loopback; NotLoopbackError otherwise."""
    try:
        addresses = {ipaddress.ip_address(host.strip("[]"))}
    except ValueError:
        try:  # a name such as "localhost": every address it resolves to must be loopback
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise NotLoopbackError(f"cannot resolve host {host!r}: {exc}") from None
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if not addresses or not all(address.is_loopback for address in addresses):
        raise NotLoopbackError(
            f"host {host!r} is not a loopback address; the simulator only connects to 127.0.0.1/::1"
        )
    return host
