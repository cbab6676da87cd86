"""Grafana dashboards: static shape, and every panel query returns data from a real Prometheus.

The live test runs `fleetd demo` (5 rigs, one sending invalid shares) on loopback, points a
real Prometheus (Debian's /usr/bin/prometheus) at it with the repo's scrape configuration
and recording rules (1 s scrape and evaluation), then runs every panel's PromQL through
/api/v1/query with the template variables substituted as Grafana would, and asserts each
returns at least one series.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fleetd.journal.metrics import JournalCollector

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "rules"
PROMETHEUS = "/usr/bin/prometheus"
DATASOURCE_UID = "fleetd-prometheus"

RIGS = 5
LIVE_DEADLINE = 75.0  # seconds from demo start until every query must have returned data


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _panels(dashboard: dict):
    for p in dashboard["panels"]:
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def _row_panels(dashboard: dict, title: str) -> list[dict]:
    """The panels of the row titled `title`: nested when it is collapsed, else those after it up to the next row."""
    panels, inside = [], False
    for p in dashboard["panels"]:
        if p.get("type") == "row":
            if p["title"] == title:
                panels.extend(p.get("panels", []))
            inside = p["title"] == title
        elif inside:
            panels.append(p)
    return panels


def _queries(dashboard: dict):
    """(panel title, refId, expr, instant) for every target of every panel."""
    for p in _panels(dashboard):
        for t in p["targets"]:
            yield p["title"], t["refId"], t["expr"], t.get("instant", False)


# --------------------------------------------------------------------------- static checks


def test_dashboards_exist():
    names = {p.name for p in DASHBOARDS}
    assert {"fleet-overview.json", "rig-detail.json", "pool-daemon.json", "economics.json"} <= names


def test_dashboards_match_generator():
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for name, build in gen.DASHBOARDS.items():
        assert (GRAFANA / "dashboards" / name).read_text() == gen.render(build), (
            f"grafana/dashboards/{name} is out of date: run python grafana/generate.py"
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_shape(path):
    d = _load(path)
    assert d.get("uid") and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"]), "stable uid missing or invalid"
    assert d.get("title")
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert "site" in variables, "every dashboard needs the site variable"
    for v in variables.values():
        assert v["includeAll"] and v["allValue"] == ".*", f"${v['name']}: 'All' must match everything"
    if "rig" in variables:
        assert variables["rig"]["multi"]
        assert "fleetd_rig_info" in variables["rig"]["definition"]
    panels = list(_panels(d))
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in panels:
        where = f"{path.name}: panel {p.get('title')!r}"
        assert p.get("title"), where
        assert p.get("targets"), f"{where} has no targets"
        assert p["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
        assert p["datasource"]["uid"] == DATASOURCE_UID, where
        for t in p["targets"]:
            assert t.get("expr", "").strip(), f"{where} target {t.get('refId')} has no expr"
            assert t.get("refId"), where
            # Every per-site query follows $site; every per-rig query follows $rig.
            if "fleetd_" in t["expr"] or "process_" in t["expr"]:
                assert '$site"' in t["expr"], f"{where}: {t['expr']} ignores $site"
            if "rig" in variables and re.search(r"fleetd(_rig_|:rig_)", t["expr"]):
                assert 'rig=~"$rig"' in t["expr"], f"{where}: {t['expr']} ignores $rig"


def test_uids_unique():
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


def test_hash_rate_panels_use_hash_rate_unit():
    for path in DASHBOARDS:
        for p in _panels(_load(path)):
            if "hash rate" in p["title"].lower():
                assert p["fieldConfig"]["defaults"]["unit"] == "Hs", f"{path.name}: {p['title']}"


def _journal_metrics() -> set[str]:
    """The sample names fleetd's journal collector exports (last_flush set: that one is absent until the first flush)."""
    journal = SimpleNamespace(up=True, dropped_writes=0, pending_rows=0, file_bytes=lambda: 0, last_flush=0.0,
                              cpu_seconds=0.0)
    return {sample.name for family in JournalCollector(journal).collect() for sample in family.samples}


def test_journal_panels_use_metrics_fleetd_exports():
    exported = _journal_metrics()
    assert "fleetd_journal_up" in exported and "fleetd_journal_dropped_writes_total" in exported
    used = {}
    for path in DASHBOARDS:
        for title, ref, expr, _instant in _queries(_load(path)):
            for name in re.findall(r"\bfleetd_journal_\w+", expr):
                used.setdefault(name, []).append(f"{path.name} / {title} [{ref}]")
    unknown = {name: where for name, where in used.items() if name not in exported}
    assert not unknown, f"fleetd exports no such journal metric: {unknown}"
    # The daemon dashboard's Journal row shows every journal metric fleetd exports.
    row = _row_panels(_load(GRAFANA / "dashboards" / "pool-daemon.json"), "Journal")
    shown = {name for p in row for t in p["targets"] for name in re.findall(r"\bfleetd_journal_\w+", t["expr"])}
    assert sorted(exported - shown) == [], "journal metrics with no panel in pool-daemon.json's Journal row"


