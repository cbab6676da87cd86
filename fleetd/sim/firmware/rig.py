"""One emulated rig on its own loopback address: its state and the listeners its firmware has.

    allocator = LoopbackAllocator()
    rig = await EmulatedRig.start_free(RigState(WHATSMINER_M60S, name="rig-001"), allocator)
    ...                                   # pyasic.get_miner(rig.host) sees a Whatsminer M60S
    rig.state.overheat()                  # faults go on the state, which the Stratum side shares
    await rig.stop()

``stop()`` then ``start()`` is a firmware whose API daemon died and came back (the ports
refuse meanwhile); ``state.go_offline()`` is a rig that stops answering altogether.
"""

from __future__ import annotations

import errno
from typing import Protocol

from fleetd.rigs.models import FirmwareFamily
from fleetd.sim.firmware import antminer, axeos, whatsminer
from fleetd.sim.firmware.address import LoopbackAllocator, check_rig_address
from fleetd.sim.firmware.state import RigState
from fleetd.sim.firmware.transport import CgminerApiServer, HttpServer

HTTP_PORT = 80
API_PORT = 4028
BIND_ATTEMPTS = 64  # addresses skipped because something else already listens there


class _Listener(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class EmulatedRig:
    def __init__(self, state: RigState, host: str, *, http_port: int = HTTP_PORT, api_port: int = API_PORT) -> None:
        self.state = state
        self.host = check_rig_address(host)
        self.http_port, self.api_port = http_port, api_port
        self._listeners = self._make_listeners()
        self._running = False

    def _make_listeners(self) -> list[_Listener]:
        state, offline = self.state, lambda: self.state.offline
        match state.model.firmware:
            case FirmwareFamily.AXEOS:
                return [HttpServer(self.host, self.http_port, lambda: axeos.make_app(state), is_offline=offline)]
            case FirmwareFamily.WHATSMINER:
                return [
                    CgminerApiServer(
                        self.host,
                        self.api_port,
                        whatsminer.api_handler(state),
                        is_offline=offline,
                        invalid=lambda message: whatsminer.invalid(state, message),
                        request_handler=whatsminer.request_handler(state),
                    )
                ]
            case FirmwareFamily.ANTMINER_STOCK:
                return [
                    CgminerApiServer(
                        self.host,
                        self.api_port,
                        antminer.api_handler(state),
                        is_offline=offline,
                        invalid=lambda message: antminer.invalid(state, message),
                    ),
                    HttpServer(self.host, self.http_port, lambda: antminer.make_app(state), is_offline=offline),
                ]
        raise ValueError(f"no emulation for firmware {state.model.firmware}")

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        if self._running:
            return
        started: list[_Listener] = []
        try:
            for listener in self._listeners:
                await listener.start()
                started.append(listener)
        except BaseException:
            for listener in reversed(started):
                await listener.stop()
            raise
        self._running = True

    async def stop(self) -> None:
        self._running = False
        for listener in reversed(self._listeners):
            await listener.stop()

    async def __aenter__(self) -> EmulatedRig:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @classmethod
    async def start_free(cls, state: RigState, allocator: LoopbackAllocator, **ports: int) -> EmulatedRig:
        """Start on the allocator's next address whose ports are free, skipping taken ones."""
        for _ in range(BIND_ATTEMPTS):
            rig = cls(state, allocator.next(), **ports)
            try:
                await rig.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return rig
        raise OSError(errno.EADDRINUSE, f"no free rig address in {BIND_ATTEMPTS} tries from {allocator.network}")

    def __repr__(self) -> str:
        return f"<EmulatedRig {self.state.model.name} {self.state.name!r} at {self.host}>"
