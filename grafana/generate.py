#!/usr/bin/env python3
"""Generate fleetd's Grafana dashboards (grafana/dashboards/*.json).

The JSON files are committed; edit this script and rerun it rather than editing them by
hand (tests/deploy/test_dashboards.py checks that they match):

    python grafana/generate.py

Every panel filters on the `site` and `rig` template variables. `site` comes from the
`site` external label that deploy/prometheus/prometheus.yml sets: it is on series only
once they leave the site Prometheus (federation or remote_write). On the site Prometheus
itself the variable has no values and `site=~""` / `site=~".*"` both match series with no
site label, so every panel still works.

Hash rates come from the recording rules in deploy/prometheus/rules/ (fleetd:rig_*).
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "fleetd-prometheus"}

# Label matchers shared by every query.
SITE = 'site=~"$site"'
RIGS = 'rig=~"$rig",site=~"$site"'
JTH = "suffix: J/TH"  # Grafana custom unit: joules per terahash


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series") -> dict:
    return {"expr": expr, "legendFormat": legend, "instant": instant, "range": not instant, "format": fmt}


def panel(kind: str, title: str, unit: str, targets: list[dict], *, w: int = 12, h: int = 8,
          description: str = "", options: dict | None = None, **extra) -> dict:  # fmt: skip
    for ref, t in zip("ABCDEFGH", targets):
        t["refId"] = ref
        t["datasource"] = DATASOURCE
    body = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options or {},
        "targets": targets,
    }
    body.update(extra)
    return body


def timeseries(title, unit, targets, **kw):
    kw.setdefault("options", {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "mean"]},
                              "tooltip": {"mode": "multi", "sort": "desc"}})  # fmt: skip
    return panel("timeseries", title, unit, targets, **kw)


def stat(title, unit, targets, **kw):
    kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "area"})
    return panel("stat", title, unit, targets, **kw)


def layout(panels: list[dict]) -> list[dict]:
    """Place panels left to right, wrapping at 24 columns; give each an id."""
    x = y = row_h = 0
    for pid, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"].update(x=x, y=y)
        p["id"] = pid
        x, row_h = x + w, max(row_h, h)
    return panels


def templating(*, rig: bool = True) -> dict:
    site = {
        "name": "site",
        "label": "Site",
        "type": "query",
        "datasource": DATASOURCE,
        # External label: present on federated / remote-written series only (see module docstring).
        "query": {"query": "label_values(fleetd_rig_info, site)", "refId": "site"},
        "definition": "label_values(fleetd_rig_info, site)",
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }
    variables = [site]
    if rig:
        variables.append({
            "name": "rig",
            "label": "Rig",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": 'label_values(fleetd_rig_info{site=~"$site"}, rig)', "refId": "rig"},
            "definition": 'label_values(fleetd_rig_info{site=~"$site"}, rig)',
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
            "sort": 1,
        })
    return {"list": variables}


def dashboard(uid: str, title: str, description: str, panels: list[dict], *, rig: bool = True) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["fleetd"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": templating(rig=rig),
        "annotations": {"list": []},
        "links": [{"title": "fleetd", "type": "dashboards", "tags": ["fleetd"], "asDropdown": True}],
        "panels": layout(panels),
    }


# --------------------------------------------------------------------------- Fleet overview

DEGRADED = (
    f'count((fleetd_rig_up{{{RIGS}}} == 1) and on (rig) ('
    f'fleetd:rig_hashrate:rate5m{{{RIGS}}} < on (rig) 0.8 * fleetd_rig_nominal_hashrate_hashes_per_second{{{RIGS}}}'
    f' or fleetd:rig_reject_ratio:rate5m{{{RIGS}}} > 0.02)) or vector(0)'
)


def fleet_overview() -> dict:
    efficiency_table = panel(
        "table", "Rigs by efficiency", JTH,
        [
            target(f"sort(fleetd:rig_efficiency_joules_per_terahash{{{RIGS}}})", instant=True, fmt="table"),
            target(f"fleetd:rig_hashrate:rate5m{{{RIGS}}}", instant=True, fmt="table"),
            target(f"max by (rig) (fleetd_rig_power_watts{{{RIGS}}})", instant=True, fmt="table"),
            target(f"max by (rig) (fleetd_rig_temperature_celsius{{{RIGS}}})", instant=True, fmt="table"),
        ],
        w=12, h=10,
        description="Most efficient first (lowest J/TH). Efficiency is power over the pool-side 5 m hash rate.",
        options={"showHeader": True, "sortBy": [{"displayName": "J/TH", "desc": False}]},
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "instance": True, "job": True, "site": True},
                "renameByName": {"Value #A": "J/TH", "Value #B": "Hash rate (5m)", "Value #C": "Power",
                                 "Value #D": "Hottest sensor"}}},
            {"id": "sortBy", "options": {"sort": [{"field": "J/TH", "desc": False}]}},
        ],
    )  # fmt: skip
    efficiency_table["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": "Hash rate (5m)"}, "properties": [{"id": "unit", "value": "Hs"}]},
        {"matcher": {"id": "byName", "options": "Power"}, "properties": [{"id": "unit", "value": "watt"}]},
        {"matcher": {"id": "byName", "options": "Hottest sensor"}, "properties": [{"id": "unit", "value": "celsius"}]},
    ]
    panels = [
        timeseries("Hash rate: pool-side vs reported", "Hs", [
            target(f"sum(fleetd:rig_hashrate:rate5m{{{RIGS}}})", "pool-side (5m)"),
            target(f"sum(fleetd_rig_reported_hashrate_hashes_per_second{{{RIGS}}})", "reported by rigs"),
            target(f"sum(fleetd_rig_nominal_hashrate_hashes_per_second{{{RIGS}}})", "nominal"),
        ], w=16, description="Pool-side is accepted share work (difficulty x 2^32 per share) per second."),
        stat("Rigs", "none", [
            target(f"count(fleetd_rig_up{{{RIGS}}} == 1) or vector(0)", "up", instant=True),
            target(f"count(fleetd_rig_up{{{RIGS}}} == 0) or vector(0)", "down", instant=True),
            target(DEGRADED, "degraded", instant=True),
        ], w=8, description="Degraded: up, but pool-side hash rate below 80 % of nominal or over 2 % of shares rejected (5 m)."),
        timeseries("Reject ratio by reason", "percentunit", [
            target(
                f'sum by (reason) (rate(fleetd_rig_shares_total{{result="rejected",{RIGS}}}[$__rate_interval]))'
                f" / ignoring (reason) group_left () sum(rate(fleetd_rig_shares_total{{{RIGS}}}[$__rate_interval]))",
                "{{reason}}"),
        ], w=12, description="Rejected shares of each reason over all shares submitted by the selected rigs."),
        timeseries("Total power", "watt", [
            target(f"sum(max by (rig) (fleetd_rig_power_watts{{{RIGS}}}))", "power"),
        ], w=6, description="Reported power, else the nameplate estimate."),
        stat("Fleet efficiency", JTH, [
            target(f"sum(max by (rig) (fleetd_rig_power_watts{{{RIGS}}})) / ((sum(fleetd:rig_hashrate:rate5m{{{RIGS}}}) / 1e12) > 0)",
                   "J/TH"),
        ], w=6, description="Total power over total pool-side 5 m hash rate, in joules per terahash."),
        panel("bargauge", "Hottest rigs", "celsius", [
            target(f"topk(10, max by (rig) (fleetd_rig_temperature_celsius{{{RIGS}}}))", "{{rig}}", instant=True),
        ], w=12, h=10, description="Highest sensor of each rig (chip or board), ten hottest.",
            options={"orientation": "horizontal", "displayMode": "gradient", "reduceOptions": {"calcs": ["lastNotNull"]}}),
        efficiency_table,
        stat("Blocks found", "none", [
            target(f"sum(increase(fleetd_rig_blocks_found_total{{{RIGS}}}[$__range]))", "in time range", instant=True),
            target(f"sum(fleetd_rig_blocks_found_total{{{RIGS}}})", "since fleetd started", instant=True),
        ], w=12, h=5, options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"}),
        timeseries("Hash rate by rig", "Hs", [
            target(f"fleetd:rig_hashrate:rate5m{{{RIGS}}}", "{{rig}}"),
        ], w=12, h=5),
    ]  # fmt: skip
    return dashboard("fleetd-fleet-overview", "fleetd / Fleet overview",
                     "Whole-site hash rate, rig health, rejects, power and efficiency.", panels)


# --------------------------------------------------------------------------- Rig detail


def rig_detail() -> dict:
    panels = [
        timeseries("Hash rate: pool-side 5m / 1h vs reported vs nominal", "Hs", [
            target(f"fleetd:rig_hashrate:rate5m{{{RIGS}}}", "{{rig}} pool-side 5m"),
            target(f"fleetd:rig_hashrate:rate1h{{{RIGS}}}", "{{rig}} pool-side 1h"),
            target(f"fleetd_rig_reported_hashrate_hashes_per_second{{{RIGS}}}", "{{rig}} reported"),
            target(f"fleetd_rig_nominal_hashrate_hashes_per_second{{{RIGS}}}", "{{rig}} nominal"),
        ], w=24, h=9),
        timeseries("Shares", "cps", [
            target(f'sum by (rig) (rate(fleetd_rig_shares_total{{result="accepted",{RIGS}}}[$__rate_interval]))',
                   "{{rig}} accepted"),
            target(f'sum by (rig, reason) (rate(fleetd_rig_shares_total{{result="rejected",{RIGS}}}[$__rate_interval]))',
                   "{{rig}} rejected: {{reason}}"),
        ], description="Shares per second."),
        timeseries("Reject ratio", "percentunit", [
            target(f"fleetd:rig_reject_ratio:rate5m{{{RIGS}}}", "{{rig}} all reasons"),
            target(f"fleetd:rig_reject_ratio_by_reason:rate5m{{{RIGS}}}", "{{rig}} {{reason}}"),
        ], description="Rejected over all shares, 5 m."),
        timeseries("Power", "watt", [
            target(f"fleetd_rig_power_watts{{{RIGS}}}", "{{rig}} ({{source}})"),
        ], w=8, description="source=reported from the rig's API, nameplate when the firmware reports none."),
        stat("Energy in time range", "joule", [
            target(f"sum by (rig) (increase(fleetd_rig_energy_joules_total{{{RIGS}}}[$__range]))", "{{rig}}",
                   instant=True),
        ], w=8, description="Integrated power over the dashboard's time range (1 kWh = 3.6 MJ)."),
        timeseries("Efficiency", JTH, [
            target(f"fleetd:rig_efficiency_joules_per_terahash{{{RIGS}}}", "{{rig}}"),
        ], w=8, description="Power over pool-side 5 m hash rate."),
        timeseries("Temperatures", "celsius", [
            target(f"fleetd_rig_temperature_celsius{{{RIGS}}}", "{{rig}} {{sensor}}"),
        ]),
        timeseries("Fans", "rotrpm", [
            target(f"fleetd_rig_fan_rpm{{{RIGS}}}", "{{rig}} fan {{fan}}"),
        ]),
        timeseries("Share difficulty", "short", [
            target(f"fleetd_rig_difficulty{{{RIGS}}}", "{{rig}}"),
        ], w=8),
        stat("Uptime", "s", [
            target(f"fleetd_rig_uptime_seconds{{{RIGS}}}", "{{rig}}", instant=True),
        ], w=8, description="As the rig's firmware reports it."),
        stat("Since last share", "s", [
            target(f"time() - fleetd_rig_last_share_timestamp_seconds{{{RIGS}}}", "{{rig}}", instant=True),
        ], w=8),
        panel("table", "Rigs", "none", [
            target(f"max by (rig, model, firmware, ip) (fleetd_rig_info{{{RIGS}}}) * on (rig) group_left () "
                   f"max by (rig) (fleetd_rig_up{{{RIGS}}})", instant=True, fmt="table"),
        ], w=24, h=6, description="Identity and up state (Value: 1 up, 0 down).",
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                              "renameByName": {"Value": "up"}}}]),
    ]  # fmt: skip
    return dashboard("fleetd-rig-detail", "fleetd / Rig detail",
                     "One rig (or a selection): hash rate, shares, power, temperatures, fans.", panels)


# --------------------------------------------------------------------------- Pool and daemon


def pool_daemon() -> dict:
    bucket = f"fleetd_share_validation_seconds_bucket{{{SITE}}}"
    panels = [
        timeseries("Stratum connections", "short", [
            target(f"sum(fleetd_connections{{{SITE}}})", "connections"),
        ], w=8),
        timeseries("Share submits", "cps", [
            target(f"sum(rate(fleetd_share_validation_seconds_count{{{SITE}}}[$__rate_interval]))", "submits"),
            target(f"sum by (result) (rate(fleetd_rig_shares_total{{{SITE}}}[$__rate_interval]))", "{{result}}"),
        ], w=8, description="mining.submit calls validated per second, and their outcome."),
        timeseries("Submit latency", "s", [
            target(f"histogram_quantile(0.5, sum by (le) (rate({bucket}[$__rate_interval])))", "p50"),
            target(f"histogram_quantile(0.9, sum by (le) (rate({bucket}[$__rate_interval])))", "p90"),
            target(f"histogram_quantile(0.99, sum by (le) (rate({bucket}[$__rate_interval])))", "p99"),
        ], w=8, description="Quantiles of fleetd_share_validation_seconds: time to check and answer a submit."),
        panel("heatmap", "Validation time", "s", [
            target(f"sum by (le) (increase({bucket}[$__rate_interval]))", "{{le}}", fmt="heatmap"),
        ], w=12, options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1}),
        timeseries("Mean validation time", "s", [
            target(f"sum(rate(fleetd_share_validation_seconds_sum{{{SITE}}}[$__rate_interval]))"
                   f" / sum(rate(fleetd_share_validation_seconds_count{{{SITE}}}[$__rate_interval]))", "mean"),
        ], w=12),
        timeseries("Jobs published", "opm", [
            target(f"sum(rate(fleetd_jobs_total{{{SITE}}}[$__rate_interval])) * 60", "jobs"),
        ], w=8, description="Jobs sent to miners per minute."),
        timeseries("Template age", "s", [
            target(f"time() - fleetd_source_last_job_timestamp_seconds{{{SITE}}}", "{{kind}}"),
        ], w=8, description="Time since the job source last produced a new job."),
        stat("Job source", "none", [
            target(f"fleetd_source_up{{{SITE}}}", "{{kind}}", instant=True),
        ], w=8, description="1 when the job source (bitcoind, upstream pool or demo chain) is up.",
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"},
            mappings=[{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"},
                                                    "1": {"text": "UP", "color": "green"}}}]),
        stat("Blocks", "none", [
            target(f"sum(fleetd_blocks_submitted_total{{{SITE}}})", "submitted", instant=True),
            target(f"sum(fleetd_blocks_found_total{{{SITE}}})", "found (accepted)", instant=True),
        ], w=6, options={"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "none"}),
        timeseries("Process CPU", "percentunit", [
            target(f'rate(process_cpu_seconds_total{{job="fleetd",{SITE}}}[$__rate_interval])', "{{instance}}"),
        ], w=6, description="Share of one CPU core."),
        timeseries("Process memory", "bytes", [
            target(f'process_resident_memory_bytes{{job="fleetd",{SITE}}}', "{{instance}} resident"),
        ], w=6),
        timeseries("Open file descriptors", "percentunit", [
            target(f'process_open_fds{{job="fleetd",{SITE}}} / process_max_fds{{job="fleetd",{SITE}}}',
                   "{{instance}}"),
        ], w=6, description="Of the limit (LimitNOFILE); every rig holds one connection."),
    ]  # fmt: skip
    return dashboard("fleetd-pool-daemon", "fleetd / Pool and daemon",
                     "Stratum connections, submits, validation time, jobs, job source and the process.",
                     panels, rig=False)


DASHBOARDS = {
    "fleet-overview.json": fleet_overview,
    "rig-detail.json": rig_detail,
    "pool-daemon.json": pool_daemon,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build))
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
