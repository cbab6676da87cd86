"""stratum+ssl over real loopback sockets: a self-signed certificate made here, a TLS client
that mines, openssl s_client as an independent client, the limits before the handshake, the
handshake timeout, shutdown, and the config errors a bad certificate or key makes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import time
import warnings
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from fleetd.cli import main
from fleetd.config import ConfigError, HostPort, parse
from fleetd.server.stratum import TLS_HANDSHAKE_FAILED
from server_support import RawClient, grind, make_config, replace, start_fleetd, wait_until
from tls_support import self_signed

OPENSSL = shutil.which("openssl")


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def tls_config(certificate, **stratum):
    cert, key = certificate
    config = make_config(**stratum)
    return replace(config, stratum=replace(
        config.stratum, tls_listen=HostPort("127.0.0.1", 0), tls_cert_file=str(cert), tls_key_file=str(key),
    ))  # fmt: skip


@contextlib.asynccontextmanager
async def serving(certificate, **stratum):
    running = await start_fleetd(tls_config(certificate, **stratum))
    try:
        yield running
    finally:
        await running.runner.cleanup()


def client_context(cert: Path) -> ssl.SSLContext:
    """A client that verifies the server: the self-signed certificate is its one trusted CA."""
    return ssl.create_default_context(cafile=str(cert))


async def tls_client(address, cert: Path) -> RawClient:
    reader, writer = await asyncio.open_connection(*address, ssl=client_context(cert))
    return RawClient(reader, writer)


async def test_a_rig_mines_over_tls_beside_a_plain_one(certificate):
    with capture_logs() as logs:
        async with serving(certificate) as running:
            server = running.server
            tls_address = server.tls_address
            assert tls_address is not None and tls_address != server.address
            assert server.address == running.stratum  # the plain one stays `address`
            secure = await tls_client(server.tls_address, certificate[0])
            plain = await RawClient.connect(server.address)
            try:
                ssl_object = secure.writer.get_extra_info("ssl_object")
                assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
                await secure.login("acct.secure")
                await plain.login("acct.plain")
                assert secure.extranonce1 != plain.extranonce1  # one allocator, one pool core
                reply = await secure.request("mining.submit", grind(secure))
                assert reply["result"] is True, reply
                assert (await plain.request("mining.submit", grind(plain)))["result"] is True
                assert server.workers["acct.secure"].accepted == 1
                assert len(server.connections) == 2
            finally:
                secure.close()
                plain.close()
    listening = [e for e in logs if e["event"] == "stratum_tls_listening"]
    assert listening and listening[0]["address"] == tls_address
    assert listening[0]["min_version"] == "TLSv1_2"
    authorized = [e for e in logs if e["event"] == "miner_authorized" and e.get("worker") == "acct.secure"]
    assert authorized and authorized[0]["tls"] in ("TLSv1.2", "TLSv1.3")


async def test_a_request_sent_with_the_last_handshake_flight_is_answered(certificate):
    """A client that writes at once after its handshake (TLS 1.3 sends data with its Finished)."""
    async with serving(certificate) as running:
        reader, writer = await asyncio.open_connection(*running.server.tls_address, ssl=client_context(certificate[0]))
        writer.write(b'{"id": 1, "method": "mining.subscribe", "params": []}\n')
        reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
        assert reply["id"] == 1 and reply["error"] is None
        writer.close()


async def test_tls_below_1_2_is_refused(certificate):
    async with serving(certificate) as running:
        assert running.server.settings.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
        old = client_context(certificate[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is: that is the point
            old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with contextlib.suppress(ssl.SSLError):
            old.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(asyncio.open_connection(*running.server.tls_address, ssl=old), 5)
        await wait_until(lambda: running.server.admission.connections == 0)


async def test_openssl_s_client_completes_a_handshake_and_gets_the_subscribe_reply(certificate):
    assert OPENSSL, "openssl is one of the packages deploy/quickstart.sh installs"
    async with serving(certificate) as running:
        host, port = running.server.tls_address
        process = await asyncio.create_subprocess_exec(
            OPENSSL, "s_client", "-connect", f"{host}:{port}", "-CAfile", str(certificate[0]),
            "-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            process.stdin.write(b'{"id": 7, "method": "mining.subscribe", "params": ["openssl/3"]}\n')
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), 10)
            reply = json.loads(line)
            assert reply["id"] == 7 and reply["error"] is None
            _, extranonce1, extranonce2_size = reply["result"]
            assert len(bytes.fromhex(extranonce1)) == 4 and extranonce2_size == 8
        finally:
            process.kill()
            _, stderr = await process.communicate()
        assert b"verify error" not in stderr, stderr


async def test_plain_tcp_on_the_tls_port_is_dropped(certificate):
    async with serving(certificate) as running:
        server = running.server
        client = await RawClient.connect(server.tls_address)
        await client.send_raw(b'{"id": 1, "method": "mining.subscribe", "params": []}\n')
        assert await client.closed()
        assert server.disconnects[TLS_HANDSHAKE_FAILED] == 1
        await wait_until(lambda: server.admission.connections == 0)  # its slot came free
        assert not server.connections


async def test_a_client_that_never_handshakes_is_closed_after_the_timeout(certificate):
    async with serving(certificate, tls_handshake_timeout_seconds=0.3) as running:
        server = running.server
        started = time.monotonic()
        client = await RawClient.connect(server.tls_address)  # TCP only, then silence
        await wait_until(lambda: server.admission.connections == 1)  # admitted before any TLS
        assert await client.closed(timeout=5.0)
        assert time.monotonic() - started >= 0.25
        await wait_until(lambda: server.admission.connections == 0)
        assert server.disconnects[TLS_HANDSHAKE_FAILED] == 1


async def test_limits_apply_before_the_handshake(certificate):
    async with serving(certificate, max_connections_per_ip=1) as running:
        server = running.server
        holder = await RawClient.connect(server.tls_address)  # holds the address's one slot, handshaking
        await wait_until(lambda: server.admission.connections == 1)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(
                asyncio.open_connection(*server.tls_address, ssl=client_context(certificate[0])), 5
            )
        assert server.refused["max_connections_per_ip"] == 1
        holder.close()
        await wait_until(lambda: server.admission.connections == 0)
        secure = await tls_client(server.tls_address, certificate[0])  # the slot is free again
        await secure.login()
        secure.close()


async def test_shutdown_tells_tls_miners_to_reconnect_and_closes_handshakes(certificate):
    running = await start_fleetd(tls_config(certificate))
    server = running.server
    secure = await tls_client(server.tls_address, certificate[0])
    await secure.login()
    handshaking = await RawClient.connect(server.tls_address)
    await wait_until(lambda: server.admission.connections == 2)
    await running.runner.cleanup()
    with contextlib.suppress(ConnectionError):
        while await secure.read_message() is not None:
            pass
    assert any(n["method"] == "client.reconnect" for n in secure.notifications)
    assert await handshaking.closed()
    assert server.admission.connections == 0
    assert server.tls_address is None  # the TLS listener is closed too


def test_the_production_event_loop_serves_tls_too(certificate):
    """fleetd serves on uvloop: the same handshake, limits and mining there."""
    uvloop = pytest.importorskip("uvloop")

    async def mine():
        async with serving(certificate, tls_handshake_timeout_seconds=0.3) as running:
            server = running.server
            secure = await tls_client(server.tls_address, certificate[0])
            await secure.login()
            assert (await secure.request("mining.submit", grind(secure)))["result"] is True
            silent = await RawClient.connect(server.tls_address)
            assert await silent.closed()
            assert server.disconnects[TLS_HANDSHAKE_FAILED] == 1
            secure.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(mine())


# -- configuration ------------------------------------------------------------------------


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse("[stratum]\n" + text)
    return caught.value.problems


def tls_keys(cert, key, listen="127.0.0.1:3334") -> str:
    return f'tls_listen = "{listen}"\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'


def test_config_takes_a_tls_listener(certificate):
    cert, key = certificate
    stratum = parse("[stratum]\n" + tls_keys(cert, key) + "tls_handshake_timeout_seconds = 2.5").stratum
    assert stratum.tls_listen == HostPort("127.0.0.1", 3334)
    assert (stratum.tls_cert_file, stratum.tls_key_file) == (str(cert), str(key))
    assert stratum.tls_handshake_timeout_seconds == 2.5
    assert parse("[stratum]\ntls_listen = \"\"").stratum.tls_listen is None  # none, as by default


def test_relative_file_names_are_read_from_the_working_directory(certificate, monkeypatch):
    monkeypatch.chdir(certificate[0].parent)
    assert parse("[stratum]\n" + tls_keys("fleetd.crt", "fleetd.key")).stratum.tls_cert_file == "fleetd.crt"


def test_an_unreadable_file_names_its_key(certificate, tmp_path):
    cert, key = certificate
    [problem] = problems(tls_keys(tmp_path / "missing.crt", key))
    assert problem.startswith("[stratum] tls_cert_file = ") and "cannot read" in problem
    [problem] = problems(tls_keys(cert, tmp_path))  # a directory
    assert problem.startswith("[stratum] tls_key_file = ") and "cannot read" in problem


def test_a_key_that_is_not_the_certificates_names_the_key(certificate, tmp_path):
    cert, _ = certificate
    _, other_key = self_signed(tmp_path, "other")
    [problem] = problems(tls_keys(cert, other_key))
    assert problem.startswith("[stratum] tls_key_file = ") and "not the private key of tls_cert_file" in problem


def test_a_file_that_is_not_a_certificate_names_the_certificate(certificate):
    _, key = certificate
    [problem] = problems(tls_keys(key, key))
    assert problem.startswith("[stratum] tls_cert_file = ") and "not a PEM certificate" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('tls_listen = "127.0.0.1:3334"', "needs tls_cert_file and tls_key_file"),
        ("tls_listen = 3334", "[stratum] tls_listen = 3334: must be"),
        ('tls_listen = "nope"', "[stratum] tls_listen = 'nope': must be"),
        ('tls_min_version = "TLS11"', "must be one of TLS12, TLS13"),
        ("tls_handshake_timeout_seconds = 0", "must be between"),
    ],
)
def test_incomplete_or_bad_tls_keys(text, expected):
    assert any(expected in problem for problem in problems(text)), problems(text)


def test_a_certificate_without_a_listener_is_refused(certificate):
    cert, key = certificate
    found = problems(f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"')
    assert [p.split(" is given")[0] for p in found] == ["[stratum] tls_cert_file", "[stratum] tls_key_file"]


def test_tls_on_the_plain_address_is_refused(certificate):
    cert, key = certificate
    [problem] = problems('listen = "127.0.0.1:3333"\n' + tls_keys(cert, key, "127.0.0.1:3333"))
    assert "is the plain listen address too" in problem


def test_the_demo_chain_is_not_served_over_tls_on_the_network(certificate):
    cert, key = certificate
    with pytest.raises(ConfigError) as caught:
        parse('[stratum]\nlisten = "127.0.0.1:3333"\n' + tls_keys(cert, key, "0.0.0.0:3334"), serving=True)
    [problem] = caught.value.problems
    assert 'tls_listen = "0.0.0.0:3334"' in problem


def test_check_config_catches_a_mismatched_key(certificate, tmp_path, capsys):
    cert, _ = certificate
    _, other_key = self_signed(tmp_path, "other")
    path = tmp_path / "fleetd.toml"
    path.write_text('[stratum]\nlisten = "127.0.0.1:3333"\n' + tls_keys(cert, other_key))
    assert main(["check-config", str(path)]) == 1
    assert "tls_key_file" in capsys.readouterr().err + capsys.readouterr().out
