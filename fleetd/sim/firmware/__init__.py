"""Emulated rig management APIs that pyasic, unmodified, identifies and reads.

Each emulated rig listens on its own loopback address (127.x.y.z) on the standard ports:
AxeOS (Bitaxe) over HTTP on 80, Whatsminer's btminer API on 4028, stock Antminer's bmminer
API on 4028 plus its CGI web UI on 80. All render one shared ``RigState``.
"""

from fleetd.sim.firmware.address import LoopbackAllocator, check_rig_address
from fleetd.sim.firmware.rig import EmulatedRig
from fleetd.sim.firmware.state import RigError, RigState

__all__ = ["EmulatedRig", "LoopbackAllocator", "RigError", "RigState", "check_rig_address"]
