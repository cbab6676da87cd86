"""/api/v1/curtailment on fleetd's own HTTP listener: the state for anyone who may read the API,
the demand-response controls only for an authenticated user."""

from __future__ import annotations

import base64
import contextlib
import dataclasses

import aiohttp
import bcrypt

from fleetd import app as fleetd_app
from server_support import make_config

USER, PASSWORD = "operator", "grid-call"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@contextlib.asynccontextmanager
async def serve(tmp_path, *, auth: bool):
    config = make_config()
    if auth:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
        config = dataclasses.replace(config, http=dataclasses.replace(config.http, web_config_file=str(tmp_path / "web.yml")))
    app = fleetd_app.build_app(config)
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
        async with http.post("/api/v1/curtailment", data=b"{not json") as response:
            assert response.status == 400
        async with http.delete("/api/v1/curtailment") as response:
            assert (response.status, await response.json()) == (200, {"released": True})
        async with http.delete("/api/v1/curtailment") as response:
            assert (await response.json()) == {"released": False}
        async with http.delete("/api/v1/curtailment/rigs/acct.rig%7B1%7D") as response:
            body = await response.json()
        assert response.status == 404 and "acct.rig{1}" in body["error"]
