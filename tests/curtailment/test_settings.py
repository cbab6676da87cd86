"""[curtailment] in the configuration: defaults, every key, and each mistake named."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest

from fleetd.curtailment.settings import CurtailmentConfig, parse


def _parsed(text: str) -> tuple[CurtailmentConfig, list[str]]:
    problems: list[str] = []
    return parse(tomllib.loads(text).get("curtailment", {}), problems), problems


def test_the_default_is_advise_and_every_key_is_read():
    assert _parsed("") == (CurtailmentConfig(), []) and CurtailmentConfig().mode == "advise"
    config, problems = _parsed(
        """
[curtailment]
mode = "act"
cycle_seconds = 30
min_shares = 200
hysteresis = 0.2
min_off_seconds = 600
min_on_seconds = 900
ramp_kw_per_minute = 250
max_rigs_per_cycle = 5
price_above_usd_per_kwh = 0.15
verify_seconds = 120
resume_verify_seconds = 300
retries = 1
power_floor_fraction = 0.8
never = ["acct.lab-*"]
keep_off = ["acct.rack9-*"]

[[curtailment.window]]
start = "15:00"
end = "18:00"
weekdays = ["mon", "fri"]
shed_kw = 500

[[curtailment.window]]
start = "22:00"
end = "02:00"
above_joules_per_terahash = 30
"""
    )
    assert problems == []
    assert (config.mode, config.cycle_seconds, config.min_shares, config.max_rigs_per_cycle, config.retries) == (
        "act", 30.0, 200.0, 5, 1)  # fmt: skip
    assert config.power_floor_fraction == 0.8 and CurtailmentConfig().power_floor_fraction == 0.7
    assert _parsed("[curtailment]\npower_floor_fraction = 0\n")[0].power_floor_fraction == 0.0  # never tune
    assert config.never_curtailed("acct.lab-3") and not config.never_curtailed("acct.rack9-1")
    assert config.kept_off("acct.rack9-1")
    first, second = config.windows
    assert (first.start, first.end, first.weekdays, first.shed_kw) == (dt.time(15), dt.time(18), {0, 4}, 500.0)
    assert second.above_joules_per_terahash == 30.0 and second.weekdays == frozenset(range(7))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('mode = "auto"', "[curtailment] mode = 'auto': must be one of off, advise, act"),
        ("retries = 1.5", "[curtailment] retries = 1.5: must be a whole number from 0 to 100"),
        ("hysteresis = -1", "[curtailment] hysteresis = -1: must be a number from 0 to 10"),
        # a stop is seen done 60 s after it at the soonest: a shorter deadline retries every stop
        ("verify_seconds = 30", "[curtailment] verify_seconds = 30: must be a number from 60 to 86400"),
        # a limit at the whole draw sheds nothing
        ("power_floor_fraction = 1", "[curtailment] power_floor_fraction = 1: must be a number from 0 to 0.99"),
        ("power_floor_fraction = \"70%\"", "[curtailment] power_floor_fraction = '70%': must be a number"),
        ("never = \"lab\"", "[curtailment] never = 'lab': must be a list of worker names or globs"),
        ("typo = 1", "[curtailment] typo: unknown key"),
        ('[[curtailment.window]]\nstart = "25:00"\nend = "18:00"\nshed_kw = 1',
         "[curtailment.window #1] start = '25:00': must be a time of day"),
        ('[[curtailment.window]]\nstart = "15:00"\nend = "18:00"',
         "[curtailment.window #1]: give one of shed_kw or above_joules_per_terahash"),
        ('[[curtailment.window]]\nstart = "15:00"\nend = "18:00"\nshed_kw = 1\nweekdays = ["monday"]',
         "[curtailment.window #1] weekdays = ['monday']: must be a list of mon"),
    ],
)
def test_each_mistake_is_named_by_its_key(text, problem):
    config, problems = _parsed(f"[curtailment]\n{text}\n")
    assert config == CurtailmentConfig()  # the defaults stand in
    assert any(p.startswith(problem) for p in problems), problems
