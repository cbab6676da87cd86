"""In upstream mode no rig works above the upstream pool's difficulty, and what the pool
credits each rig is exported exactly.

A rig at d_rig <= d_up has its shares forwarded when they meet d_up and credited at d_up:
on average the pool pays the rig's work in full. A rig above d_up never submits the shares
between the two targets, and that work is lost (at d_rig = 4 d_up, three quarters of it).
Here the proxy pins its own rigs at 4 x the upstream's difficulty, so nothing but the cap
can bring a rig down to the upstream's. Shares are ground by the test (exact accounting,
no luck); every wait is a hang guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess

import pytest

from server_support import RawClient, grind, grind_between, http_json, scrape
from upstream_support import UPSTREAM_DIFFICULTY, WAIT, FakePool, Running, start_proxy, start_upstream, wait_for

D_UP = UPSTREAM_DIFFICULTY
D_PROXY = 4 * D_UP  # the proxy's own pinned difficulty (min = max = start): above the upstream's
HASHES = 2**32
SHARES = 12


@contextlib.asynccontextmanager
async def daemons():
    running: list[Running] = []
    try:
        async with asyncio.timeout(120.0):  # a hang guard: each test takes about a second
            yield running
    finally:
        for daemon in reversed(running):
            with contextlib.suppress(Exception):
                await daemon.stop()


def difficulties(client: RawClient) -> list[float]:
    return [n["params"][0] for n in client.notifications if n["method"] == "mining.set_difficulty"]


async def submit_shares(client: RawClient, count: int, first: int = 0) -> None:
    """``count`` shares at the client's difficulty, each on its own extranonce2; every one accepted."""
    for i in range(first, first + count):
        params = grind(client, extranonce2=i.to_bytes(client.extranonce2_size, "little"))
        assert (await client.request("mining.submit", params))["result"] is True


async def upstream_figures(proxy: Running, worker: str) -> tuple[dict, dict]:
    """(the rig's upstream samples in /metrics by (result, reason) or "hashes", its API "upstream" object)."""
    samples, _ = await scrape(proxy.http)
    exported = {}
    for (name, labels), number in samples.items():
        labels = dict(labels)
        if labels.get("rig") != worker:
            continue
        if name == "fleetd_rig_upstream_shares_total":
            exported[(labels["result"], labels["reason"])] = number
        elif name == "fleetd_rig_upstream_hashes_total":
            exported["hashes"] = number
    status, rig = await http_json(proxy.http, f"/api/v1/rigs/{worker}")
    assert status == 200
    return exported, rig["upstream"]


async def test_a_rig_that_suggests_more_than_the_upstreams_difficulty_is_held_at_it():
    async with daemons() as running:
        up = await start_upstream()
        running.append(up)
        proxy = await start_proxy(up.url, difficulty=D_PROXY)
        running.append(proxy)
        client = await RawClient.connect(("127.0.0.1", proxy.port))
        await client.login("site.rig1")
        seen = len(client.notifications)
        assert (await client.request("mining.suggest_difficulty", [D_PROXY]))["result"] is True
        await client.request("mining.ping", [])  # its reply comes after anything the suggestion sent
        assert difficulties(client) == [D_UP]  # nothing above the pool went out
        assert all(n["method"] != "mining.set_difficulty" for n in client.notifications[seen:])
        await submit_shares(client, 3)  # and its shares are judged at D_UP
        client.close()


async def test_a_rig_is_capped_at_a_real_upstreams_difficulty_and_its_work_credited_in_full():
    async with daemons() as running:
        up = await start_upstream()  # a demo fleetd pinning the proxy at D_UP
        running.append(up)
        proxy = await start_proxy(up.url, difficulty=D_PROXY)
        running.append(proxy)
        client = await RawClient.connect(("127.0.0.1", proxy.port))
        await client.login("site.rig1")
        assert difficulties(client) == [D_UP]  # capped on its first job: D_PROXY never went out

        # a share between the two targets: a rig at D_PROXY would never have sent it, the pool credits it
        between = grind_between(client, client.job, D_UP, D_PROXY, extranonce2=bytes(client.extranonce2_size))
        assert (await client.request("mining.submit", between))["result"] is True
        await submit_shares(client, SHARES - 1, first=1)
        stats = proxy.server.upstream_workers["site.rig1"]
        await wait_for(lambda: stats.pending == 0, WAIT)
        client.close()

        rig_work = proxy.server.workers["site.rig1"].accepted_work
        credited = up.server.workers["acct"].accepted_work  # what the upstream pool credited
        assert rig_work == pytest.approx(SHARES * D_UP, rel=1e-12)
        # before the cap: credited / rig work = D_UP / D_PROXY = 0.25; now every share is paid in full
        assert credited == pytest.approx(rig_work, rel=1e-12)
        assert (stats.forwarded, stats.accepted, sum(stats.rejected.values())) == (SHARES, SHARES, 0)

        exported, api = await upstream_figures(proxy, "site.rig1")
        assert exported == {("forwarded", ""): SHARES, ("accepted", ""): SHARES, "hashes": pytest.approx(credited * HASHES)}
        assert api["forwarded"] == api["accepted"] == SHARES and api["rejected"] == {} and api["pending"] == 0
        assert api["hashes_total"] == pytest.approx(credited * HASHES) and api["last_accepted"] is not None

        # the upstream pool itself is not in upstream mode: no upstream figures there
        samples, text = await scrape(up.http)
        assert "fleetd_rig_upstream" not in text
        assert (await http_json(up.http, "/api/v1/rigs/acct"))[1]["upstream"] is None


