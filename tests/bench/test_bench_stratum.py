"""``fleetd bench stratum``: a tiny, bounded run of the real thing (server and load generator as processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetd.bench import stratum
from fleetd.cli import main
from fleetd.config import parse

NUMBER = r"([\d,]+(?:\.\d+)?)"


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.M)
    assert match, f"{pattern!r} not in report:\n{text}"
    return float(match.group(1).replace(",", ""))


# Windows end after a fixed number of answered submits, not a fixed time: the tests wait on work, not on the clock.
TINY = ["--connections", "20", "--submits", "3000", "--seconds", "30", "--warmup", "0", "--repeats", "1"]


def test_a_tiny_bench_reports_sane_numbers(capsys):
    argv = ["bench", "stratum", *TINY, "--idle-connections", "50"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("fleetd bench stratum: fleetd serve (demo source, difficulty 1e-09)")
    assert "median of 1 run of 3,000 submits" in out
    assert number(rf"^  answered submits/s\s+{NUMBER}$", out) > 0
    assert number(rf"answered submits per server CPU-second\s+{NUMBER}", out) > 0
    assert "target >= 100,000" in out
    assert number(rf"server CPU per answered submit\s+{NUMBER} µs$", out) > 0
    # the load generator's own cost stands next to the server's: its cores, processes and CPU per submit
    match = re.search(r"^  load generator\s+([\d.]+) cores of (\d+) process(?:es)?(?: on CPU [\d,]+)?, ([\d.]+) µs per submit$",
                      out, re.M)  # fmt: skip
    assert match, out
    assert int(match.group(2)) >= 1 and float(match.group(3)) > 0
    accepted = number(rf"accepted / rejected\s+{NUMBER} / ", out)
    assert accepted > 0 and number(rf"accepted / rejected\s+[\d,]+ / {NUMBER}", out) == 0
    # the latency runs offer 5,000/s from 20 connections: what comes back is near that
    achieved = [float(x.replace(",", "")) for x in re.findall(rf"^  answered submits/s\s+{NUMBER}$", out, re.M)][1]
    assert 1_000 < achieved < 6_000
    p50, p99 = number(rf"p50 send-to-reply\s+{NUMBER} ms", out), number(rf"p99 send-to-reply\s+{NUMBER} ms", out)
    assert 0 < p50 <= p99
    assert re.search(r"RSS per idle connection\s+-?[\d.]+ KiB", out)
    assert "50 idle connections" in out
    assert len(re.findall(r": (met|NOT met)$", out, re.M)) == 3
    # no rejects, no dropped connections, every submit answered once; a loaded machine may fall short
    # of the offered rate, or keep the load generator busy
    assert not re.search(r"^warning: (?!latency runs could not offer|the load generator's processes)", out, re.M)


def test_a_tiny_proxy_bench_measures_direct_and_proxied_in_one_run(capsys):
    argv = ["bench", "stratum", "--proxy", *TINY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("fleetd bench stratum --proxy: the same load on fleetd serve directly and through a proxy")
    match = re.search(rf"answered submits per CPU-second\s+{NUMBER}\s+{NUMBER}\s+\(proxy/direct ([\d.]+);", out)
    assert match, out
    direct, proxied, ratio = (float(g.replace(",", "")) for g in match.groups())
    assert direct > 0 and proxied > 0 and ratio == pytest.approx(proxied / direct, abs=0.01)
    # the proxy really forwarded to its upstream, which accepted every forwarded share
    forwarded = number(rf"shares forwarded {NUMBER}", out)
    assert forwarded > 0 and number(rf"accepted {NUMBER}, rejected 0$", out) == forwarded
    assert re.search(r"^  p99 added by the proxy \(ms\)\s+[+-][\d.]+$", out, re.M)
    assert re.search(r"^  load generator \(cores\)\s+[\d.]+\s+[\d.]+\s+\([\d.]+ / [\d.]+ µs per submit\)$", out, re.M)
    assert not re.search(r"^warning: (?!(proxy )?latency runs could not offer|the load generator's processes)", out, re.M)


def test_a_tiny_journal_bench_measures_the_journal_on_and_off_in_one_run(capsys):
    argv = ["bench", "stratum", "--journal", *TINY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("fleetd bench stratum --journal: the same load on two fleetd serve whose configurations differ only")
    assert "median of 1 run of 3,000 submits on each server" in out
    match = re.search(rf"^  answered submits per server CPU-second\s+{NUMBER}\s+{NUMBER}$", out, re.M)
    assert match, out
    on, off = (float(g.replace(",", "")) for g in match.groups())
    assert on > 0 and off > 0
    ratio = number(rf"^  on/off \(medians\)\s+{NUMBER}   \(journal cost [+-][\d.]+%; ", out)
    assert ratio == pytest.approx(on / off, abs=0.001)
    assert re.search(r"target cost < 10%, on/off >= 0.90: (met|NOT met)\)$", out, re.M)
    # the journal's own CPU, measured inside the "on" server, as a share of that server's (a run this
    # short may end before the journal's next flush: 0 % is a possible answer)
    share = number(r"^  journal's share of the on server's CPU\s+([\d.]+)%   \(fleetd_journal_cpu_seconds_total", out)
    assert 0 <= share < 100
    # both servers answered every submit and rejected none
    match = re.search(rf"^  accepted / rejected\s+{NUMBER} / {NUMBER}\s+{NUMBER} / {NUMBER}$", out, re.M)
    assert match, out
    on_accepted, on_rejected, off_accepted, off_rejected = (float(g.replace(",", "")) for g in match.groups())
    assert on_accepted > 0 and off_accepted > 0 and on_rejected == off_rejected == 0
    # the journal is up on the "on" server and absent on the "off" one
    assert number(r"^  fleetd_journal_up\s+(\d+)$", out) == 1
    assert number(rf"^  fleetd_journal_file_bytes\s+{NUMBER}$", out) > 0
    assert number(rf"^  fleetd_journal_dropped_writes_total\s+{NUMBER}$", out) == 0
    assert re.search(rf"^  fleetd_journal_pending_rows\s+{NUMBER}$", out, re.M)
    assert 'the "off" server\'s /metrics at the end: no fleetd_journal_* (journal off)' in out
    assert not re.search(r"^warning: (?!journal (on|off): the load generator's processes)", out, re.M)


def test_the_journal_servers_differ_only_in_whether_the_journal_is_enabled():
    on, off = stratum.journal_config(True, 1000)(3333, 9550), stratum.journal_config(False, 1000)(3333, 9550)
    assert on.replace("enabled = true", "enabled = false") == off
    assert parse(on).journal.enabled and not parse(off).journal.enabled
    # every connection of the load generator, all from one loopback address, is let in at once
    s = parse(on).stratum
    assert min(s.max_connections_per_ip, s.new_connections_burst_per_ip, s.max_workers_per_ip) >= 1000


def test_the_server_configuration_is_loopback_pinned_and_valid():
    config = parse(stratum.server_config(3333, 9550))
    s = config.stratum
    assert (s.listen.host, s.listen.port, config.http.listen.host) == ("127.0.0.1", 3333, "127.0.0.1")
    assert s.min_difficulty == s.max_difficulty == s.start_difficulty == 1e-9  # vardiff cannot move it
    assert config.source.kind == "demo" and config.source.network_difficulty >= 1e12  # no blocks


def test_a_server_that_does_not_start_is_reported_with_its_log(tmp_path: Path):
    options = stratum.BenchOptions(python="/bin/false", startup_timeout=5)
    with pytest.raises(stratum.BenchError, match="exited with status 1 before listening"):
        with stratum.running_server(options, tmp_path):
            pass


@pytest.mark.parametrize(
    "argv",
    [["--seconds", "0"], ["--connections", "0"], ["--idle-connections", "-1"], ["--submits", "0"], ["--warmup", "-1"],
     ["--proxy", "--journal"]],
)
def test_bad_options_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "stratum", *argv])
    assert exc.value.code == 2
    assert "usage: fleetd bench stratum" in capsys.readouterr().err


def test_the_server_and_the_load_generator_get_cpus_apart(monkeypatch):
    monkeypatch.setattr(stratum.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    plan = stratum.CpuPlan.for_machine(stratum.BenchOptions())
    assert (plan.server, plan.loadgen, plan.loadgen_processes) == ((0,), (1, 2, 3), 3)
    assert plan.loadgen_args() == ("--processes", "3", "--cpus", "1,2,3")
    assert stratum.CpuPlan.for_machine(stratum.BenchOptions(loadgen_processes=1)).loadgen_processes == 1
    unpinned = stratum.CpuPlan.for_machine(stratum.BenchOptions(pin=False))
    assert (unpinned.server, unpinned.loadgen, unpinned.loadgen_processes) == (None, None, 3)
    monkeypatch.setattr(stratum.os, "sched_getaffinity", lambda pid: {5}, raising=False)
    single = stratum.CpuPlan.for_machine(stratum.BenchOptions())
    assert (single.server, single.loadgen, single.loadgen_args()) == (None, None, ("--processes", "1"))


def test_where_affinity_is_not_available_nothing_is_pinned(monkeypatch):
    monkeypatch.delattr(stratum.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(stratum.os, "cpu_count", lambda: 2)
    plan = stratum.CpuPlan.for_machine(stratum.BenchOptions())
    assert (plan.server, plan.loadgen, plan.loadgen_processes) == (None, None, 1)
