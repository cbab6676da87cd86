"""The HTTP listener on a hostile network: TLS and basic auth from an exporter web config,
slow clients closed, malformed requests answered and logged in JSON, any rig name fetchable.

Every test serves fleetd's app the way ``fleetd serve`` does (``app.start_http``) on loopback
and talks to it over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import shutil
import ssl
import subprocess
import time
import urllib.parse

import aiohttp
import bcrypt
import pytest
from yarl import URL

from fleetd import app as fleetd_app
from fleetd import log as logging
from fleetd.config import ConfigError, HttpConfig, parse
from fleetd.sources.demo import DemoChain
from fleetd.telemetry.api import RIGS_KEY
from fleetd.telemetry.listener import AUTH_KEY, GUARD_KEY, HttpGuard, HttpLimits
from http_support import HANG_GUARD_S, basic, raw, read_until_closed
from server_support import make_config
from tls_support import self_signed

USER, PASSWORD = "prometheus", "s3cret pass:word"


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()  # cheap rounds: a test


def _self_signed(tmp_path):
    return self_signed(tmp_path)[0]


@contextlib.asynccontextmanager
async def serve(tmp_path, web_yaml: str | None = None, limits: HttpLimits | None = None, **http):
    """fleetd's app served as ``fleetd serve`` serves it (``limits``: its HTTP guard's instead
    of the defaults); yields (base URL, app)."""
    config = make_config()
    if web_yaml is not None:
        (tmp_path / "web.yml").write_text(web_yaml)
        http["web_config_file"] = str(tmp_path / "web.yml")
    config = dataclasses.replace(config, http=dataclasses.replace(config.http, **http))
    app = fleetd_app.build_app(config)
    if limits is not None:
        app[GUARD_KEY] = HttpGuard(limits)
    runner = await fleetd_app.start_http(app)
    host, port = runner.addresses[0][:2]
    scheme = "https" if web_yaml and "tls_server_config" in web_yaml else "http"
    try:
        yield f"{scheme}://{host}:{port}", app
    finally:
        await runner.cleanup()


async def _get(base: str, path: str, headers=None, ssl_context=None) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(base + path, headers=headers, ssl=ssl_context) as response:
            return response.status, dict(response.headers), await response.text()


# --- the web config file --------------------------------------------------------------------


@pytest.mark.parametrize(
    "web_yaml, named",
    [
        ("basic_auth_users:\n  admin: hunter2\n", "basic_auth_users.admin: not a bcrypt hash"),
        ("basic_auth_user:\n  admin: x\n", "basic_auth_user: unknown key"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "tls_server_config.cert_file:"),
        ("tls_server_config:\n  cert_file: fleetd.crt\n  key_file: fleetd.key\n  ciphers: x\n", "tls_server_config.ciphers: unknown key"),
        ("tls_server_config:\n  cert_file: fleetd.crt\n", "tls_server_config.key_file: missing"),
        ("tls_server_config:\n  cert_file: fleetd.crt\n  key_file: fleetd.key\n  client_auth_type: RequireAnyClientCert\n",
         "tls_server_config.client_auth_type: RequireAnyClientCert is not supported"),
        ("tls_server_config:\n  cert_file: fleetd.crt\n  key_file: fleetd.crt\n", "tls_server_config: cannot load cert_file"),
        ("http_server_config:\n  http2: false\n", "http_server_config: HTTP/2"),
        ("basic_auth_users: [a, b\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_web_config_mistakes_are_config_errors_naming_the_key(tmp_path, web_yaml, named):
    _self_signed(tmp_path)
    (tmp_path / "web.yml").write_text(web_yaml)
    with pytest.raises(ConfigError) as caught:
        parse(f'[http]\nweb_config_file = "{tmp_path / "web.yml"}"\n')
    message = str(caught.value)
    assert "[http] web_config_file" in message and named in message, message
    assert "hunter2" not in message  # a password written where its hash belongs is never echoed


def test_an_unreadable_web_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"\[http\] web_config_file = .*cannot read .*missing\.yml"):
        parse(f'[http]\nweb_config_file = "{tmp_path / "missing.yml"}"\n')


def test_http_timeouts_and_limits_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"\[http\] request_timeout_seconds = 0: must be between"):
        parse("[http]\nrequest_timeout_seconds = 0\n")
    config = parse("[http]\nrequest_timeout_seconds = 3\nmax_header_bytes = 4096\ntls_handshake_timeout_seconds = 2\n")
    assert (config.http.request_timeout_seconds, config.http.max_header_bytes) == (3.0, 4096)


# --- basic auth -----------------------------------------------------------------------------


async def test_basic_auth_guards_metrics_and_the_api_but_not_healthz(tmp_path):
    web_yaml = f"basic_auth_users:\n  {USER}: {_hash(PASSWORD)}\n"
    unthrottled = HttpLimits(max_auth_failures=1000)  # 8 wrong logins here: the throttle is tested on its own
    async with serve(tmp_path, web_yaml, unthrottled) as (base, app):
        for path in ("/metrics", "/api/v1/summary", "/api/v1/rigs/x", "/not/a/path"):
            for headers in (None, basic(USER, "wrong"), basic("nobody", PASSWORD), {"Authorization": "Basic !!"}):
                status, response_headers, body = await _get(base, path, headers)
                assert status == 401, (path, headers)
                assert response_headers["WWW-Authenticate"].startswith("Basic realm=")
                assert response_headers["Content-Type"].startswith("application/json")
                assert json.loads(body) == {"error": "Unauthorized", "status": 401, "path": path}
        status, _, _ = await _get(base, "/healthz")
        assert status == 200  # open: probes carry no password
        checks_before = app[AUTH_KEY].bcrypt_checks
        for _ in range(5):
            status, _, body = await _get(base, "/metrics", basic(USER, PASSWORD))
            assert status == 200 and "fleetd_" in body
        status, _, body = await _get(base, "/api/v1/summary", basic(USER, PASSWORD))
        assert status == 200 and "rigs" in json.loads(body)
        # bcrypt ran for the first right password only; the others were remembered
        assert app[AUTH_KEY].bcrypt_checks == checks_before + 1


async def test_without_a_web_config_nothing_asks_for_a_password(tmp_path):
    async with serve(tmp_path) as (base, _):
        assert (await _get(base, "/metrics"))[0] == 200


# --- TLS ------------------------------------------------------------------------------------


async def test_tls_with_basic_auth_over_a_real_tls_client(tmp_path):
    cert = _self_signed(tmp_path)
    web_yaml = (
        "tls_server_config:\n  cert_file: fleetd.crt\n  key_file: fleetd.key\n"
        f"basic_auth_users:\n  {USER}: '{_hash(PASSWORD)}'\n"
    )
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with serve(tmp_path, web_yaml) as (base, _):
        assert base.startswith("https://")
        status, _, body = await _get(base, "/api/v1/summary", basic(USER, PASSWORD), client_tls)
        assert status == 200 and "rigs" in json.loads(body)
        assert (await _get(base, "/metrics", None, client_tls))[0] == 401
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # not trusted without the CA
            await _get(base, "/healthz", None, ssl.create_default_context())
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port
            await _get(base.replace("https", "http"), "/healthz")
        curl = shutil.which("curl")  # an independent TLS client, as an operator would check it
        assert curl, "curl is one of the packages deploy/quickstart.sh installs"
        result = await asyncio.to_thread(
            subprocess.run,
            [curl, "-sS", "--cacert", str(cert), "-u", f"{USER}:{PASSWORD}", f"{base}/api/v1/summary"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "rigs_up" in json.loads(result.stdout)


async def test_a_tls_client_that_never_finishes_its_handshake_is_closed(tmp_path):
    _self_signed(tmp_path)
    web_yaml = "tls_server_config:\n  cert_file: fleetd.crt\n  key_file: fleetd.key\n"
    async with serve(tmp_path, web_yaml, tls_handshake_timeout_seconds=0.5) as (base, _):
        url = URL(base)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        started = time.monotonic()
        async with asyncio.timeout(HANG_GUARD_S):
            assert await read_until_closed(reader) == b""
        assert time.monotonic() - started < HANG_GUARD_S / 2
        writer.close()


# --- slow clients ---------------------------------------------------------------------------


async def test_slow_drip_and_idle_connections_are_closed(tmp_path):
    async with serve(tmp_path, request_timeout_seconds=0.5) as (base, _):
        url = URL(base)
        idle_reader, idle_writer = await asyncio.open_connection(url.host, url.port)  # never sends a byte
        drip_reader, drip_writer = await asyncio.open_connection(url.host, url.port)
        started = time.monotonic()

        async def drip():  # a header that never ends, one byte every 50 ms
            drip_writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            with contextlib.suppress(ConnectionError):
                while not drip_writer.is_closing():
                    drip_writer.write(b"a")
                    await drip_writer.drain()
                    await asyncio.sleep(0.05)

        dripping = asyncio.create_task(drip())
        async with asyncio.timeout(HANG_GUARD_S):
            assert await read_until_closed(drip_reader) == b""
            assert await read_until_closed(idle_reader) == b""
        closed_after = time.monotonic() - started
        dripping.cancel()
        assert 0.4 < closed_after < 3.0, closed_after
        # a kept-alive connection that asks nothing more is closed too, after its answer
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(HANG_GUARD_S):
            answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 200")
        for w in (idle_writer, drip_writer, writer):
            w.close()


# --- malformed requests ---------------------------------------------------------------------

HOSTILE = {
    "nul_in_header": b"GET /api/v1/summary HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
    "huge_header": b"GET /api/v1/summary HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    "bad_method": b"G\x01T /api/v1/summary HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"GET /api/v1/summary HTTP/9\x00\r\nHost: x\r\n\r\n",
    "too_many_headers": b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(200)) + b"\r\n",
}


async def test_malformed_requests_get_a_json_400_and_one_json_log_line_each(tmp_path, capfd):
    lines = io.StringIO()
    logging.configure("info", "json", stream=lines)
    try:
        async with serve(tmp_path) as (base, _):
            capfd.readouterr()
            lines.seek(0), lines.truncate()
            for name, request in HOSTILE.items():
                answer = await raw(base, request)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.split(b" ")[1] == b"400", (name, answer[:200])
                assert b"Content-Type: application/json" in head, (name, head)
                assert json.loads(body)["status"] == 400
            logged = [json.loads(line) for line in lines.getvalue().splitlines()]
            err = capfd.readouterr().err
    finally:
        logging.configure("info", "json")
    assert "Traceback" not in err and "Error handling request" not in err, err
    bad = [entry for entry in logged if entry["event"] == "http_bad_request"]
    assert len(bad) == len(HOSTILE), logged
    assert all(entry["peer"] == "127.0.0.1" and entry["status"] == 400 and "\n" not in entry["error"] for entry in bad)
    assert not any("exception" in entry for entry in logged)


async def test_app_level_errors_are_json(tmp_path):
    async with serve(tmp_path) as (base, _):
        status, headers, body = await _get(base, "/api/v1/economics?curtail_kw=lots")
        assert status == 400 and headers["Content-Type"].startswith("application/json")
        assert json.loads(body)["status"] == 400


# --- the rig API ----------------------------------------------------------------------------

NAMES = ["acct.{rig}", "acct.a}b", "acct.{", "acct/rack 3/slot 1", "acct.50%", "acct.%7B", "acct.with space",
         "acct.ünïcødé.矿机", "acct.a+b?c#d"]  # fmt: skip


async def test_any_rig_name_can_be_fetched(tmp_path):
    async with serve(tmp_path) as (base, app):
        rigs = app[RIGS_KEY]
        for n, name in enumerate(NAMES):
            rigs.add_inventory(name, f"127.2.0.{n + 1}", "Test Rig", 100.0, 3000.0, time.time())
        for name in NAMES:
            path = "/api/v1/rigs/" + urllib.parse.quote(name, safe="")
            async with aiohttp.ClientSession() as session:
                async with session.get(URL(base + path, encoded=True)) as response:
                    assert response.status == 200, (name, await response.text())
                    assert (await response.json())["rig"] == name
        status, _, body = await _get(base, "/api/v1/rigs/" + urllib.parse.quote("acct.{nope}", safe=""))
        assert status == 404 and json.loads(body)["error"] == "no rig named 'acct.{nope}'"


# --- secrets --------------------------------------------------------------------------------


class _LeakySource(DemoChain):
    """A source whose health names a URL with its credentials, as a careless source might."""

    def health(self):
        health = super().health()
        return dataclasses.replace(health, detail="pool stratum+tcp://farm1:hunter2@pool.example:3333 active")


async def test_the_api_never_prints_a_url_password(tmp_path):
    config = make_config()
    app = fleetd_app.build_app(config, _LeakySource(network_difficulty=1e9))
    runner = await fleetd_app.start_http(app)
    host, port = runner.addresses[0][:2]
    try:
        for _ in range(100):  # the demo chain publishes its first job right after start
            if app[fleetd_app.STRATUM_KEY].current_job is not None:
                break
            await asyncio.sleep(0.02)
        status, _, body = await _get(f"http://{host}:{port}", "/healthz")
    finally:
        await runner.cleanup()
    assert "hunter2" not in body
    assert json.loads(body)["source"]["detail"] == "pool stratum+tcp://farm1:***@pool.example:3333 active"


def test_http_defaults_close_slow_clients_within_a_scrape_interval():
    http = HttpConfig()
    assert http.request_timeout_seconds <= 30 and http.tls_handshake_timeout_seconds <= 30
    assert http.web_config_file == ""  # no TLS, no auth unless configured
