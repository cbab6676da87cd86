"""/api/v1/curtailment on fleetd's own HTTP listener: the state for anyone who may read the API,
the demand-response controls only for an authenticated user."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json

import aiohttp
import bcrypt
import pytest

from fake_clock import FakeClock
from fleetd import app as fleetd_app
from fleetd.curtailment.controller import Curtailed
from fleetd.telemetry import api
from server_support import make_config

USER, PASSWORD = "operator", "grid-call"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@contextlib.asynccontextmanager
async def serve(tmp_path, *, auth: bool, clock=fleetd_app.SYSTEM_CLOCK):
    config = make_config()
    if auth:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
        config = dataclasses.replace(config, http=dataclasses.replace(config.http, web_config_file=str(tmp_path / "web.yml")))
    app = fleetd_app.build_app(config, clock=clock)
    runner = await fleetd_app.start_http(app)
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession(f"http://{host}:{port}", headers=AUTH if auth else None) as session:
            yield session, app
    finally:
        await runner.cleanup()


async def test_without_basic_auth_the_state_is_readable_and_the_controls_are_refused(tmp_path):
    async with serve(tmp_path, auth=False) as (http, _):
        async with http.get("/api/v1/curtailment") as response:
            state = await response.json()
        assert response.status == 200 and state["mode"] == "advise" and state["demand"] is None
        assert state["rigs"] == [] and state["shed_kw"] == 0.0
        for method, path in (("POST", "/api/v1/curtailment"), ("DELETE", "/api/v1/curtailment"),
                             ("DELETE", "/api/v1/curtailment/rigs/acct.rig1")):  # fmt: skip
            async with http.request(method, path, json={"kw": 5, "duration_seconds": 60}) as response:
                body = await response.json()
            assert response.status == 403 and "basic_auth_users" in body["error"], (method, path)


async def test_a_demand_request_is_taken_shown_and_released(tmp_path):
    async with serve(tmp_path, auth=True) as (http, app):
        clock_now = app[fleetd_app.api.CLOCK_KEY].wall()
        async with http.post("/api/v1/curtailment", json={"kw": 250, "duration_seconds": 3600}) as response:
            taken = await response.json()
        assert response.status == 201 and taken["kw"] == 250 and taken["mode"] == "advise" and not taken["acting"]
        assert 0 <= taken["until"] - clock_now - 3600 < 5
        async with http.get("/api/v1/curtailment") as response:
            state = await response.json()
        assert state["demand"]["kw"] == 250
        assert [e["kind"] for e in state["recent_events"]] == ["demand"]
        for body in ({"kw": -1, "duration_seconds": 60}, {"kw": 5}, {"kw": "5", "duration_seconds": 60},
                     {"kw": 5, "duration_seconds": 30 * 86400}, [5, 60]):  # fmt: skip
            async with http.post("/api/v1/curtailment", json=body) as response:
                assert response.status == 400, body
                assert "must" in (await response.json())["error"]
        json_type = {"Content-Type": "application/json"}
        async with http.post("/api/v1/curtailment", data=b"{not json", headers=json_type) as response:
            assert response.status == 400
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            async with http.post("/api/v1/curtailment", data=b'{"kw": 5, "duration_seconds": 60}',
                                 headers={"Content-Type": content_type}) as response:  # fmt: skip
                assert response.status == 415 and "application/json" in (await response.json())["error"]
        async with http.delete("/api/v1/curtailment") as response:
            assert (response.status, await response.json()) == (200, {"released": True})
        async with http.delete("/api/v1/curtailment") as response:
            assert (await response.json()) == {"released": False}
        async with http.delete("/api/v1/curtailment/rigs/acct.rig%7B1%7D") as response:
            body = await response.json()
        assert response.status == 404 and "acct.rig{1}" in body["error"]


async def test_each_rig_is_listed_with_the_rate_it_is_judged_on_its_shares_and_whether_it_is_mature(tmp_path):
    """Four 100 TH/s rigs of one share a second: three minutes of shares (180, over the 100 the
    default min_shares asks for) but for one with a minute of them; one is held off, one advised."""
    clock = FakeClock()
    async with serve(tmp_path, auth=False, clock=clock) as (http, app):
        rigs, controller = app[api.RIGS_KEY], app[fleetd_app.CURTAILMENT_KEY].controller
        seconds = {"acct.steady": 180, "acct.young": 60, "acct.held": 180, "acct.advised": 180}
        for n, name in enumerate(seconds, 1):
            rigs.connected(name, f"10.0.0.{n}", clock.wall())
        for second in range(180):
            clock.tick(1.0)
            for name, mining in seconds.items():
                if second >= 180 - mining:
                    rigs.share(name, 100e12 / 2**32, clock.wall())  # 100 TH/s
        now = clock.wall()
        controller.curtailed["acct.held"] = Curtailed("unprofitable", "off", now, 3010.0, 100e12, now)
        controller.advice = {"acct.held": "unprofitable", "acct.advised": "demand"}
        async with http.get("/api/v1/curtailment") as response:
            state = await response.json()
    assert state["min_shares"] == 100.0
    judged = {row.pop("rig"): row for row in state["judged"]}
    assert list(judged) == sorted(seconds)
    assert {name: (row["status"], row["reason"]) for name, row in judged.items()} == {
        "acct.steady": ("ok", None), "acct.young": ("immature", None), "acct.held": ("held", "unprofitable"),
        "acct.advised": ("advised", "demand"),
    }  # fmt: skip
    for name, row in judged.items():
        estimate = rigs.get(name).hashrate_estimate("1h", now)  # the controller's window without [economics]
        figures = (row["rate"], row["rate_lower"], row["rate_upper"], row["shares"])
        assert figures == (estimate.rate, estimate.lower, estimate.upper, estimate.shares)
    young, steady = judged["acct.young"], judged["acct.steady"]
    assert young["shares"] == pytest.approx(60, rel=0.05) and steady["shares"] == pytest.approx(180, rel=0.05)
    assert young["rate"] == pytest.approx(100e12, rel=1e-3) and steady["rate"] == pytest.approx(100e12, rel=1e-3)
    assert young["rate_upper"] - young["rate_lower"] > 1.5 * (steady["rate_upper"] - steady["rate_lower"])  # 1/sqrt(N)


def _not_json(constant: str):
    raise AssertionError(f"{constant} is not JSON")


async def test_a_rig_without_a_share_or_a_difficulty_has_no_upper_bound(tmp_path):
    clock = FakeClock()
    async with serve(tmp_path, auth=False, clock=clock) as (http, app):
        app[api.RIGS_KEY].connected("acct.new", "10.0.0.9", clock.wall())
        async with http.get("/api/v1/curtailment") as response:
            text = await response.text()
    [row] = json.loads(text, parse_constant=_not_json)["judged"]
    assert row == {"rig": "acct.new", "status": "immature", "reason": None, "rate": 0.0, "rate_lower": 0.0,
                   "rate_upper": None, "shares": 0.0}  # fmt: skip
