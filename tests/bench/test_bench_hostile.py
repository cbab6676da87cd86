"""``fleetd bench hostile``: a tiny, bounded run of the real thing (server, good rig and hostile peers as processes).

Only what cannot flake is asserted: the good rig's shares all accepted, no rig from a hostile
name, and the counters the configuration guarantees. Latency values are never asserted.
"""

from __future__ import annotations

import random
import re

import pytest

from fleetd.bench import hostile
from fleetd.cli import main
from fleetd.config import parse

TINY = hostile.HostileOptions(
    idle_connections=200,
    flood_names=10_000,  # enough for the held connections to pass the per-address worker limit
    fuzz_connections=120,
    seconds=2.0,
    warmup=0.3,
    repeats=1,
    max_connections_per_ip=100,
)


@pytest.fixture(scope="module")
def run() -> tuple[hostile.HostileSummary, str]:
    summary = hostile.measure(TINY)
    return summary, hostile.format_report(TINY, summary)


def test_the_report_has_quiet_and_hostile_figures_and_their_ratio(run):
    _, text = run
    assert text.startswith("fleetd bench hostile: fleetd serve (demo source, difficulty 1e-09) on loopback")
    assert "median of 1 quiet/hostile pair of 2 s" in text
    for label in ("p50 send-to-reply (ms)", "p99 send-to-reply (ms)", "server CPU (cores)",
                  "server RSS at window end (MiB)"):  # fmt: skip
        match = re.search(rf"^  {re.escape(label)}\s+([\d.,]+|n/a)\s+([\d.,]+|n/a)\s+([\d.]+|n/a)$", text, re.M)
        assert match, f"{label!r} not in report:\n{text}"
    assert re.search(r"^  p99 send-to-reply \(ms\)\s+[\d.]+\s+[\d.]+\s+[\d.]+$", text, re.M), text
    for family in ("refused", "auth_failures", "disconnects", "bans"):
        assert re.search(rf"^  fleetd_stratum_{family}_total\s+\S", text, re.M), text


def test_every_valid_share_of_the_good_rig_is_accepted(run):
    summary, text = run
    submitted, accepted, rejected, dropped = summary.good_shares
    assert submitted > 0 and accepted == submitted and rejected == dropped == 0
    assert summary.all_accepted
    assert f"good rig: {accepted:,} of {submitted:,} valid shares accepted, 0 rejected, 0 connections dropped:" \
           " all accepted" in text  # fmt: skip
    for pair in summary.pairs:  # quiet and hostile alike, each with every connection logged in
        assert pair.quiet["connections_ready"] == pair.hostile["connections_ready"] == TINY.connections


def test_no_rig_comes_from_a_hostile_name(run):
    summary, text = run
    good = hostile.good_workers(TINY)
    assert set(summary.final.rigs) == good
    assert summary.hostile_rigs(good) == 0
    assert set(summary.pairs[0].hostile_scrape.rigs) <= good  # while the flood's connections were still open
    assert f"rigs in /api/v1/rigs: {len(good)} (the good rig's {len(good)} workers); from hostile peers: 0" in text


def test_the_hostile_peers_reached_the_server_and_were_counted(run):
    summary, _ = run
    counters = summary.final.counters
    for family in ("fleetd_stratum_refused", "fleetd_stratum_auth_failures", "fleetd_stratum_disconnects"):
        assert all(value >= 0 for value in counters.get(family, {}).values())
    limits, plan = summary.limits, summary.plan
    # the storm opens past the per-address limit and holds: at least the excess is refused
    assert sum(counters["fleetd_stratum_refused"].values()) >= plan.storm - limits.max_connections_per_ip > 0
    # each flood connection asks for twice the names one connection may hold; the held ones pass the address's limit
    failures = counters["fleetd_stratum_auth_failures"]
    assert failures["max_workers"] > 0 and failures["max_workers_per_ip"] > 0
    # the fuzzer's first connections send one line each whose close reason is known
    disconnects = counters["fleetd_stratum_disconnects"]
    for reason in ("invalid_json", "line_too_long", "tls_handshake"):
        assert disconnects.get(reason, 0) >= 1, disconnects
    peers = summary.pairs[0].peers
    assert peers.idle_ready == TINY.idle_connections and peers.idle_dropped == 0
    assert peers.storm_held == limits.max_connections_per_ip
    assert peers.flood_accepted == limits.max_workers_per_ip * len(plan.flood_addresses)
    assert peers.fuzz_connections >= len(hostile.FUZZ_KINDS) and peers.fuzz_closed_by_server > 0
    # while hostile: the idle connections, the storm's held ones and the flood's held ones were open
    open_connections = summary.pairs[0].hostile_scrape.counters["fleetd_connections"][""]
    assert open_connections >= TINY.idle_connections + limits.max_connections_per_ip


def test_the_server_configuration_keeps_default_limits_and_lets_the_load_in():
    limits = hostile.Limits.for_options(hostile.HostileOptions())
    config = parse(hostile.hostile_config(limits, 3333, 9550))
    s = config.stratum
    assert (s.listen.host, config.http.listen.host) == ("127.0.0.1", "127.0.0.1")
    assert s.min_difficulty == s.max_difficulty == 1e-9 and config.rigs.poll is False
    assert s.max_connections >= 10_000 + hostile._storm_size(s.max_connections_per_ip)
    assert (s.max_connections_per_ip, s.max_workers_per_ip, s.max_workers_per_connection) == (1_000, 2_000, 64)
    # the idle peers fit each address's limits; the good rig has 127.0.0.1 to itself
    plan = hostile.peer_plan(hostile.HostileOptions(), limits, 3333, 0)
    per_address = -(-plan.idle // len(plan.idle_addresses))
    assert per_address <= min(s.max_connections_per_ip, s.new_connections_burst_per_ip)
    addresses = [*plan.idle_addresses, plan.storm_address, *plan.flood_addresses, *plan.fuzz_addresses]
    assert len(set(addresses)) == len(addresses) and "127.0.0.1" not in addresses
    assert plan.flood_hold * min(plan.names_per_connection, s.max_workers_per_connection) > s.max_workers_per_ip


def test_the_fuzzer_is_seeded_and_every_kind_makes_lines():
    for kind, fuzzer in hostile.FUZZERS.items():
        a = [fuzzer(random.Random(f"7:{i}"), 16384) for i in range(20)]
        b = [fuzzer(random.Random(f"7:{i}"), 16384) for i in range(20)]
        assert a == b, kind
        assert all(line.endswith(b"\n") or line.endswith(b"\r\n\r\n") for line in a), kind
        assert hostile.canonical_line(kind, 16384).endswith(b"\n")
    assert len(hostile.canonical_line("huge_line", 16384)) > 16384


def test_the_cli_passes_its_flags(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(hostile, "report", lambda options: seen.append(options) or "report")
    argv = ["bench", "hostile", "--idle-connections", "50", "--flood-names", "100", "--fuzz-connections", "10",
            "--seconds", "1", "--repeats", "2", "--seed", "9", "--max-connections-per-ip", "40"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out == "report\n"
    (options,) = seen
    assert (options.idle_connections, options.flood_names, options.fuzz_connections) == (50, 100, 10)
    assert (options.seconds, options.repeats, options.seed, options.max_connections_per_ip) == (1.0, 2, 9, 40)
