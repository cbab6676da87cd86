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

import argparse
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


def row(title: str) -> dict:
    """A row header (expanded): the panels after it, up to the next row, belong to it."""
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


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


UP_DOWN = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]


def up_down(p: dict) -> dict:
    """A stat of a 0/1 "up" gauge: DOWN on red, UP on green (mappings live in the field config)."""
    p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"}
    return with_overrides(p, mappings=UP_DOWN, thresholds=thresholds("red", (1, "green")))


JOURNAL_STALE_SECONDS = 180  # alert FleetdJournalStale (deploy/prometheus/rules/fleetd-alerts.yml)


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
        up_down(stat("Job source", "none", [
            target(f"fleetd_source_up{{{SITE}}}", "{{kind}}", instant=True),
        ], w=8, description="1 when the job source (bitcoind, upstream pool or demo chain) is up.")),
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
        # [journal]: with enabled = false fleetd exports no fleetd_journal_* series and these panels are empty.
        row("Journal"),
        up_down(stat("Journal", "none", [
            target(f"fleetd_journal_up{{{SITE}}}", "{{instance}}", instant=True),
        ], w=6, description="UP while the journal file takes writes; DOWN while it refuses them (alert "
                            "FleetdJournalDown after 5 m). The rigs are served either way.")),
        with_overrides(stat("Since last journal flush", "s", [
            target(f"time() - fleetd_journal_last_flush_timestamp_seconds{{{SITE}}}", "{{instance}}", instant=True),
        ], w=6, description=f"Age of the newest rig state in the journal. The writer flushes every [journal] "
                            f"flush_seconds (1 s by default); red from {JOURNAL_STALE_SECONDS} s, where alert "
                            f"FleetdJournalStale starts counting. No value until the first flush."),
            thresholds=thresholds("green", (JOURNAL_STALE_SECONDS, "red"))),
        timeseries("Journal pending rows", "short", [
            target(f"fleetd_journal_pending_rows{{{SITE}}}", "{{instance}}"),
        ], w=12, description="Rows waiting for the next flush; it grows while writes fail."),
        timeseries("Journal dropped writes", "wps", [
            target(f"rate(fleetd_journal_dropped_writes_total{{{SITE}}}[5m])", "{{instance}}"),
        ], w=12, description="Failed journal writes (flushes, found blocks, opens) per second, 5 m; what they "
                             "carried is kept and retried. Alert FleetdJournalDroppingWrites on any in 10 m."),
        timeseries("Journal share of the daemon's CPU", "percentunit", [
            target(f"rate(fleetd_journal_cpu_seconds_total{{{SITE}}}[$__rate_interval]) / "
                   f"rate(process_cpu_seconds_total{{{SITE}}}[$__rate_interval])", "{{instance}}"),
        ], w=12, description="CPU the journal spends collecting each flush on the event loop and writing in its "
                             "thread, over the whole process's CPU: what keeping the history costs."),
        timeseries("Journal file size", "bytes", [
            target(f"fleetd_journal_file_bytes{{{SITE}}}", "{{instance}}"),
        ], w=12, description="The journal file and its write-ahead log. Alert FleetdJournalFileLarge above 10 GB "
                             "for an hour: retention and compaction do not keep up."),
    ]  # fmt: skip
    return dashboard("fleetd-pool-daemon", "fleetd / Pool and daemon",
                     "Stratum connections, submits, validation time, jobs, job source, the process and the journal.",
                     panels, rig=False)


# --------------------------------------------------------------------------- Economics

USD = "currencyUSD"
BTC = "currencyBTC"
EPOCH_MS = "dateTimeAsIso"  # Grafana date units take milliseconds


def thresholds(base: str, *steps: tuple[float, str]) -> dict:
    """Grafana thresholds: base colour, then (value, colour) steps upwards."""
    return {"mode": "absolute",
            "steps": [{"color": base, "value": None}, *({"color": c, "value": v} for v, c in steps)]}  # fmt: skip


RED_BELOW_ZERO = thresholds("red", (0, "green"))  # a margin
NEUTRAL = thresholds("text")  # a figure that is neither good nor bad (Grafana's default turns red at 80)


def _override(matcher: str, options: str, properties: dict) -> dict:
    # Property ids with a dot (custom.axisPlacement) are passed as keyword arguments with __ for the dot.
    return {"matcher": {"id": matcher, "options": options},
            "properties": [{"id": k.replace("__", "."), "value": v} for k, v in properties.items()]}


