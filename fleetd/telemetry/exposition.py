"""Per-rig families in the Prometheus text format, written directly.

A large site has 10,000 rigs and some 25 series each. prometheus_client's generic
writer re-validates every label name and formats every sample through several calls,
about 10 µs a sample: seconds per scrape on the event loop that also answers shares.
Here each rig's label set is escaped once and every family is one pass of f-strings;
the daemon's own families still go through prometheus_client. promtool checks the
result in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

from fleetd.economics.settings import HASHRATE_WINDOWS
from fleetd.rigs.registry import HASHES_PER_DIFFICULTY, Rig, RigRegistry

# The windows revenue and curtailment can be judged over ([economics] hashrate_window): the
# minute's is too short to act on, and leaving it out saves a third of these series.
CONFIDENCE_WINDOWS = HASHRATE_WINDOWS

# (name, type, help); in the 0.0.4 text format a counter's HELP and TYPE carry its _total name
FAMILIES = (
    ("fleetd_rig_hashes_total", "counter", "Accepted share work in hashes (difficulty x 2^32 per share); rate() is the pool-side hash rate."),
    ("fleetd_rig_shares_total", "counter", "Shares answered, by result and reject reason."),
    ("fleetd_rig_hashrate_shares", "gauge", "Effective number of shares behind the pool-side hash rate over the window (exponentially weighted, time constant 5m or 1h); its relative standard error is 1/sqrt of this."),
    ("fleetd_rig_hashrate_lower_hashes_per_second", "gauge", "Lower bound of the 95 % confidence interval of the pool-side hash rate over the window (shares are a Poisson process)."),
    ("fleetd_rig_hashrate_upper_hashes_per_second", "gauge", "Upper bound of the 95 % confidence interval of the pool-side hash rate over the window; absent while a rig has sent no share and has no difficulty."),
    ("fleetd_rig_power_watts", "gauge", "Power draw: as the rig reports it, or its nameplate scaled by hash rate."),
    ("fleetd_rig_energy_joules_total", "counter", "Energy drawn, integrated over polls."),
    ("fleetd_rig_reported_hashrate_hashes_per_second", "gauge", "Hash rate the rig itself reports."),
    ("fleetd_rig_nominal_hashrate_hashes_per_second", "gauge", "Nameplate hash rate (inventory or model catalogue)."),
    ("fleetd_rig_temperature_celsius", "gauge", "Rig temperatures by sensor."),
    ("fleetd_rig_fan_rpm", "gauge", "Fan speeds."),
    ("fleetd_rig_uptime_seconds", "gauge", "Uptime the rig reports."),
    ("fleetd_rig_up", "gauge", "1 when the rig is connected and, if polled, polled within two intervals (or connected for less)."),
    ("fleetd_rig_last_share_timestamp_seconds", "gauge", "Unix time of the rig's last accepted share."),
    ("fleetd_rig_difficulty", "gauge", "Share difficulty in force: that of the latest job sent to the rig."),
    ("fleetd_rig_efficiency_joules_per_terahash", "gauge", "Watts over the pool-side 5-minute hash rate."),
    ("fleetd_rig_blocks_found_total", "counter", "Blocks found by the rig."),
    ("fleetd_rig_info", "gauge", "Rig identity."),
)  # fmt: skip
# Upstream mode only: what the upstream pool made of each rig's forwarded shares.
UPSTREAM_FAMILIES = (
    ("fleetd_rig_upstream_shares_total", "counter", "Shares forwarded to the upstream pool, and its answers: accepted, or rejected by reason (lost: the connection ended first; no_upstream: no pool)."),
    ("fleetd_rig_upstream_hashes_total", "counter", "Work the upstream pool credited in hashes (its difficulty x 2^32 per accepted share)."),
    ("fleetd_rig_upstream_last_accepted_timestamp_seconds", "gauge", "Unix time the upstream pool last accepted a share of the rig."),
)  # fmt: skip


def render(rigs: RigRegistry, now: float, upstream: Mapping | None = None, curtailed: Collection[str] = ()) -> str:
    """Every per-rig family for every rig, in the text exposition format (version 0.0.4).

    ``upstream``: each worker's upstream results (``UpstreamWorkerStats`` by name) in
    upstream mode, else None and the upstream families are left out. The rigs fleetd holds
    off (``curtailed``) carry ``curtailed="true"`` on every series: the alert rules leave
    them out, and FleetdRigCurtailed inhibits the rest in Alertmanager.
    """
    families = FAMILIES if upstream is None else FAMILIES + UPSTREAM_FAMILIES
    lines: dict[str, list[str]] = {name: [] for name, _, _ in families}
    for rig in rigs:
        label = f'rig="{escape(rig.name)}"' + (',curtailed="true"' if rig.name in curtailed else "")
        _rig_lines(rigs, rig, label, now, lines)
        if upstream is not None:
            _upstream_lines(label, upstream.get(rig.name), lines)
    out: list[str] = []
    for name, kind, help_text in families:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        out.extend(lines[name])
    return "".join(out)


def _rig_lines(rigs: RigRegistry, rig: Rig, label: str, now: float, lines: dict[str, list[str]]) -> None:
    lines["fleetd_rig_hashes_total"].append(f"fleetd_rig_hashes_total{{{label}}} {value(rig.accepted_hashes)}\n")
    shares = lines["fleetd_rig_shares_total"]
    shares.append(f'fleetd_rig_shares_total{{{label},result="accepted",reason=""}} {rig.accepted}\n')
    for reason, count in list(rig.rejected.items()):
        shares.append(f'fleetd_rig_shares_total{{{label},result="rejected",reason="{escape(reason)}"}} {count}\n')
    effective = lines["fleetd_rig_hashrate_shares"]
    lower = lines["fleetd_rig_hashrate_lower_hashes_per_second"]
    upper = lines["fleetd_rig_hashrate_upper_hashes_per_second"]
    for window in CONFIDENCE_WINDOWS:
        estimate = rig.hashrate_estimate(window, now, rigs.credit_scale)
        labels = f'{label},window="{window}"'
        # Six significant digits: these are statistics, unsure in their first. Finite floats all (an
        # upper bound that is not is left out), so value()'s checks are not needed.
        effective.append(f"fleetd_rig_hashrate_shares{{{labels}}} {estimate.shares:.6g}\n")
        lower.append(f"fleetd_rig_hashrate_lower_hashes_per_second{{{labels}}} {estimate.lower:.6g}\n")
        if estimate.upper != math.inf:
            upper.append(f"fleetd_rig_hashrate_upper_hashes_per_second{{{labels}}} {estimate.upper:.6g}\n")
    watts, source = rig.power(now)
    if watts is not None:
        lines["fleetd_rig_power_watts"].append(f'fleetd_rig_power_watts{{{label},source="{source}"}} {value(watts)}\n')
    lines["fleetd_rig_energy_joules_total"].append(f"fleetd_rig_energy_joules_total{{{label}}} {value(rig.energy_joules)}\n")
    reading = rig.reading
    if reading is not None:
        if reading.hashrate is not None:
            lines["fleetd_rig_reported_hashrate_hashes_per_second"].append(
                f"fleetd_rig_reported_hashrate_hashes_per_second{{{label}}} {value(reading.hashrate)}\n"
            )
        _labelled(lines["fleetd_rig_temperature_celsius"], "fleetd_rig_temperature_celsius", label, "sensor", reading.temperatures.items())
        _labelled(lines["fleetd_rig_fan_rpm"], "fleetd_rig_fan_rpm", label, "fan", reading.fans.items())
        if reading.uptime is not None:
            lines["fleetd_rig_uptime_seconds"].append(f"fleetd_rig_uptime_seconds{{{label}}} {value(reading.uptime)}\n")
    _, nominal = rig.nameplate()
    if nominal:
        lines["fleetd_rig_nominal_hashrate_hashes_per_second"].append(
            f"fleetd_rig_nominal_hashrate_hashes_per_second{{{label}}} {value(nominal)}\n"
        )
    lines["fleetd_rig_up"].append(f"fleetd_rig_up{{{label}}} {1 if rigs.up(rig, now) else 0}\n")
    if rig.last_share is not None:
        lines["fleetd_rig_last_share_timestamp_seconds"].append(
            f"fleetd_rig_last_share_timestamp_seconds{{{label}}} {value(rig.last_share)}\n"
        )
    lines["fleetd_rig_difficulty"].append(f"fleetd_rig_difficulty{{{label}}} {value(rig.difficulty)}\n")
    efficiency = rig.efficiency(now)
    if efficiency is not None:
        lines["fleetd_rig_efficiency_joules_per_terahash"].append(
            f"fleetd_rig_efficiency_joules_per_terahash{{{label}}} {value(efficiency)}\n"
        )
    lines["fleetd_rig_blocks_found_total"].append(f"fleetd_rig_blocks_found_total{{{label}}} {rig.blocks}\n")
    lines["fleetd_rig_info"].append(
        f'fleetd_rig_info{{{label},model="{escape(rig.model or "")}",firmware="{escape(rig.firmware or "")}",'
        f'ip="{escape(rig.ip or "")}"}} 1\n'
    )


def _upstream_lines(label: str, stats, lines: dict[str, list[str]]) -> None:
    shares = lines["fleetd_rig_upstream_shares_total"]
    forwarded, accepted, work = (0, 0, 0.0) if stats is None else (stats.forwarded, stats.accepted, stats.accepted_work)
    shares.append(f'fleetd_rig_upstream_shares_total{{{label},result="forwarded",reason=""}} {forwarded}\n')
    shares.append(f'fleetd_rig_upstream_shares_total{{{label},result="accepted",reason=""}} {accepted}\n')
    lines["fleetd_rig_upstream_hashes_total"].append(
        f"fleetd_rig_upstream_hashes_total{{{label}}} {value(work * HASHES_PER_DIFFICULTY)}\n"
    )
    if stats is None:
        return
    for reason, count in list(stats.rejected.items()):
        shares.append(f'fleetd_rig_upstream_shares_total{{{label},result="rejected",reason="{escape(reason)}"}} {count}\n')
    if stats.last_accepted is not None:
        lines["fleetd_rig_upstream_last_accepted_timestamp_seconds"].append(
            f"fleetd_rig_upstream_last_accepted_timestamp_seconds{{{label}}} {value(stats.last_accepted)}\n"
        )


def _labelled(out: list[str], name: str, label: str, key: str, items: Iterable[tuple[str, float]]) -> None:
    for item, number in items:
        out.append(f'{name}{{{label},{key}="{escape(str(item))}"}} {value(number)}\n')


def escape(text: str) -> str:
    """A label value as the text format needs it (backslash, double quote, newline)."""
    if "\\" in text or '"' in text or "\n" in text:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def tidy(number: float | None) -> float | None:
    """A derived figure to 12 significant digits: drops the binary noise its arithmetic leaves
    (6.501599999999999 for 6.5016), far below the precision of any input it rests on."""
    return None if number is None else float(f"{number:.12g}")


def value(number: float) -> str:
    if math.isfinite(number):
        return repr(float(number))
    return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")