async def test_when_the_upstream_difficulty_drops_the_rig_follows_at_once_and_credits_match_exactly():
    async with daemons() as running, FakePool(difficulty=D_UP) as fake:
        proxy = await start_proxy(fake.url, difficulty=D_PROXY)
        running.append(proxy)
        client = await RawClient.connect(("127.0.0.1", proxy.port))
        await client.login("site.rig1")
        assert difficulties(client) == [D_UP]
        await submit_shares(client, 3)
        stats = proxy.server.upstream_workers["site.rig1"]
        await wait_for(lambda: stats.pending == 0, WAIT)  # answered at D_UP before the pool moves
        before = client.job

        lower = D_UP / 4
        seen = len(client.notifications)
        fake.set_difficulty(lower)
        # at once: the new difficulty, then the rig's current job again (vardiff, pinned, cannot move it)
        methods = await client.notified_after(seen)
        assert methods == ["mining.set_difficulty", "mining.notify"] and client.difficulty == lower
        assert client.job.job_id == before.job_id and not client.job.clean
        # then the pool's job re-sent at its new difficulty comes through as a new rig job
        await client.wait_for(lambda: client.job.job_id == proxy.server.current_job.job_id != before.job_id, WAIT)
        await submit_shares(client, SHARES, first=3)
        await wait_for(lambda: stats.pending == 0, WAIT)

        # the pool raises its difficulty again: the rig may stay below it, so nothing is sent
        seen = len(client.notifications)
        fake.set_difficulty(D_UP)
        await wait_for(lambda: proxy.server.difficulty_cap == D_UP, WAIT)
        await asyncio.sleep(0.2)  # nothing is due: a difficulty sent here would be a defect
        assert difficulties(client)[-1] == lower
        client.close()

        # exact accounting: the pool's credit is what fleetd exports, and it equals the rig's work
        credited = sum(share.difficulty for share in fake.accepted)
        assert len(fake.accepted) == 3 + SHARES and fake.rejected == 0
        assert credited == pytest.approx(3 * D_UP + SHARES * lower, rel=1e-12)
        assert proxy.server.workers["site.rig1"].accepted_work == pytest.approx(credited, rel=1e-12)
        assert stats.forwarded == stats.accepted + sum(stats.rejected.values()) + stats.pending
        assert (stats.forwarded, stats.accepted, stats.pending) == (3 + SHARES, 3 + SHARES, 0)
        exported, api = await upstream_figures(proxy, "site.rig1")
        assert exported["hashes"] == pytest.approx(credited * HASHES, rel=1e-12)
        assert exported[("forwarded", "")] == exported[("accepted", "")] == 3 + SHARES
        assert api["accepted_work"] == pytest.approx(credited, rel=1e-12) and api["pending"] == 0


async def test_upstream_rejects_are_exported_by_reason_and_pass_promtool():
    async with daemons() as running, FakePool(mode="reject", difficulty=D_UP) as fake:
        proxy = await start_proxy(fake.url, difficulty=D_PROXY, max_consecutive_rejects=0)
        running.append(proxy)
        client = await RawClient.connect(("127.0.0.1", proxy.port))
        await client.login("site.rig1")
        await submit_shares(client, 4)
        stats = proxy.server.upstream_workers["site.rig1"]
        await wait_for(lambda: stats.pending == 0, WAIT)
        client.close()
        exported, api = await upstream_figures(proxy, "site.rig1")
        assert fake.rejected == 4
        assert exported == {("forwarded", ""): 4, ("accepted", ""): 0, ("rejected", "low_difficulty"): 4, "hashes": 0.0}
        assert api["rejected"] == {"low_difficulty": 4} and api["accepted"] == 0 and api["last_accepted"] is None
        promtool = shutil.which("promtool")
        if promtool is None:
            pytest.fail("promtool not found: bash deploy/quickstart.sh test installs Debian's prometheus package")
        _, text = await scrape(proxy.http)
        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
