"""Limits over real loopback sockets, on a fake clock: floods from one address are refused
while another mines, the new-connection bucket, logins that fail, idle rigs, and log volume."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from structlog.testing import capture_logs

from fake_clock import FakeClock
from fleetd.config import AuthConfig
from fleetd.server.stratum import IDLE_CHECK_SECONDS
from server_support import RawClient, grind, make_config, replace, scrape, start_fleetd, wait_until

DAY = 86400.0
OTHER_LOOPBACK = "127.0.0.2"  # Linux routes all of 127/8 on lo: a second source address


@contextlib.asynccontextmanager
async def serving(auth: AuthConfig | None = None, **stratum):
    """fleetd on loopback and a fake clock; timed jobs a day apart, so every job within a
    test's hour is one it caused."""
    config = make_config(**stratum)
    config = replace(config, source=replace(config.source, refresh_seconds=DAY, block_interval_seconds=DAY))
    if auth is not None:
        config = replace(config, auth=auth)
    fleetd = await start_fleetd(config, clock=FakeClock())
    try:
        yield fleetd
    finally:
        await fleetd.runner.cleanup()


async def connect(address, local: str | None = None) -> RawClient:
    reader, writer = await asyncio.open_connection(*address, local_addr=(local, 0) if local else None)
    return RawClient(reader, writer)


def refused_logs(logs, reason: str) -> list[dict]:
    return [e for e in logs if e["event"] == "connection_refused" and e["reason"] == reason]


async def test_a_flood_from_one_address_is_refused_while_another_address_mines():
    async with serving(max_connections_per_ip=5) as running:
        server = running.server
        with capture_logs() as logs:
            held = [await connect(running.stratum) for _ in range(5)]
            await wait_until(lambda: len(server.connections) == 5)
            flood = [await connect(running.stratum) for _ in range(30)]
            assert all([await client.closed() for client in flood])  # closed at once, before any session
            assert len(server.connections) == 5
            rig = await connect(running.stratum, OTHER_LOOPBACK)
            await rig.login("acct.other")
            assert (await rig.request("mining.submit", grind(rig)))["result"] is True
        assert server.refused == {"max_connections_per_ip": 30}
        assert len(refused_logs(logs, "max_connections_per_ip")) == 1  # once per window, not per attempt
        samples, _ = await scrape(running.http)
        assert samples[("fleetd_stratum_refused_total", (("reason", "max_connections_per_ip"),))] == 30
        for client in [*held, rig]:
            client.close()


async def test_new_connections_per_address_per_second():
    async with serving(new_connections_per_ip_per_second=1.0, new_connections_burst_per_ip=3) as running:
        server, clock = running.server, running.clock
        clients = [await connect(running.stratum) for _ in range(3)]
        await wait_until(lambda: len(server.connections) == 3)
        late = await connect(running.stratum)
        assert await late.closed()
        other = await connect(running.stratum, OTHER_LOOPBACK)  # its own bucket
        clock.tick(1.0)  # one token back
        again = await connect(running.stratum)
        await again.login()
        assert server.refused == {"connect_rate": 1}
        for client in [*clients, other, again]:
            client.close()


PASSWORDS = AuthConfig(policy="password", passwords={"acct": "s3cret"})


async def test_password_guessing_closes_the_connection_then_bans_the_address_for_longer_each_time():
    async with serving(auth=PASSWORDS, max_auth_failures=3, ban_after_failed_logins=2, ban_seconds=60.0) as running:
        server, clock = running.server, running.clock

        async def guess_until_closed() -> None:
            client = await connect(running.stratum)
            for attempt in range(3):
                reply = await client.request("mining.authorize", ["acct.x", f"guess{attempt}"])
                assert reply["error"][0] == 24
            assert await client.closed()

        with capture_logs() as logs:
            for ban in (60.0, 120.0):
                await guess_until_closed()
                await guess_until_closed()
                await wait_until(lambda: server.admission.banned(clock.monotonic()) == 1)
                banned = await connect(running.stratum)
                assert await banned.closed()
                rig = await connect(running.stratum, OTHER_LOOPBACK)  # another address is not banned
                await rig.subscribe()
                rig.close()
                clock.tick(ban - 1.0)
                assert server.admission.banned(clock.monotonic()) == 1
                clock.tick(1.0)
                assert server.admission.banned(clock.monotonic()) == 0
        assert server.auth_failures == {"bad_credentials": 12}
        assert server.disconnects["too_many_auth_failures"] == 4
        assert server.bans == 2 and server.refused["banned"] == 2
        # One line per window and address: the second window's carries the count kept quiet.
        assert [e["suppressed"] for e in logs if e["event"] == "authorization_refused"] == [0, 5]
        assert [e["seconds"] for e in logs if e["event"] == "source_banned"] == [60.0, 120.0]
        samples, _ = await scrape(running.http)
        assert samples[("fleetd_stratum_auth_failures_total", (("reason", "bad_credentials"),))] == 12
        assert samples[("fleetd_stratum_bans_total", ())] == 2
        # The right password still works from the address once its ban is over.
        client = await connect(running.stratum)
        await client.subscribe()
        assert (await client.request("mining.authorize", ["acct.rig", "s3cret"]))["result"] is True
        client.close()


