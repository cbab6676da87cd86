"""The fleetd command as an operator runs it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from fleetd import native
from fleetd.cli import main


def test_version_names_the_native_implementation(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fleetd ")
    assert f"native: {native.IMPL} (available: {', '.join(native.available())})" in out


def test_bench_validate_reports_every_path_with_ratios(capsys):
    assert main(["bench", "validate", "--repeats", "1", "--loops", "2", "--batch", "5", "--all-impls"]) == 0
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
    main(["bench", "validate", "--repeats", "1", "--loops", "1", "--batch", "2", "--all-impls"])
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
    assert re.search(r"series\s+1,623$", out, re.M)  # 32 per fully populated rig (7 economics), 23 site-wide
    assert re.search(r"one core's share at a 15 s scrape interval\s+[\d.]+%", out)
