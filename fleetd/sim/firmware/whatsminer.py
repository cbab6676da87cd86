"""MicroBT Whatsminer firmware: the btminer API (v2) on TCP 4028.

pyasic identifies a Whatsminer over 4028 alone: ``devdetails`` names the ``bitmicro``
driver, ``DEVDETAILS[0].Model`` gives the model (``M60S_VK30``), and ``get_version``'s
``fw_ver`` picks the API generation (a build dated after 2024-11 would make pyasic switch
to the v3 protocol on port 4433, so the firmware reported here is older). Figures come from
``summary`` (``MHS 1m``, ``Power`` in watts, fans, ``Elapsed``), per-board temperatures from
``devs``, faults from ``get_error_code``.

Control is the API's write access (btminer_auth.py has the token exchange and encryption),
with the admin password (``admin`` unless the rig's ``admin_password`` says otherwise):

* ``power_off`` (pyasic ``stop_mining``, sent with ``respbefore: "true"``): answers
  ``Code 131, "API command OK"`` (what pyasic checks), then the boards lose power. btminer
  and its API run on, ``status`` says ``mineroff: "true"``, and the pool connection stays up
  with nothing submitted; ``summary`` reports 0 hash rate and the control board's draw.
* ``power_on`` (``resume_mining``): the same answer; hashing returns after the warm-up.
* ``adjust_power_limit`` with ``power_limit`` in watts as a string (``set_power_limit``):
  refused (code 14) above the factory limit ``summary`` shows, otherwise held from then on
  (``summary["Power Limit"]``, which pyasic reads as ``wattage_limit``). pyasic documents that
  the miner restarts to apply it: hashing pauses for the warm-up, then runs at the limit.

The web UI on port 80 (an HTTPS redirect to LuCI) is not emulated: pyasic does not need it.
"""

from __future__ import annotations

import datetime
from typing import Any

from fleetd.sim.firmware.btminer_auth import DecodeError, TokenIssuer, decrypt, encrypt
from fleetd.sim.firmware.state import RigState

FW_VERSION = "20240627.16.Rel"  # must stay before 2024-11 (see above)
API_VERSION = "2.0.5"
CHIP_FREQUENCY = 600
HOT_CODE = 360  # 36x: "Hashboard high temperature error." (+ slot)
OK = 131  # "command OK": the Code of the get_* commands' answers and of a write carried out
COMMAND_OK_MSG = "API command OK"  # a write's Msg: what pyasic checks
TOKEN_OK = 134  # "get token message OK"
DEFAULT_PASSWORD = "admin"  # factory default, what pyasic sends unless told otherwise
FACTORY_LIMIT_SHARE = 1.1  # summary's "Power Limit" before anyone sets one, as a share of nameplate


def status(state: RigState, message: str, *, ok: bool = True, code: int = 0) -> list[dict[str, Any]]:
    when = int(state.clock.wall())
    return [{"STATUS": "S" if ok else "E", "When": when, "Code": code, "Msg": message, "Description": ""}]


def invalid(state: RigState, message: str) -> dict[str, Any]:
    return {"STATUS": status(state, message, ok=False, code=14)}


def _flat(state: RigState, code: int, message: Any, *, ok: bool = True) -> dict[str, Any]:
    # btminer's own shape, for the get_* commands, tokens and writes: a flat STATUS
    when = int(state.clock.wall())
    return {"STATUS": "S" if ok else "E", "When": when, "Code": code, "Msg": message, "Description": ""}


def _get_reply(state: RigState, message: dict[str, Any]) -> dict[str, Any]:
    return _flat(state, OK, message)


def api_handler(state: RigState):
    """The btminer API: the cgminer-style reports plus the read-only ``get_*`` commands."""

    def handle(command: str, _parameter: Any) -> dict[str, Any] | None:
        match command:
            case "summary":
                return {"STATUS": status(state, "Summary"), "SUMMARY": [_summary(state)]}
            case "devs" | "edevs":
                return {"STATUS": status(state, f"{state.model.hashboards} ASC(s)"), "DEVS": _devs(state)}
            case "devdetails":
                return {"STATUS": status(state, "Device Details"), "DEVDETAILS": _devdetails(state)}
            case "pools":
                return {"STATUS": status(state, "1 Pool(s)"), "POOLS": [_pool(state)]}
            case "version":
                return {"STATUS": status(state, "BTMiner versions"), "VERSION": [_version(state)]}
            case "get_version":
                return _get_reply(
                    state, {"api_ver": API_VERSION, "fw_ver": FW_VERSION, "platform": "H616", "chip": "K1"}
                )
            case "get_miner_info":
                return _get_reply(state, _miner_info(state))
            case "get_psu":
                return _get_reply(state, _psu(state))
            case "get_error_code":
                return _get_reply(state, {"error_code": _error_codes(state)})
            case "status":
                return _get_reply(state, _status(state))
        return None

    return handle