async def test_a_logged_in_rig_without_shares_is_closed_after_the_idle_timeout():
    async with serving(idle_timeout_seconds=60.0) as running:
        server, clock = running.server, running.clock
        silent = await connect(running.stratum)
        await silent.login("acct.silent")
        busy = await connect(running.stratum)
        await busy.login("acct.busy")
        await clock.advance(40.0)
        assert (await busy.request("mining.submit", grind(busy)))["result"] is True
        await clock.advance(20.0 + IDLE_CHECK_SECONDS)
        assert await silent.closed()
        await clock.advance(30.0)  # 55 s since the busy rig's share
        assert len(server.connections) == 1
        assert server.disconnects == {"idle_timeout": 1}
        samples, _ = await scrape(running.http)
        assert samples[("fleetd_stratum_disconnects_total", (("reason", "idle_timeout"),))] == 1
        busy.close()


async def test_a_rig_fleetd_holds_asleep_is_not_idle_and_keeps_its_difficulty_until_released():
    """A stopped stock Antminer stays on Stratum and sends nothing: closing it would only make it
    reconnect every idle timeout."""
    from fleetd.app import CURTAILMENT_KEY
    from fleetd.curtailment.controller import Curtailed

    async with serving(idle_timeout_seconds=60.0) as running:
        server, clock = running.server, running.clock
        controller = running.app[CURTAILMENT_KEY].controller
        asleep = await connect(running.stratum)
        await asleep.login("acct.asleep")
        silent = await connect(running.stratum)
        await silent.login("acct.silent")
        shared = await connect(running.stratum)  # a proxy's connection: one of its rigs is not held
        await shared.login("acct.asleep")
        assert (await shared.request("mining.authorize", ["acct.other", "x"]))["result"] is True
        start_difficulty, notified = asleep.difficulty, len(asleep.notifications)
        at = clock.wall()
        controller.curtailed["acct.asleep"] = Curtailed("unprofitable", "off", at, 3010.0, 140e12, at, verified_at=at)
        await clock.advance(60.0 + IDLE_CHECK_SECONDS)
        assert await silent.closed() and await shared.closed()
        await clock.advance(3600.0)
        assert len(server.connections) == 1 and server.disconnects == {"idle_timeout": 2}
        # no retarget went out while it slept: it wakes at the difficulty its hashing earned
        assert (await asleep.request("mining.ping", []))["error"] is None  # what came before is read
        assert asleep.difficulty == start_difficulty
        assert [n["method"] for n in asleep.notifications[notified:]] == []
        assert controller.release("acct.asleep", clock.wall())
        await clock.advance(55.0)
        assert len(server.connections) == 1  # released: its idle time counts from then
        await clock.advance(10.0)
        assert await asleep.closed()
        assert server.disconnects == {"idle_timeout": 3}


async def test_no_rig_is_idle_while_there_is_no_work():
    async with serving(idle_timeout_seconds=60.0) as running:
        server, clock = running.server, running.clock
        server.withdraw_work("node down")
        client = await connect(running.stratum)
        await client.subscribe()
        assert (await client.request("mining.authorize", ["acct.rig", "x"]))["result"] is True
        await clock.advance(600.0)
        assert len(server.connections) == 1
        server.publish(replace(server.pool.jobs.latest, job_id="back", clean_jobs=True))
        await clock.advance(55.0)
        assert len(server.connections) == 1  # the timeout counts from the work's return
        await clock.advance(10.0)
        assert await client.closed()


async def test_bad_requests_are_logged_a_few_times_then_summarised():
    async with serving() as running:
        server, clock = running.server, running.clock
        with capture_logs() as logs:
            for _ in range(3):
                client = await connect(running.stratum)
                for i in range(8):  # under max_garbage_requests: the connection stays
                    assert (await client.request("no.such.method", []))["error"] is not None
                client.close()
            await clock.advance(server.settings.log_window + IDLE_CHECK_SECONDS)
        assert len([e for e in logs if e["event"] == "bad_request"]) == 5
        assert [e["suppressed"] for e in logs if e["event"] == "log_suppressed"] == [19]
