"""Stock Bitmain Antminer firmware (S19/S21 generation): bmminer's API on 4028 and the CGI web UI on 80.

pyasic identifies a stock Antminer by the web server's digest challenge
(``realm="antMiner Configuration"``) or by ``version`` over 4028 naming an Antminer, then
reads the model from ``/cgi-bin/get_system_info.cgi`` (``minertype``) or
``VERSION[0].Type``. Figures come from both sides: hash rate from the API's ``summary``
(``GHS 5s``), fans and uptime from the API's ``stats``, per-board hash rate, chip and PCB
temperatures from the web ``stats.cgi``, errors from the web ``summary.cgi``.

Stock firmware reports no power draw anywhere; neither does this emulation.

Control is the web UI's ``POST /cgi-bin/set_miner_conf.cgi`` (digest auth, ``root``/``root``
unless the rig's ``admin_password`` says otherwise) with the whole configuration as JSON;
its ``miner-mode`` picks the work mode: 0 normal, 1 sleep, 3 low power. pyasic's
``stop_mining`` / ``resume_mining`` read ``get_miner_conf.cgi``, set ``miner-mode`` 1 / 0 and
post it back; ``send_config`` with ``MiningModeConfig.low()`` posts 3. The answer is
``{"stats": "success", "code": "M000", "msg": "OK!"}``, or ``M001 "Illegal request!"`` for a
body that is not a configuration. ``get_miner_conf.cgi`` then reports the mode as a string in
``bitmain-work-mode`` (what pyasic's ``is_mining`` and ``get_config`` read) and ``stats.cgi``
as a number in ``miner-mode``. A sleeping rig keeps bmminer, its API and its pool connection,
and hashes nothing; low power holds it to ``LOW_POWER_SHARE`` of nameplate. Pools in the
posted configuration are accepted and not applied (the simulated rig mines where it was
started). Real firmware answers a mode change after up to ~20 s while bmminer restarts;
this one answers at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from aiohttp import web

from fleetd.sim.firmware.state import RigState

REALM = "antMiner Configuration"
WEB_USER, WEB_PASSWORD = "root", "root"  # factory default, what pyasic tries
NORMAL, SLEEP, LOW_POWER = 0, 1, 3  # miner-mode / bitmain-work-mode
LOW_POWER_SHARE = 0.75  # low power mode: the draw as a share of nameplate
BMMINER_VERSION = "1.0.0"
API_VERSION = "3.1"
MINER_VERSION = "uart_trans.1.3"
COMPILE_TIME = MappingProxyType(  # firmware build dates as these models report them
    {
        "Antminer S19 XP": "Thu Jun 15 15:19:45 CST 2023",
        "Antminer S21": "Fri Nov 17 17:37:49 CST 2023",
        "Antminer S21 XP": "Wed Sep 11 10:25:13 CST 2024",
    }
)
DEFAULT_COMPILE_TIME = "Fri Nov 17 17:37:49 CST 2023"
CHIP_SENSORS = 4  # temp_chip / temp_pcb / temp_pic carry four sensors per chain
HOT_CODE = 4  # summary.cgi status code for a temperature fault


def _compile_time(state: RigState) -> str:
    return COMPILE_TIME.get(state.model.reported_model, DEFAULT_COMPILE_TIME)


def _description() -> str:
    return f"bmminer {BMMINER_VERSION}"


# -- the cgminer API on 4028 ------------------------------------------------------------


def status(state: RigState, code: int, message: str, *, ok: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "STATUS": "S" if ok else "E",
            "When": int(state.clock.wall()),
            "Code": code,
            "Msg": message,
            "Description": _description(),
        }
    ]


def invalid(state: RigState, message: str) -> dict[str, Any]:
    return {"STATUS": status(state, 14, message, ok=False)}


def api_handler(state: RigState):
    """The bmminer API: ``version``, ``summary``, ``stats``, ``pools``, ``devdetails``."""

    def handle(command: str, _parameter: Any) -> dict[str, Any] | None:
        match command:
            case "version":
                return {"STATUS": status(state, 22, "BMMiner versions"), "VERSION": [_version(state)]}
            case "summary":
                return {"STATUS": status(state, 11, "Summary"), "SUMMARY": [_summary(state)]}
            case "stats":
                return {"STATUS": status(state, 70, "BMMiner stats"), "STATS": [_version(state), _stats(state)]}
            case "pools":
                return {"STATUS": status(state, 7, "1 Pool(s)"), "POOLS": [_pool(state)]}
            case "devdetails":
                return {"STATUS": status(state, 69, "Device Details"), "DEVDETAILS": _devdetails(state)}
        return None

    return handle


def _version(state: RigState) -> dict[str, Any]:
    return {
        "BMMiner": BMMINER_VERSION,
        "API": API_VERSION,
        "Miner": MINER_VERSION,
        "CompileTime": _compile_time(state),
        "Type": state.model.reported_model,
    }


def _ghs(hashrate: float) -> float:
    return round(hashrate / 1e9, 2)


def _summary(state: RigState) -> dict[str, Any]:
    ghs = _ghs(state.hashrate())
    return {
        "Elapsed": state.uptime(),
        "GHS 5s": ghs,
        "GHS av": ghs,
        "GHS 30m": ghs,
        "Found Blocks": 0,
        "Getworks": 0,
        "Accepted": state.accepted,
        "Rejected": state.rejected,
        "Hardware Errors": 0,
        "Utility": 0.0,
        "Discarded": 0,
        "Stale": 0,
        "Get Failures": 0,
        "Local Work": 0,
        "Remote Failures": 0,
        "Network Blocks": 0,
        "Total MH": round(state.hashrate() / 1e6 * state.uptime()),
        "Device Hardware%": 0.0,
        "Device Rejected%": 0.0,
        "Pool Rejected%": 0.0,
        "Pool Stale%": 0.0,
        "Last getwork": int(state.clock.wall()),
    }


def _stats(state: RigState) -> dict[str, Any]:
    model = state.model
    ghs = _ghs(state.hashrate())
    stats: dict[str, Any] = {
        "STATS": 0,
        "ID": "BC50",
        "Elapsed": state.uptime(),
        "Calls": 0,
        "Wait": 0.0,
        "Max": 0.0,
        "Min": 99999999.0,
        "GHS 5s": ghs,
        "GHS av": ghs,
        "rate_30m": ghs,
        "Mode": 2,
        "miner_count": model.hashboards,
        "frequency": 490,
        "fan_num": model.fans,
    }
    for i, rpm in enumerate(state.fan_rpms(), start=1):
        stats[f"fan{i}"] = rpm
    stats["temp_num"] = model.hashboards
    boards, chips = state.board_temps(), state.chip_temps()
    for i in range(model.hashboards):
        stats[f"temp{i + 1}"] = round(boards[i])
        stats[f"temp2_{i + 1}"] = round(chips[i])
    stats.update(
        total_rateideal=_ghs(model.nominal_hashrate),
        rate_unit="GH",
        total_freqavg=490,
        total_acn=model.chips,
        total_rate=ghs,
    )
    for i, rate in enumerate(state.board_hashrates(), start=1):
        stats[f"chain_rateideal{i}"] = _ghs(model.nominal_hashrate / model.hashboards)
        stats[f"chain_acn{i}"] = model.chips_per_board
        stats[f"chain_acs{i}"] = _asic_status(model.chips_per_board)
        stats[f"chain_rate{i}"] = f"{_ghs(rate):.2f}"  # bmminer prints chain rates as strings
        stats[f"chain_hw{i}"] = 0
    return stats


def _asic_status(chips: int) -> str:
    groups = [" " + "o" * min(8, chips - start) for start in range(0, chips, 8)]
    return "".join(groups)


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
        "Discarded": 0,
        "Stale": 0,
        "Get Failures": 0,
        "Remote Failures": 0,
        "User": state.worker,
        "Last Share Time": 0,
        "Diff": "",
        "Diff1 Shares": 0,
        "Proxy Type": "",
        "Proxy": "",
        "Difficulty Accepted": 0.0,
        "Difficulty Rejected": 0.0,
        "Difficulty Stale": 0.0,
        "Last Share Difficulty": 0.0,
        "Has Stratum": True,
        "Stratum Active": not state.offline,
        "Stratum URL": state.pool_host,
        "Has GBT": False,
        "Best Share": 0,
        "Pool Rejected%": 0.0,
        "Pool Stale%": 0.0,
    }


def _devdetails(state: RigState) -> list[dict[str, Any]]:
    return [
        {"DEVDETAILS": i, "Name": "BC50", "ID": i, "Driver": "bitmain", "Kernel": "", "Model": "", "Device Path": ""}
        for i in range(state.model.hashboards)
    ]


# -- the CGI web interface on 80 --------------------------------------------------------


def system_info(state: RigState) -> dict[str, Any]:
    return {
        "minertype": state.model.reported_model,
        "nettype": "DHCP",
        "netdevice": "eth0",
        "macaddr": state.mac,
        "hostname": "Antminer",
        "ipaddress": "",
        "netmask": "255.255.255.0",
        "gateway": "",
        "dnsservers": "",
        "system_mode": "GNU/Linux",
        "system_kernel_version": "Linux 4.9.113 #1 SMP PREEMPT",
        "system_filesystem_version": _compile_time(state),
        "firmware_type": "Release",
        "serinum": state.serial(),
    }


def miner_conf(state: RigState) -> dict[str, Any]:
    return {
        "pools": [{"url": state.pool_url, "user": state.worker, "pass": "x"}],
        "api-listen": True,
        "api-network": True,
        "api-groups": "A:stats:pools:devs:summary:version",
        "api-allow": "A:0/0,W:*",
        "bitmain-fan-ctrl": False,
        "bitmain-fan-pwm": "100",
        "bitmain-use-vil": True,
        "bitmain-freq": "",
        "bitmain-voltage": "",
        "bitmain-ccdelay": "0",
        "bitmain-pwth": "0",
        "bitmain-work-mode": str(work_mode(state)),
        "freq-level": "100",
    }


def work_mode(state: RigState) -> int:
    if state.sleeping:
        return SLEEP
    return NORMAL if state.power_limit_w is None else LOW_POWER


def set_miner_conf(state: RigState, body: bytes) -> dict[str, Any]:
    """Apply a posted configuration's ``miner-mode``; the CGI's answer."""
    try:
        conf = json.loads(body)
        mode = int(conf.get("miner-mode", work_mode(state)))  # bool is not a mode, nor is "x"
        if isinstance(conf.get("miner-mode"), bool) or mode not in (NORMAL, SLEEP, LOW_POWER):
            raise ValueError(mode)
    except (ValueError, TypeError, AttributeError):
        return {"stats": "error", "code": "M001", "msg": "Illegal request!"}
    if mode == work_mode(state):
        pass  # bmminer keeps running as it is
    elif mode == SLEEP:
        state.sleep()
    else:  # bmminer restarts in the new mode: the warm-up follows
        state.limit_power(None if mode == NORMAL else LOW_POWER_SHARE * state.model.nominal_watts, warm_up=True)
        state.wake()
    return {"stats": "success", "code": "M000", "msg": "OK!"}


def _web_status(state: RigState, message: str) -> dict[str, Any]:
    return {"STATUS": "S", "when": int(state.clock.wall()), "Msg": message, "api_version": "1.0.0"}


def _web_info(state: RigState) -> dict[str, Any]:
    return {"miner_version": MINER_VERSION, "CompileTime": _compile_time(state), "type": state.model.reported_model}


def web_summary(state: RigState) -> dict[str, Any]:
    ghs = _ghs(state.hashrate())
    hot = state.hot_boards()
    checks = [
        {"type": "rate", "status": "s", "code": 0, "msg": ""},
        {"type": "network", "status": "s", "code": 0, "msg": ""},
        {"type": "fans", "status": "s", "code": 0, "msg": ""},
        {
            "type": "temp",
            "status": "e" if hot else "s",
            "code": HOT_CODE if hot else 0,
            "msg": f"chain {', '.join(map(str, hot))} temperature is too high" if hot else "",
        },
    ]
    checks += [{"type": "error", "status": "e", "code": e.code, "msg": e.message} for e in state.errors]
    return {
        "STATUS": _web_status(state, "summary"),
        "INFO": _web_info(state),
        "SUMMARY": [
            {
                "elapsed": state.uptime(),
                "rate_5s": ghs,
                "rate_30m": ghs,
                "rate_avg": ghs,
                "rate_ideal": _ghs(state.model.nominal_hashrate),
                "rate_unit": "GH/s",
                "hw_all": 0,
                "bestshare": 0,
                "status": checks,
            }
        ],
    }


def web_stats(state: RigState) -> dict[str, Any]:
    model = state.model
    ghs = _ghs(state.hashrate())
    boards, chips = state.board_temps(), state.chip_temps()
    chains = []
    for i, rate in enumerate(state.board_hashrates()):
        pcb = [round(boards[i]) + d for d in (-2, -1, 1, 2)]
        chip = [round(chips[i]) + d for d in (-2, -1, 1, 2)]
        chains.append(
            {
                "index": i,
                "freq_avg": 490,
                "rate_ideal": _ghs(model.nominal_hashrate / model.hashboards),
                "rate_real": _ghs(rate),
                "asic_num": model.chips_per_board,
                "asic": _asic_status(model.chips_per_board),
                "temp_pic": pcb,
                "temp_pcb": pcb,
                "temp_chip": chip,
                "hw": 0,
                "eeprom_loaded": True,
                "sn": state.serial(f"chain{i}"),
                "hwp": 0.0,
                "tpl": [],
            }
        )
    return {
        "STATUS": _web_status(state, "stats"),
        "INFO": _web_info(state),
        "STATS": [
            {
                "elapsed": state.uptime(),
                "rate_5s": ghs,
                "rate_30m": ghs,
                "rate_avg": ghs,
                "rate_ideal": _ghs(model.nominal_hashrate),
                "rate_unit": "GH/s",
                "chain_num": model.hashboards,
                "fan_num": model.fans,
                "fan": state.fan_rpms(),
                "hwp_total": 0.0,
                "miner-mode": work_mode(state),
                "freq-level": 100,
                "chain": chains,
            }
        ],
    }


_DIGEST_FIELD = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_auth(realm: str, user: str, password: Callable[[], str]):
    """RFC 7616 digest authentication (MD5, qop=auth) on every path, as the Antminer's lighttpd does."""
    nonce = secrets.token_hex(16)
    challenge = f'Digest realm="{realm}", nonce="{nonce}", qop="auth", algorithm="MD5"'

    def authorised(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = {m[1]: m[2] or m[3] for m in _DIGEST_FIELD.finditer(header[7:])}
        if fields.get("username") != user or fields.get("nonce") != nonce or fields.get("uri") != request.raw_path:
            return False
        ha1 = _md5(f"{user}:{realm}:{password()}")
        ha2 = _md5(f"{request.method}:{fields['uri']}")
        nc, cnonce, qop = fields.get("nc", ""), fields.get("cnonce", ""), fields.get("qop", "")
        expected = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
        return hmac.compare_digest(expected, fields.get("response", ""))

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not authorised(request):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": challenge}, text="401 - Unauthorized")
        return await handler(request)

    return middleware


def make_app(state: RigState) -> web.Application:
    def json_route(render):
        async def route(_: web.Request) -> web.Response:
            return web.json_response(render(state))

        return route

    async def index(_: web.Request) -> web.Response:
        page = "<html><head><title>Antminer</title></head><body></body></html>"
        return web.Response(text=page, content_type="text/html")

    async def set_conf(request: web.Request) -> web.Response:
        return web.json_response(set_miner_conf(state, await request.read()))

    app = web.Application(middlewares=[digest_auth(REALM, WEB_USER, lambda: state.admin_password or WEB_PASSWORD)])
    app.router.add_get("/", index)
    app.router.add_post("/cgi-bin/set_miner_conf.cgi", set_conf)
    for name, render in {
        "get_system_info": system_info,
        "get_miner_conf": miner_conf,
        "summary": web_summary,
        "stats": web_stats,
        "get_blink_status": lambda _state: {"blink": False},
        "get_network_info": lambda s: {
            "nettype": "DHCP",
            "netdevice": "eth0",
            "macaddr": s.mac,
            "hostname": "Antminer",
            "conf_nettype": "DHCP",
            "conf_hostname": "Antminer",
            "conf_ipaddress": "",
            "conf_netmask": "",
            "conf_gateway": "",
            "conf_dnsservers": "",
        },
    }.items():
        app.router.add_get(f"/cgi-bin/{name}.cgi", json_route(render))
    return app
