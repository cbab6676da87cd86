"""Loopback addresses for emulated rigs: one per rig, as on a site where each rig has its IP.

Linux answers for all of 127.0.0.0/8 on the loopback interface, so each emulated rig can
listen on the standard ports (80, 4028) of its own address. Anything outside 127.0.0.0/8
is refused: the simulator must never listen on, or be pointed at, a real network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from fleetd.sim.loopback import NotLoopbackError

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
DEFAULT_RIG_NETWORK = "127.1.0.0/16"  # clear of 127.0.0.1, where the pool and daemon listen


def check_rig_address(host: str) -> str:
    """Return ``host`` if it is an IPv4 address in 127.0.0.0/8; NotLoopbackError otherwise."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise NotLoopbackError(
            f"rig address {host!r} is not an IPv4 address; emulated rigs take addresses in {LOOPBACK}"
        ) from None
    if address not in LOOPBACK:
        raise NotLoopbackError(f"rig address {host} is not loopback; emulated rigs only listen in {LOOPBACK}")
    return host


class LoopbackAllocator:
    """Hands out rig addresses in order: 127.1.0.1, 127.1.0.2, … (x.x.x.0 and x.x.x.255 skipped)."""

    def __init__(self, network: str = DEFAULT_RIG_NETWORK) -> None:
        try:
            self.network = ipaddress.IPv4Network(network)
        except ValueError as exc:
            raise NotLoopbackError(f"rig network {network!r} is not an IPv4 network: {exc}") from None
        if not self.network.subnet_of(LOOPBACK):
            raise NotLoopbackError(f"rig network {network} is not inside {LOOPBACK}")
        self._hosts = self._usable()

    def _usable(self) -> Iterator[str]:
        for address in self.network:
            last = int(address) & 0xFF
            if last not in (0, 255):  # they look like network/broadcast addresses to people
                yield str(address)

    def next(self) -> str:
        try:
            return next(self._hosts)
        except StopIteration:
            raise RuntimeError(f"rig network {self.network} has no addresses left") from None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._hosts)