def _status(state: RigState) -> dict[str, str]:
    off_time = ""
    if state.asleep_since is not None:
        wall = state.clock.wall() - (state.clock.monotonic() - state.asleep_since)
        off_time = datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "mineroff": "true" if state.sleeping else "false",
        "mineroff_reason": "",
        "mineroff_time": off_time,
        "FirmwareVersion": f"'{FW_VERSION}'",
        "power_mode": "",
        "hash_percent": "",
    }


def factory_limit(state: RigState) -> int:
    return round(state.model.nominal_watts * FACTORY_LIMIT_SHARE)


def request_handler(state: RigState):
    """``get_token`` (it depends on who asks) and the encrypted write commands."""
    issuer = TokenIssuer(state.clock, salt=state.serial("admin")[:8])

    def password() -> str:
        return state.admin_password or DEFAULT_PASSWORD

    def handle(request: Any, client: str) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return None
        if request.get("command") == "get_token":
            token = issuer.issue(client, password())
            if token is None:
                return _flat(state, 136, "token over max times", ok=False)
            return _flat(state, TOKEN_OK, token)
        if "enc" not in request:
            return None
        key = issuer.key(password())
        try:
            command = decrypt(key, request.get("data"))
        except DecodeError as exc:  # a wrong password lands here: the rig cannot read the command
            return _flat(state, exc.code, str(exc), ok=False)
        if not issuer.valid(client, command.get("token")):
            return _flat(state, 135, "check token err", ok=False)
        return {"enc": encrypt(key, _write(state, command))}

    return handle


def _write(state: RigState, command: dict[str, Any]) -> dict[str, Any]:
    match command.get("cmd"):
        case "power_off":
            state.sleep()
        case "power_on":
            state.wake()
        case "adjust_power_limit":
            try:
                watts = int(str(command.get("power_limit")))
            except ValueError:
                watts = 0
            if not 0 < watts <= factory_limit(state):
                return _flat(state, 14, "invalid data", ok=False)
            state.limit_power(watts, warm_up=True)
        case _:
            return _flat(state, 14, "invalid cmd", ok=False)
    return _flat(state, OK, COMMAND_OK_MSG)


def _mhs(hashrate: float) -> float:
    return round(hashrate / 1e6, 2)


def _summary(state: RigState) -> dict[str, Any]:
    mhs = _mhs(state.hashrate())
    chips = state.chip_temps()
    fans = state.fan_rpms()
    return {
        "Elapsed": state.uptime(),
        "MHS av": mhs,
        "MHS 5s": mhs,
        "MHS 1m": mhs,
        "MHS 5m": mhs,
        "MHS 15m": mhs,
        "HS RT": mhs,
        "Accepted": state.accepted,
        "Rejected": state.rejected,
        "Total MH": round(state.hashrate() / 1e6 * state.uptime()),
        "Temperature": max(state.board_temps()),
        "freq_avg": CHIP_FREQUENCY,
        "Fan Speed In": fans[0],
        "Fan Speed Out": fans[-1],
        "Power": round(state.watts()),
        "Power Rate": round(state.watts() / (state.hashrate() / 1e12), 2) if state.hashrate() else 0,
        "Pool Rejected%": 0.0,
        "Pool Stale%": 0.0,
        "Last getwork": int(state.clock.wall()),
        "Uptime": state.uptime(),
        "Security Mode": 0,
        "Hash Stable": True,
        "Hash Stable Cost Seconds": 600,
        "Hash Deviation%": 0.0,
        "Target Freq": CHIP_FREQUENCY,
        "Target MHS": _mhs(state.model.nominal_hashrate),
        "Env Temp": state.ambient_c,
        "Power Mode": "Normal",
        "Factory GHS": round(state.model.nominal_hashrate / 1e9),
        "Power Limit": factory_limit(state) if state.power_limit_w is None else round(state.power_limit_w),
        "Chip Temp Min": min(chips),
        "Chip Temp Max": max(chips),
        "Chip Temp Avg": round(sum(chips) / len(chips), 1),
        "Debug": "",
        "Btminer Fast Boot": "disable",
        "Power Fanspeed": 3500,
    }


