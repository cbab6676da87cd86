"""``fleetd bench page``: a tiny run of the real thing (fleetd in process, headless Chromium);
the report's shape and its arithmetic, not its timings."""

from __future__ import annotations

import re

import pytest

from fleetd.bench import page
from fleetd.cli import main

KIB = r"([\d,]+\.\d) KiB"
MS = r"([\d,]+\.\d) ms"


def test_a_tiny_bench_reports_payload_and_times_for_both_sites(capsys):
    assert main(["bench", "page", "--rigs", "120", "--small-rigs", "6", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fleetd bench page: the site page at / for 120 and 6 rigs, median of 1 first visits")
    sizes = {}
    for label in ("HTML", r"scripts and styles \((\d+) files\)", "/api/v1/site", "total"):
        match = re.search(rf"^    {label}\s+{KIB}\s+{KIB}\s+{KIB}\s+{KIB}\s+([\d.]+)x$", out, re.M)
        assert match, f"{label!r} not in:\n{out}"
        numbers = [float(g.replace(",", "")) for g in match.groups()[-5:]]
        large_raw, large_sent, small_raw, small_sent, ratio = numbers
        assert 0 < large_sent <= large_raw and 0 < small_sent <= small_raw, (label, numbers)
        # the ratio is of the bytes, the sizes are rounded to 0.1 KiB (and the ratio to 0.1)
        low, high = (large_sent - 0.05) / (small_sent + 0.05), (large_sent + 0.05) / max(small_sent - 0.05, 0.01)
        assert low - 0.05 <= ratio <= high + 0.05, (label, numbers)
        sizes[label.split()[0]] = numbers
    assert sizes["/api/v1/site"][0] > 5 * sizes["/api/v1/site"][2]  # 120 rigs' rows against 6
    for label in ("/api/v1/site on the server", "navigation to the table's first page",
                  "navigation to the fleet charts drawn", "one live refresh", "one sort of every rig by watts",
                  "... to the next frame drawn"):  # fmt: skip
        # a ratio, or "-" where the small site's time was below the browser's clock resolution
        match = re.search(rf"^    {re.escape(label)}.*?\s{MS}\s+{MS}\s+(?:[\d.]+x|-)$", out, re.M)
        assert match, f"{label!r} not in:\n{out}"
        large, small = (float(g.replace(",", "")) for g in match.groups())
        assert large >= 0 and small >= 0, label
        if label.startswith(("navigation", "one live")):  # a page load or a fetch takes time
            assert large > 0 and small > 0, label
    assert re.search(r"rows in the DOM after loading: 100 of 120, 6 of 6 \(paged\)$", out, re.M), out


def test_without_chromium_the_bench_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(page.shutil, "which", lambda name: None)
    assert main(["bench", "page", "--rigs", "2", "--small-rigs", "1", "--repeats", "1"]) == 1
    err = capsys.readouterr().err
    assert "fleetd bench page: no chromium on PATH" in err and "apt-get install chromium" in err


def test_bad_sizes_are_refused_by_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "page", "--rigs", "0"])
    assert exit_.value.code == 2 and "must be at least 1" in capsys.readouterr().err