def test_provisioning():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1
    [source] = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "fleetd.yaml").read_text())
    assert prov["apiVersion"] == 1
    [provider] = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# --------------------------------------------------------------------------- live: demo + Prometheus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _wait(what: str, check, deadline: float, proc: subprocess.Popen, log: Path) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what}: process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _grafana_regex(values: list[str]) -> str:
    """A multi-value variable as Grafana's Prometheus datasource interpolates it into a regex matcher."""
    escaped = [re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _substitute(expr: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("$" + name, variables[name]).replace("${" + name + "}", variables[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


@pytest.fixture
def live_site(tmp_path):
    if not os.path.exists(PROMETHEUS):
        pytest.fail(f"{PROMETHEUS} not found: install Debian's prometheus package (apt-get install prometheus)")
    if os.geteuid() != 0:
        pytest.skip("the demo rigs' firmware APIs bind ports 80 and 4028, which needs root")
    rule_files = sorted(RULES.glob("*.yml"))
    if not rule_files:
        pytest.fail(f"no recording rules in {RULES}; the dashboards use them")

    http = f"127.0.0.1:{_free_port()}"
    stratum = f"127.0.0.1:{_free_port()}"
    prom_addr = f"127.0.0.1:{_free_port()}"
    demo_log, prom_log = tmp_path / "demo.log", tmp_path / "prometheus.log"

    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(RULES / "*.yml")]  # the repo's rules, not rules/tests/
    config.pop("alerting", None)  # no Alertmanager here; keep test alerts off any real one
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "fleetd"]
    job["static_configs"] = [{"targets": [http]}]
    job.pop("scrape_interval", None)
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(yaml.safe_dump(config))

    demo = prom = None
    try:
        with demo_log.open("w") as out:
            demo = subprocess.Popen(
                [sys.executable, "-m", "fleetd", "demo", "--rigs", str(RIGS), "--stratum", stratum, "--http", http,
                 "--duration", "150", "--fault", "3:invalid=0.2", "--fault", "5:overheat=25@5"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "STATE_DIRECTORY": str(tmp_path)},  # its journal: not in the checkout
            )  # fmt: skip
        started = time.monotonic()
        with prom_log.open("w") as out:
            prom = subprocess.Popen(
                [PROMETHEUS, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address={prom_addr}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait("demo /healthz", lambda: _get(f"http://{http}/healthz"), started + 30, demo, demo_log)
        _wait("Prometheus ready", lambda: _get(f"http://{prom_addr}/-/ready"), started + 30, prom, prom_log)
        yield {"prometheus": f"http://{prom_addr}", "started": started, "demo": demo, "demo_log": demo_log}
    finally:
        _stop(prom)
        _stop(demo)


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(_get(url))
    except urllib.error.HTTPError as e:  # 400 on a bad query, with the reason in the body
        return json.loads(e.read())


def test_every_panel_query_returns_data(live_site):
    base = live_site["prometheus"]
    deadline = live_site["started"] + LIVE_DEADLINE

    # Rig names as Grafana's $rig query would list them.
    def rigs() -> list[str]:
        data = _query(base, "group by (rig) (fleetd_rig_info)")["data"]["result"]
        return sorted(r["metric"]["rig"] for r in data)

    _wait(f"{RIGS} rigs in Prometheus", lambda: len(rigs()) == RIGS, deadline, live_site["demo"], live_site["demo_log"])
    names = rigs()

    grafana_builtins = {"__rate_interval": "1m", "__interval": "5s", "__range": "1m"}
    # Each dashboard is checked as an operator would open it: All sites with every rig selected
    # one by one in the multi-select, and the default All/All (site label absent on local series,
    # so the empty and the All value must both work).
    selections = [
        {"site": ".*", "rig": _grafana_regex(names)},
        {"site": ".*", "rig": ".*"},
        {"site": "", "rig": ".*"},
    ]
    queries = [
        (path.name, title, ref, expr, instant)
        for path in DASHBOARDS
        for title, ref, expr, instant in _queries(_load(path))
    ]
    assert queries

    # Every (query, selection) must return series once; those that have are not asked again.
    pending = [(q, sel) for q in queries for sel in selections]
    while True:
        failures, still_pending = [], []
        for query, sel in pending:
            name, title, ref, expr, _instant = query
            promql = _substitute(expr, {**grafana_builtins, **sel})
            answer = _query(base, promql)
            if answer.get("status") != "success":
                failures.append(f"{name} / {title} [{ref}]: error {answer.get('error')}\n    {promql}")
            elif not answer["data"]["result"]:
                failures.append(f"{name} / {title} [{ref}]: no series (site={sel['site']!r}, rig={sel['rig']!r})"
                                f"\n    {promql}")  # fmt: skip
            else:
                continue
            still_pending.append((query, sel))
        pending = still_pending
        if not failures or time.monotonic() > deadline:
            break
        if any(": error " in f for f in failures):
            break  # a bad query will not get better by waiting
        time.sleep(0.5)

    assert not failures, (
        f"{len(failures)} of {len(queries) * len(selections)} panel queries (and selections) returned nothing "
        f"after {time.monotonic() - live_site['started']:.0f}s:\n" + "\n".join(failures)
    )
