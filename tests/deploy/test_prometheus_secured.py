"""deploy/prometheus/secured.yml: Prometheus scraping a fleetd behind TLS and basic auth.

``promtool check config`` on it as deployed, and a real Prometheus (Debian's ``prometheus``)
scraping a real fleetd served from its web config, with the certificate and the bcrypt hash
made here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from fleetd import app as fleetd_app
from server_support import make_config
from tls_support import self_signed

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECURED = DEPLOY / "prometheus" / "secured.yml"
RULES = DEPLOY / "prometheus" / "rules"
PASSWORD = "scrape-password"
SCRAPED_WITHIN_S = 60.0  # a 1 s scrape interval; this long means the scrape is failing


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} not found: bash deploy/quickstart.sh test installs Debian's prometheus package")
    return path


def _as_deployed(tmp_path: Path) -> Path:
    """secured.yml with the rules, fleetd's certificate and the password file beside it."""
    shutil.copy(SECURED, tmp_path / "prometheus.yml")
    shutil.copytree(RULES, tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    self_signed(tmp_path)
    (tmp_path / "fleetd.password").write_text(PASSWORD)
    return tmp_path / "prometheus.yml"


def test_secured_config_loads(tmp_path):
    config = _as_deployed(tmp_path)
    result = subprocess.run(
        [_tool("promtool"), "check", "config", config.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = yaml.safe_load(SECURED.read_text())["scrape_configs"]
    assert job["scheme"] == "https" and job["basic_auth"]["username"] == "prometheus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


async def test_prometheus_scrapes_fleetd_over_tls_with_basic_auth(tmp_path):
    config_file = _as_deployed(tmp_path)
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n  cert_file: fleetd.crt\n  key_file: fleetd.key\n"
        f"basic_auth_users:\n  prometheus: '{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}'\n"
    )
    fleetd_config = make_config()
    fleetd_config = dataclasses.replace(
        fleetd_config, http=dataclasses.replace(fleetd_config.http, web_config_file=str(tmp_path / "web.yml"))
    )
    app = fleetd_app.build_app(fleetd_config)
    runner = await fleetd_app.start_http(app)
    fleetd_port = runner.addresses[0][1]
    prometheus = yaml.safe_load(config_file.read_text())
    prometheus["global"]["scrape_interval"] = "1s"
    prometheus.pop("alerting")
    (job,) = prometheus["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{fleetd_port}"]}]
    config_file.write_text(yaml.safe_dump(prometheus))
    prom_addr = f"127.0.0.1:{_free_port()}"
    log = (tmp_path / "prometheus.log").open("w")
    prom = subprocess.Popen(
        [_tool("prometheus"), f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address={prom_addr}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        up = []
        async with asyncio.timeout(SCRAPED_WITHIN_S):
            while not (up and up[0]["value"][1] == "1"):
                await asyncio.sleep(0.5)
                try:
                    up = await asyncio.to_thread(_query, f"http://{prom_addr}", 'up{job="fleetd"}')
                except OSError:
                    up = []  # Prometheus still starting
        jobs = await asyncio.to_thread(_query, f"http://{prom_addr}", 'fleetd_jobs_total{job="fleetd"}')
        assert jobs, "scraped, yet no fleetd series"
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        log.close()
        await runner.cleanup()