def _devs(state: RigState) -> list[dict[str, Any]]:
    boards, chips = state.board_temps(), state.chip_temps()
    per_board_ghs = round(state.model.nominal_hashrate / state.model.hashboards / 1e9)
    return [
        {
            "ASC": i,
            "Name": "SM",
            "ID": i,
            "Slot": i,
            "Enabled": "Y",
            "Status": "Alive",
            "Temperature": boards[i],
            "Chip Frequency": CHIP_FREQUENCY,
            "MHS av": _mhs(rate),
            "MHS 5s": _mhs(rate),
            "MHS 1m": _mhs(rate),
            "MHS 5m": _mhs(rate),
            "MHS 15m": _mhs(rate),
            "HS RT": _mhs(rate),
            "Factory GHS": per_board_ghs,
            "Upfreq Complete": 1,
            "Effective Chips": state.model.chips_per_board,
            "PCB SN": state.serial(f"board{i}"),
            "Chip Temp Min": round(chips[i] - 3, 1),
            "Chip Temp Max": round(chips[i] + 3, 1),
            "Chip Temp Avg": chips[i],
            "chip_vol_diff": 6,
        }
        for i, rate in enumerate(state.board_hashrates())
    ]


def _devdetails(state: RigState) -> list[dict[str, Any]]:
    return [
        {
            "DEVDETAILS": i,
            "Name": "SM",
            "ID": i,
            "Driver": "bitmicro",
            "Kernel": "",
            "Model": state.model.reported_model,
        }
        for i in range(state.model.hashboards)
    ]


def _version(state: RigState) -> dict[str, Any]:
    return {
        "BTMiner": "2.0.0",
        "API": API_VERSION,
        "Miner": FW_VERSION,
        "CompileTime": FW_VERSION,
        "Type": state.model.reported_model,
    }


def _pool(state: RigState) -> dict[str, Any]:
    return {
        "POOL": 0,
        "URL": state.pool_url,
        "Status": "Dead" if state.offline else "Alive",
        "Priority": 0,
        "Quota": 1,
        "Getworks": 0,
        "Accepted": state.accepted,
        "Rejected": state.rejected,
        "Works": 0,
        "Discarded": 0,
        "Stale": 0,
        "Get Failures": 0,
        "Remote Failures": 0,
        "User": state.worker,
        "Last Share Time": 0,
        "Diff1 Shares": 0,
        "Proxy Type": "",
        "Proxy": "",
        "Difficulty Accepted": 0.0,
        "Difficulty Rejected": 0.0,
        "Difficulty Stale": 0.0,
        "Last Share Difficulty": 0.0,
        "Work Difficulty": 0.0,
        "Has Stratum": 1,
        "Stratum Active": not state.offline,
        "Stratum URL": state.pool_host,
        "Stratum Difficulty": 0.0,
        "Best Share": 0,
        "Pool Rejected%": 0.0,
        "Pool Stale%": 0.0,
        "Bad Work": 0,
        "Current Block Height": 0,
        "Current Block Version": 0,
    }


def _miner_info(state: RigState) -> dict[str, Any]:
    return {
        "ip": "",
        "proto": "dhcp",
        "netmask": "255.255.255.0",
        "gateway": "",
        "dns": "",
        "hostname": "WhatsMiner",
        "mac": state.mac,
        "ledstat": "auto",
        "minersn": state.serial(),
        "powersn": state.serial("psu"),
    }


def _psu(state: RigState) -> dict[str, Any]:
    watts = state.watts()
    return {
        "name": "P221B",
        "hw_version": "V01.00",
        "sw_version": "V01.00.V01.03",
        "model": "P221B",
        "iin": round(watts / 230 * 1000),
        "vin": 23000,
        "pin": round(watts),
        "fan_speed": 3500,
        "version": "V01.00",
        "serial_no": state.serial("psu"),
        "vendor": "1",
        "temp0": round(state.ambient_c + 20, 1),
    }


def _error_codes(state: RigState) -> list[dict[str, str]]:
    # btminer lists each active fault as {"code": "time it was raised"}
    since = "1970-01-01 00:00:00"
    codes = [{str(HOT_CODE + board): since} for board in state.hot_boards()]
    codes += [{str(e.code): since} for e in state.errors]
    return codes
