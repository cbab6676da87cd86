"""The fleetd command as an operator runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetd import __version__, native
from fleetd.cli import build_parser, main
from fleetd.sim import demo
from fleetd.sim.fleet_faults import MEANING, FaultKind

GENERATOR = Path(__file__).resolve().parents[1] / "grafana" / "generate.py"


def test_version_names_the_native_implementation(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fleetd ")
    assert f"native: {native.IMPL} (available: {', '.join(native.available())})" in out


def test_bench_validate_reports_every_path_with_ratios(capsys):
    assert main(["bench", "validate", "--repeats", "1", "--loops", "2", "--batch", "5"]) == 0
    out = capsys.readouterr().out
    for impl in native.available():
        assert f"[{impl}]" in out
    rows = re.findall(r"^  (\S.*?)\s+([\d.]+) µs\s+([\d.]+)×$", out, re.M)
    assert [label for label, _, _ in rows[:4]] == [
        "Python reference (hashlib)",
        "native single call (prepared job, check)",
        "native one-shot header_hash (job rebuilt)",
        "native batch (5 shares per call)",
    ]
    assert len(rows) == 4 * len(native.available())
    assert all(float(per_share) > 0 and float(ratio) > 0 for _, per_share, ratio in rows)
    assert re.search(r"batch throughput: [\d,]+ shares/s per core", out)


def test_bench_restores_the_active_implementation():
    before = native.IMPL
    main(["bench", "validate", "--repeats", "1", "--loops", "1", "--batch", "2"])
    assert native.IMPL == before


@pytest.mark.parametrize("argv", [[], ["bench"], ["bench", "validate", "--repeats", "0"], ["nonsense"]])
def test_bad_command_lines_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: fleetd" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "fleetd", "version"], capture_output=True, text=True, check=True)
    assert "native:" in out.stdout


def test_bench_telemetry_scrape_reports_series_and_core_share(capsys):
    assert main(["bench", "telemetry", "--rigs", "50", "--repeats", "2", "--poll-rigs", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"series\s+1,923$", out, re.M)  # 38 per fully populated rig (7 economics, 6 confidence), 23 site-wide
    assert re.search(r"one core's share at a 15 s scrape interval\s+[\d.]+%", out)


def one_line(err: str) -> str:
    """The single line an operator's mistake prints: no traceback, nothing else."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_version_flag_prints_the_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"fleetd {__version__}\n"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["demo", "--fault", "bogus"], "fleetd demo: fault 'bogus': expected RIG:KIND[=VALUE][@START[+DURATION]]"),
        (["demo", "--rigs", "3", "--fault", "9:offline@5"], "no such rig in a fleet of 3; name one of 1..3 or s19xp-01"),
        (["demo", "--rigs", "3", "--fault", "2:melt"], "unknown kind 'melt'; one of offline, overheat"),
        (["simulate", "--pool", "127.0.0.1:3333", "--fault", "bogus"], "fleetd simulate: fault 'bogus': expected"),
        (["simulate", "--pool", "127.0.0.1:3333", "--rigs", "3", "--fault", "9:offline@5"], "name one of 1..3"),
    ],
)
def test_a_bad_fault_is_one_line_before_anything_starts(argv, says, capsys, monkeypatch):
    def start(*_args, **_kwargs):
        raise AssertionError("the demo or fleet started with a bad fault")

    monkeypatch.setattr(demo, "run", start)
    monkeypatch.setattr("fleetd.sim.fleet.run", start)
    assert main(argv) == 2
    assert says in one_line(capsys.readouterr().err)


def test_the_demo_refuses_to_serve_its_chain_on_the_network_before_anything_starts(capsys, monkeypatch):
    def start(*_args, **_kwargs):
        raise AssertionError("the demo started on a network address")

    monkeypatch.setattr(demo, "run", start)
    assert main(["demo", "--stratum", "0.0.0.0:3333"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith('fleetd demo: [source] kind = "demo" with [stratum] listen = "0.0.0.0:3333"')
    assert "allow_demo_on_network = true" in line


@pytest.mark.parametrize("argv", [["version"], ["check-config", "no-such.toml"]])
def test_a_bad_native_implementation_in_the_environment_is_one_line_for_every_command(argv):
    env = {**os.environ, "FLEETD_NATIVE": "bogus"}
    out = subprocess.run([sys.executable, "-m", "fleetd", *argv], env=env, capture_output=True, text=True)
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert line.startswith("fleetd: FLEETD_NATIVE='bogus' ")
    assert all(impl in line for impl in native.available())


@pytest.mark.parametrize("command", [["demo"], ["simulate", "--pool", "127.0.0.1:3333"]])
def test_demo_and_simulate_take_repeated_fault_options_and_explain_them(command, capsys):
    args = build_parser().parse_args([*command, "--fault", "1:offline", "--fault", "2:stale=0.5"])
    assert args.fault == ["1:offline", "2:stale=0.5"]
    with pytest.raises(SystemExit) as exc:
        main([command[0], "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for kind in FaultKind:
        assert f"  {kind:<10} {MEANING[kind]}" in out
    assert "--fault 3:offline@20+30" in out


def test_the_dashboard_generator_prints_help_and_writes_nothing():
    dashboards = sorted((GENERATOR.parent / "dashboards").glob("*.json"))
    before = [path.stat().st_mtime_ns for path in dashboards]
    out = subprocess.run([sys.executable, str(GENERATOR), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: generate.py") and "wrote" not in out.stdout
    assert [path.stat().st_mtime_ns for path in dashboards] == before


def test_bench_stratum_passes_the_load_generator_processes_on(monkeypatch):
    from fleetd.bench import stratum

    seen = {}

    def report(options):
        seen["options"] = options
        return "ok"

    monkeypatch.setattr(stratum, "report", report)
    assert main(["bench", "stratum", "--loadgen-processes", "3", "--idle-connections", "0"]) == 0
    assert seen["options"].loadgen_processes == 3
    assert main(["bench", "stratum"]) == 0
    assert seen["options"].loadgen_processes is None  # one per CPU the server is not pinned to


def test_bench_validate_judges_the_targets_for_the_implementation_in_use(capsys):
    assert main(["bench", "validate", "--repeats", "1", "--loops", "2", "--batch", "5"]) == 0
    out = capsys.readouterr().out
    sections = dict(re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", out, re.M | re.S))
    assert set(sections) == set(native.available())
    for impl, body in sections.items():
        judged = re.findall(r"target (batch|single) ≥ \d+×: (?:met|NOT met)", body)
        assert judged == (["batch", "single"] if impl == native.IMPL else [])
        assert (f"targets are judged for {native.IMPL}" in body) == (impl != native.IMPL)


def test_check_config_and_serve_never_print_a_secret(tmp_path, capsys):
    from test_config import INVALID_WITH_SECRETS, SECRETS

    for i, text in enumerate(INVALID_WITH_SECRETS):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text)
        assert main(["check-config", str(path)]) == 1
        checked = capsys.readouterr()
        assert main(["serve", "--config", str(path)]) == 2  # refused at start-up, before anything listens
        served = capsys.readouterr()
        shown = checked.out + checked.err + served.out + served.err
        assert "problem(s)" in checked.err and "problem(s)" in served.err
        assert not [secret for secret in SECRETS if secret in shown], shown
        assert "needs a [auth.passwords] table" not in shown  # the table is there (or bad), never "missing"