def by_ref(ref: str, **properties) -> dict:
    """Field override for the fields of one query (refId)."""
    return _override("byFrameRefID", ref, properties)


def by_name(name: str, **properties) -> dict:
    """Field override for one (table) column."""
    return _override("byName", name, properties)


def with_overrides(p: dict, *overrides: dict, **defaults) -> dict:
    p["fieldConfig"]["overrides"] = list(overrides)
    p["fieldConfig"]["defaults"].update(defaults)
    return p


def rig_value(metric: str) -> str:
    """One value per rig. The (site, rig) grouping drops __name__ and scrape labels so table queries join."""
    return f"max by (site, rig) ({metric}{{{RIGS}}})"


def mapping(values: dict[str, tuple[str, str]]) -> list[dict]:
    """Grafana value mappings: {value: (text, colour)}."""
    options = {v: {"text": text, "color": color, "index": i} for i, (v, (text, color)) in enumerate(values.items())}
    return [{"type": "value", "options": options}]


STALE = mapping({"0": ("fresh", "green"), "1": ("STALE", "red")})
CURTAIL = mapping({"0": ("run", "green"), "1": ("curtail", "red")})
TABLE_HIDDEN = {"Time": True}  # site stays: on a central Prometheus rig names may repeat across sites


def rig_table(title: str, columns: list[tuple[str, str, str]], *, sort: str, desc: bool = False,
              mappings: dict[str, list[dict]] | None = None, only: str | None = None, **kw) -> dict:
    """An instant table, one row per rig: columns are (header, expr, unit), merged on (site, rig).

    only: the header of a 0/1 column; Grafana keeps the rows where it is 1 and hides it. Filtering
    here rather than in PromQL keeps every query answering while no rig is flagged.
    """
    value_of = {header: f"Value #{ref}" for ref, (header, _, _) in zip("ABCDEFGH", columns)}
    keep = [] if only is None else [{"id": "filterByValue", "options": {"type": "include", "match": "any", "filters": [
        {"fieldName": value_of[only], "config": {"id": "equal", "options": {"value": 1}}}]}}]  # fmt: skip
    t = panel("table", title, "none", [target(expr, instant=True, fmt="table") for _, expr, _ in columns],
              options={"showHeader": True, "sortBy": [{"displayName": sort, "desc": desc}]},
              transformations=[
                  {"id": "merge", "options": {}},
                  *keep,
                  {"id": "organize", "options": {
                      "excludeByName": {**TABLE_HIDDEN, **({value_of[only]: True} if only else {})},
                      "renameByName": {v: k for k, v in value_of.items()}}},
                  {"id": "sortBy", "options": {"sort": [{"field": sort, "desc": desc}]}},
              ], **kw)  # fmt: skip
    mappings = mappings or {}
    columns_config = [by_name(header, unit=unit, **({"mappings": mappings[header]} if header in mappings else {}))
                      for header, _, unit in columns]  # fmt: skip
    return with_overrides(t, *columns_config)


def economics() -> dict:
    margin = rig_value("fleetd_rig_margin_usd_per_day")
    jth = rig_value("fleetd_rig_efficiency_joules_per_terahash")
    breakeven = rig_value("fleetd_rig_breakeven_power_price_usd_per_kwh")
    rig_price = rig_value("fleetd_rig_power_price_usd_per_kwh")
    recommended = "fleetd_rig_curtail_recommended"
    for_target = "fleetd_rig_curtail_for_target"
    panels = [
        with_overrides(timeseries("Hashprice (per PH/s per day)", USD, [
            target(f"fleetd_hashprice_usd_per_petahash_day{{{SITE}}}", "USD {{site}}"),
            target(f"fleetd_hashprice_btc_per_petahash_day{{{SITE}}}", "BTC {{site}}"),
        ], description="What a petahash per second of work earns in a day at the current difficulty, block "
                       "reward and BTC price. The USD figure is absent while the BTC price is stale."),
            by_ref("B", unit=BTC, custom__axisPlacement="right")),
        with_overrides(timeseries("Network hash rate and difficulty", "Hs", [
            target(f"fleetd_network_hashrate_hashes_per_second{{{SITE}}}", "network hash rate {{site}}"),
            target(f"fleetd_network_difficulty{{{SITE}}}", "difficulty {{site}}"),
        ], description="Network hash rate implied by the difficulty (difficulty x 2^32 / 600 s)."),
            by_ref("B", unit="short", custom__axisPlacement="right")),
        timeseries("Block reward", BTC, [
            target(f"fleetd_block_reward_btc{{{SITE}}}", "reward {{site}}"),
            target(f"fleetd_block_subsidy_btc{{{SITE}}}", "subsidy {{site}}"),
            target(f"fleetd_block_fees_btc{{{SITE}}}", "fees ({{origin}}) {{site}}"),
        ], w=8, description="Subsidy of the block being mined plus the average fees: from the block template, "
                            "or the configured fees_btc_per_block when the source has no templates."),
        with_overrides(timeseries("BTC price", USD, [
            target(f"fleetd_btc_price_usd{{{SITE}}}", "{{origin}} {{site}}"),
            target(f"fleetd_btc_price_stale{{{SITE}}}", "stale {{site}}"),
        ], w=10, description="The price fleetd values revenue at. While the price is older than the feed's "
                             "max_age_seconds it is withheld (a gap here); red bars mark the stale time."),
            by_ref("B", unit="none", min=0, max=1, color={"mode": "fixed", "fixedColor": "red"},
                   custom__axisPlacement="right", custom__drawStyle="bars", custom__fillOpacity=30)),
        # No fleetd_btc_price_age_seconds here: a configured price has none (feed only), and every
        # query must return data in the demo, which uses a configured price.
        with_overrides(stat("BTC price now", USD, [
            target(f"fleetd_btc_price_stale{{{SITE}}}", "{{site}}", instant=True),
            target(f"fleetd_btc_price_usd{{{SITE}}}", "{{origin}} {{site}}", instant=True),
        ], w=6, description="STALE: no fresh price, so USD revenue, margins and the curtailment advice are withheld "
                            "(alert FleetdBtcPriceStale); the feed's age is fleetd_btc_price_age_seconds and in "
                            "GET /api/v1/economics.",
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"}),
            by_ref("A", unit="none", mappings=STALE), thresholds=thresholds("blue")),
        timeseries("Fleet revenue vs power cost (USD/day)", USD, [
            target(f"sum(fleetd_fleet_revenue_usd_per_day{{{SITE}}})", "revenue"),
            target(f"sum(fleetd_fleet_power_cost_usd_per_day{{{SITE}}})", "power cost"),
            target(f"sum(fleetd_fleet_margin_usd_per_day{{{SITE}}})", "margin"),
        ], description="fleetd's whole-fleet figures for the selected sites (all rigs, whatever $rig selects), "
                       "at the current power price: revenue at the pool-side hash rate, cost at the power drawn."),
        timeseries("Margin per MW vs AI hosting offer (USD/MW/day)", USD, [
            target(f"fleetd_fleet_margin_usd_per_megawatt_day{{{SITE}}}", "mining margin {{site}}"),
            target(f"fleetd_ai_hosting_offer_usd_per_megawatt_day{{{SITE}}}", "AI hosting offer {{site}}"),
        ], description="The fleet's margin per megawatt drawn, next to the configured ai_hosting_usd_per_mw_day: "
                       "what the same power would earn hosting instead of mining."),
        with_overrides(panel("bargauge", "Margin by rig, lowest 20 (USD/day)", USD, [
            target(f"sort(bottomk(20, {margin}))", "{{rig}}", instant=True),
        ], w=8, h=10, description="Revenue minus power cost of each rig at its own power price, worst first.",
            options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                     "reduceOptions": {"calcs": ["lastNotNull"]}}), thresholds=RED_BELOW_ZERO),
        timeseries("Breakeven vs power price (USD/kWh)", USD, [
            target(f"fleetd_fleet_breakeven_power_price_usd_per_kwh{{{SITE}}}", "fleet breakeven {{site}}"),
            target(f"fleetd_power_price_usd_per_kwh{{{SITE}}}", "site power price now {{site}}"),
            target(f"min({breakeven})", "lowest rig breakeven (selected rigs)"),
        ], w=16, h=10,
            description="Breakeven: the power price at which revenue only just pays for the power. The site price "
                        "follows the time-of-use schedule; a rig whose breakeven is below its own price loses money."),
        rig_table("Rig economics", [
            ("Margin", margin, USD),
            ("Revenue", rig_value("fleetd_rig_revenue_usd_per_day"), USD),
            ("Power cost", rig_value("fleetd_rig_power_cost_usd_per_day"), USD),
            ("Breakeven", breakeven, USD),
            ("Power price", rig_price, USD),
            ("Headroom", f"{breakeven} - {rig_price}", USD),
            ("J/TH", jth, JTH),
            ("Advice", rig_value(recommended), "none"),
        ], sort="Margin", w=24, h=10,
            description="USD per day, and USD per kWh for breakeven, the rig's own power price (per-rig and group "
                        "overrides) and headroom (breakeven minus price). Advice: curtail when the margin is negative.",
            mappings={"Advice": CURTAIL}),
        with_overrides(stat("Next difficulty adjustment", "none", [
            target(f"fleetd_difficulty_adjustment_projected_ratio{{{SITE}}}", "projected change {{site}}",
                   instant=True),
            target(f"fleetd_difficulty_adjustment_blocks_remaining{{{SITE}}}", "blocks to go {{site}}", instant=True),
            target(f"fleetd_difficulty_adjustment_estimated_timestamp_seconds{{{SITE}}} * 1000",
                   "expected at {{site}}", instant=True),
            target(f"fleetd_network_height{{{SITE}}}", "block being mined {{site}}", instant=True),
        ], w=16, h=6, description="Projected from the epoch's block times so far: a negative change raises hashprice. "
                                  "Shown once enough blocks of the epoch are known.",
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "none"}),
            # Lower difficulty is good news for the miner: green below zero.
            by_ref("A", unit="percentunit", decimals=2, thresholds=thresholds("green", (0, "orange"))),
            by_ref("C", unit=EPOCH_MS), thresholds=NEUTRAL),
        with_overrides(stat("Epoch blocks known", "none", [
            target(f"fleetd_difficulty_epoch_blocks_known{{{SITE}}}", "{{origin}} {{site}}", instant=True),
        ], w=8, h=6, description="Blocks of the current epoch the projection rests on: headers (bitcoind), observed "
                                 "(blocks fleetd saw found) or modelled (the demo).",
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "none"}),
            thresholds=NEUTRAL),
        rig_table("Rigs to curtail: margin below zero", [
            ("Margin", margin, USD),
            ("J/TH", jth, JTH),
            ("Breakeven", breakeven, USD),
            ("Power price", rig_price, USD),
            ("curtail", rig_value(recommended), "none"),
        ], sort="Margin", only="curtail", w=10, h=8,
            description="Rigs with fleetd_rig_curtail_recommended = 1: negative margin at their current power price. "
                        "Empty when every rig pays its way. Same list: GET /api/v1/economics."),
        with_overrides(stat("Curtailment target", "watt", [
            target(f"fleetd_curtail_target_watts{{{SITE}}}", "target {{site}}", instant=True),
            target(f"fleetd_curtail_plan_watts{{{SITE}}}", "plan sheds {{site}}", instant=True),
            target(f"fleetd_curtail_plan_lost_revenue_usd_per_day{{{SITE}}}", "revenue lost/day {{site}}",
                   instant=True),
        ], w=4, h=8, description="The configured curtail_target_kw, the power the least-revenue-loss plan sheds, "
                                 "and the revenue it gives up.",
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "none",
                     "orientation": "horizontal"}),
            by_ref("C", unit=USD), thresholds=NEUTRAL),
        rig_table("Curtailment plan for the target", [
            ("Revenue", rig_value("fleetd_rig_revenue_usd_per_day"), USD),
            ("Power", rig_value("fleetd_rig_power_watts"), "watt"),
            ("Margin", margin, USD),
            ("in plan", rig_value(for_target), "none"),
        ], sort="Power", desc=True, only="in plan", w=10, h=8,
            description="Rigs with fleetd_rig_curtail_for_target = 1: the set to switch off to shed the target "
                        "power while losing the least revenue."),
    ]  # fmt: skip
    return dashboard("fleetd-economics", "fleetd / Economics",
                     "Hashprice, network, BTC price, revenue, power cost and margin per rig and fleet, breakeven "
                     "power price, difficulty projection and curtailment.", panels)


DASHBOARDS = {
    "fleet-overview.json": fleet_overview,
    "rig-detail.json": rig_detail,
    "pool-daemon.json": pool_daemon,
    "economics.json": economics,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build))
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
