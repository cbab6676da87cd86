"""The [economics] config: valid values land in EconomicsConfig, every mistake is named by its key,
and the time-of-use power prices switch at their wall-clock boundaries."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from fleetd.config import ConfigError, parse
from fleetd.economics.settings import EconomicsConfig, PowerOverride, PowerPrices, PriceFeedConfig

MON_FRI = '["mon", "tue", "wed", "thu", "fri"]'
UTC = dt.timezone.utc
CHICAGO = ZoneInfo("America/Chicago")


def at(y, mo, d, h=0, mi=0, s=0, tz: dt.tzinfo = CHICAGO, fold: int = 0) -> float:
    """Unix time of a local wall-clock moment."""
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=tz, fold=fold).timestamp()


def economics(text: str) -> EconomicsConfig:
    config = parse("[economics]\n" + text)
    assert isinstance(config.economics, EconomicsConfig)
    return config.economics


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse("[economics]\n" + text)
    return exc.value.problems


# ---------------------------------------------------------------------------------------------
# A valid configuration


FULL = f"""
btc_price_usd = 77000
power_price_usd_per_kwh = 0.06
fees_btc_per_block = 0.025
timezone = "America/Chicago"
ai_hosting_usd_per_mw_day = 2400
curtail_target_kw = 500
hashrate_window = "5m"

[[economics.power_override]]
rigs = ["acct.rack7-01", "acct.spare"]
usd_per_kwh = 0.03

[[economics.power_override]]
rigs = ["acct.rack7-*"]
schedule = [
  {{ start = "00:00", usd_per_kwh = 0.04 }},
  {{ start = "17:00", usd_per_kwh = 0.12, weekdays = {MON_FRI} }},
]
"""


def test_full_valid_config():
    e = economics(FULL)
    assert e.btc_price_usd == 77000.0 and isinstance(e.btc_price_usd, float)
    assert e.price_feed is None
    assert e.fees_btc_per_block == 0.025
    assert e.timezone == "America/Chicago"
    assert e.tzinfo() == CHICAGO
    assert e.ai_hosting_usd_per_mw_day == 2400.0
    assert e.curtail_target_kw == 500.0
    assert e.hashrate_window == "5m"
    # a flat price is a one-entry schedule from midnight on every day
    (flat,) = e.power_schedule.entries
    assert (flat.start, flat.usd_per_kwh, flat.weekdays) == (dt.time(0, 0), 0.06, frozenset(range(7)))
    first, second = e.overrides
    assert isinstance(first, PowerOverride)
    assert first.patterns == ("acct.rack7-01", "acct.spare")
    assert [(x.start, x.usd_per_kwh) for x in first.schedule.entries] == [(dt.time(0, 0), 0.03)]
    assert second.patterns == ("acct.rack7-*",)
    assert [(x.start, x.usd_per_kwh, x.weekdays) for x in second.schedule.entries] == [
        (dt.time(0, 0), 0.04, frozenset(range(7))),
        (dt.time(17, 0), 0.12, frozenset(range(5))),
    ]
    assert first.matches("acct.spare") and not first.matches("acct.rack7-02")
    assert second.matches("acct.rack7-02") and not second.matches("acct.rack8-01")


def test_feed_and_schedule_config_and_defaults():
    e = economics(
        f"""
[economics.price_feed]
url = "https://api.example.com/btc"
json_path = "data.0.price"
interval_seconds = 60
timeout_seconds = 5
max_age_seconds = 600

[[economics.power_schedule]]
start = "00:00"
usd_per_kwh = 0.045
[[economics.power_schedule]]
start = "17:00"
usd_per_kwh = 0.11
weekdays = {MON_FRI}
"""
    )
    assert e.btc_price_usd is None
    assert e.price_feed == PriceFeedConfig("https://api.example.com/btc", "data.0.price", 60.0, 5.0, 600.0)
    assert [(x.start, x.usd_per_kwh, x.weekdays) for x in e.power_schedule.entries] == [
        (dt.time(0, 0), 0.045, frozenset(range(7))),
        (dt.time(17, 0), 0.11, frozenset(range(5))),
    ]
    # the defaults of what was left out
    assert e.fees_btc_per_block == 0.0
    assert e.timezone == "UTC"
    assert e.overrides == ()
    assert e.ai_hosting_usd_per_mw_day is None
    assert e.curtail_target_kw == 0.0
    assert e.hashrate_window == "1h"


def test_feed_defaults():
    e = economics(
        'power_price_usd_per_kwh = 0\n[economics.price_feed]\nurl = "http://127.0.0.1:8080"\njson_path = "usd"\n'
    )
    assert e.price_feed == PriceFeedConfig("http://127.0.0.1:8080", "usd")
    assert (e.price_feed.interval_seconds, e.price_feed.timeout_seconds, e.price_feed.max_age_seconds) == (
        300.0,
        10.0,
        1800.0,
    )
    assert e.power_schedule.entries[0].usd_per_kwh == 0.0  # free power is allowed


def test_weekday_names_are_case_insensitive_and_may_be_spelled_out():
    e = economics(
        'btc_price_usd = 1\n[[economics.power_schedule]]\nstart = "08:30"\nusd_per_kwh = 0.1\n'
        'weekdays = ["Saturday", "SUN"]\n'
    )
    (entry,) = e.power_schedule.entries
    assert entry.weekdays == frozenset({5, 6}) and entry.start == dt.time(8, 30)


def test_no_economics_section_means_no_economics():
    assert parse("").economics is None


# ---------------------------------------------------------------------------------------------
# Every mistake: one problem, naming its key

PRICE = "btc_price_usd = 77000\n"
POWER = "power_price_usd_per_kwh = 0.05\n"
BOTH = PRICE + POWER
FEED = '[economics.price_feed]\nurl = "https://api.example.com/btc"\njson_path = "bitcoin.usd"\n'
ENTRY = '[[economics.power_schedule]]\nstart = "00:00"\nusd_per_kwh = 0.045\n'
OVERRIDE = '[[economics.power_override]]\nrigs = ["acct.rack7-*"]\n'

ERRORS = {
    # unknown keys, wherever they are
    "unknown top-level key": (BOTH + "colour = 1\n", "[economics] colour: unknown key"),
    "unknown price_feed key": (POWER + FEED + "retries = 3\n", "[economics.price_feed] retries: unknown key"),
    "unknown schedule key": (PRICE + ENTRY + "price = 0.1\n", "[economics.power_schedule #1] price: unknown key"),
    "unknown override key": (
        BOTH + OVERRIDE + 'usd_per_kwh = 0.03\nname = "x"\n',
        "[economics.power_override #1] name: unknown key",
    ),
    # where prices come from
    "missing btc price": (POWER, "[economics] needs btc_price_usd or an [economics.price_feed] table"),
    "both btc price sources": (BOTH + FEED, "[economics] btc_price_usd and [economics.price_feed]: give one, not both"),
    "missing power price": (PRICE, "[economics] needs power_price_usd_per_kwh or [[economics.power_schedule]]"),
    "both power forms": (
        BOTH + ENTRY,
        "[economics] power_price_usd_per_kwh and [[economics.power_schedule]]: give one, not both",
    ),
    "price_feed not a table": (
        POWER + 'price_feed = "https://api.example.com/btc"\n',
        "[economics] price_feed = 'https://api.example.com/btc': must be an [economics.price_feed] table",
    ),
    # numbers
    "negative btc price": ("btc_price_usd = -1\n" + POWER, "[economics] btc_price_usd = -1: must be greater than 0"),
    "zero btc price": ("btc_price_usd = 0\n" + POWER, "[economics] btc_price_usd = 0: must be greater than 0"),
    "negative power price": (
        PRICE + "power_price_usd_per_kwh = -0.01\n",
        "[economics] power_price_usd_per_kwh = -0.01: must be 0 or more",
    ),
    "negative fees": (BOTH + "fees_btc_per_block = -0.1\n", "[economics] fees_btc_per_block = -0.1: must be 0 or more"),
    "negative curtail target": (
        BOTH + "curtail_target_kw = -5\n",
        "[economics] curtail_target_kw = -5: must be 0 or more",
    ),
    "zero ai offer": (
        BOTH + "ai_hosting_usd_per_mw_day = 0\n",
        "[economics] ai_hosting_usd_per_mw_day = 0: must be greater than 0",
    ),
    "nan btc price": ("btc_price_usd = nan\n" + POWER, "[economics] btc_price_usd = nan: must be a finite number"),
    "inf power price": (
        PRICE + "power_price_usd_per_kwh = inf\n",
        "[economics] power_price_usd_per_kwh = inf: must be a finite number",
    ),
    "-inf fees": (
        BOTH + "fees_btc_per_block = -inf\n",
        "[economics] fees_btc_per_block = -inf: must be a finite number",
    ),
    "bool power price": (
        PRICE + "power_price_usd_per_kwh = true\n",
        "[economics] power_price_usd_per_kwh = True: must be a finite number",
    ),
    "string btc price": (
        'btc_price_usd = "77000"\n' + POWER,
        "[economics] btc_price_usd = '77000': must be a finite number",
    ),
    "string curtail target": (
        BOTH + 'curtail_target_kw = "500kW"\n',
        "[economics] curtail_target_kw = '500kW': must be a finite number",
    ),
    # timezone and window
    "unknown timezone": (
        BOTH + 'timezone = "Mars/Olympus_Mons"\n',
        "[economics] timezone = 'Mars/Olympus_Mons': not a time zone",
    ),
    "timezone not a string": (BOTH + "timezone = 5\n", "[economics] timezone = 5: not a time zone"),
    "timezone a directory": (BOTH + 'timezone = "America"\n', "[economics] timezone = 'America': not a time zone"),
    "bad hashrate_window": (
        BOTH + 'hashrate_window = "15m"\n',
        "[economics] hashrate_window = '15m': must be one of 5m, 1h",
    ),
    # fees
    "fees above 50 BTC": (
        BOTH + "fees_btc_per_block = 51\n",
        "[economics] fees_btc_per_block = 51.0: more than a block subsidy",
    ),
    "fees in sats": (
        BOTH + "fees_btc_per_block = 2500000\n",
        "[economics] fees_btc_per_block = 2500000.0: more than a block subsidy has ever been; BTC, not sats?",
    ),
    # price feed
    "feed url not http": (
        POWER + '[economics.price_feed]\nurl = "ftp://example.com/btc"\njson_path = "usd"\n',
        "[economics.price_feed] url = 'ftp://example.com/btc': must be an http:// or https:// URL",
    ),
    "feed url missing": (
        POWER + '[economics.price_feed]\njson_path = "usd"\n',
        "[economics.price_feed] url: must be an http:// or https:// URL",
    ),
    "feed url without host": (
        POWER + '[economics.price_feed]\nurl = "https://"\njson_path = "usd"\n',
        "[economics.price_feed] url = 'https://': must be an http:// or https:// URL",
    ),
    "feed json_path empty part": (
        POWER + '[economics.price_feed]\nurl = "https://x.example"\njson_path = "bitcoin..usd"\n',
        "[economics.price_feed] json_path = 'bitcoin..usd': must be a dotted path",
    ),
    "feed json_path empty": (
        POWER + '[economics.price_feed]\nurl = "https://x.example"\njson_path = ""\n',
        "[economics.price_feed] json_path = '': must be a dotted path",
    ),
    "feed json_path not a string": (
        POWER + '[economics.price_feed]\nurl = "https://x.example"\njson_path = 3\n',
        "[economics.price_feed] json_path = 3: must be a dotted path",
    ),
    "feed timeout equal to interval": (
        POWER + FEED + "interval_seconds = 60\ntimeout_seconds = 60\n",
        "[economics.price_feed] timeout_seconds = 60.0: must be shorter than interval_seconds",
    ),
    "feed timeout above default interval": (
        POWER + FEED + "timeout_seconds = 400\n",
        "[economics.price_feed] timeout_seconds = 400.0: must be shorter than interval_seconds",
    ),
    "feed max_age below interval": (
        POWER + FEED + "interval_seconds = 600\nmax_age_seconds = 599\n",
        "[economics.price_feed] max_age_seconds = 599.0: must be at least interval_seconds",
    ),
    "feed interval above default max_age": (
        POWER + FEED + "interval_seconds = 3600\n",
        "[economics.price_feed] max_age_seconds = 1800.0: must be at least interval_seconds",
    ),
    "feed zero interval": (
        POWER + FEED + "interval_seconds = 0\n",
        "[economics.price_feed] interval_seconds = 0: must be greater than 0",
    ),
    # schedule entries
    "schedule start not a time": (
        PRICE + ENTRY + '[[economics.power_schedule]]\nstart = "5pm"\nusd_per_kwh = 0.1\n',
        "[economics.power_schedule #2] start = '5pm': must be a time of day \"HH:MM\"",
    ),
    "schedule start out of range": (
        PRICE + '[[economics.power_schedule]]\nstart = "24:00"\nusd_per_kwh = 0.1\n',
        "[economics.power_schedule #1] start = '24:00': must be a time of day",
    ),
    "schedule start a number": (
        PRICE + "[[economics.power_schedule]]\nstart = 1700\nusd_per_kwh = 0.1\n",
        "[economics.power_schedule #1] start = 1700: must be a time of day",
    ),
    "schedule start missing": (
        PRICE + "[[economics.power_schedule]]\nusd_per_kwh = 0.1\n",
        "[economics.power_schedule #1] start: must be a time of day",
    ),
    "schedule usd_per_kwh missing": (
        PRICE + ENTRY + '[[economics.power_schedule]]\nstart = "17:00"\n',
        "[economics.power_schedule #2] usd_per_kwh: required",
    ),
    "schedule usd_per_kwh negative": (
        PRICE + '[[economics.power_schedule]]\nstart = "00:00"\nusd_per_kwh = -0.2\n',
        "[economics.power_schedule #1] usd_per_kwh = -0.2: must be 0 or more",
    ),
    "schedule unknown weekday": (
        PRICE + ENTRY + 'weekdays = ["mon", "funday"]\n',
        "[economics.power_schedule #1] weekdays = ['mon', 'funday']: must be a non-empty list of mon, tue",
    ),
    "schedule no weekdays": (
        PRICE + ENTRY + "weekdays = []\n",
        "[economics.power_schedule #1] weekdays = []: must be a non-empty list",
    ),
    "schedule weekdays a string": (
        PRICE + ENTRY + 'weekdays = "mon"\n',
        "[economics.power_schedule #1] weekdays = 'mon': must be a non-empty list",
    ),
    "schedule weekdays numbers": (
        PRICE + ENTRY + "weekdays = [1]\n",
        "[economics.power_schedule #1] weekdays = [1]: must be a non-empty list",
    ),
    "schedule empty list": (
        PRICE + "power_schedule = []\n",
        "[economics.power_schedule]",
    ),
    "two entries at the same start and weekday": (
        PRICE
        + ENTRY
        + f'[[economics.power_schedule]]\nstart = "17:00"\nusd_per_kwh = 0.11\nweekdays = {MON_FRI}\n'
        + '[[economics.power_schedule]]\nstart = "17:00"\nusd_per_kwh = 0.2\nweekdays = ["sat", "wed"]\n',
        "[economics.power_schedule]",
    ),
    # overrides
    "override without rigs": (
        BOTH + "[[economics.power_override]]\nusd_per_kwh = 0.03\n",
        "[economics.power_override #1] rigs: must be a list",
    ),
    "override empty rigs": (
        BOTH + "[[economics.power_override]]\nrigs = []\nusd_per_kwh = 0.03\n",
        "[economics.power_override #1] rigs = []: must be a list",
    ),
    "override rigs a string": (
        BOTH + '[[economics.power_override]]\nrigs = "acct.rack7-*"\nusd_per_kwh = 0.03\n',
        "[economics.power_override #1] rigs = 'acct.rack7-*': must be a list",
    ),
    "override empty rig name": (
        BOTH + '[[economics.power_override]]\nrigs = ["a", ""]\nusd_per_kwh = 0.03\n',
        "[economics.power_override #1] rigs = ['a', '']: must be a list",
    ),
    "override with both price forms": (
        BOTH + OVERRIDE + 'usd_per_kwh = 0.03\nschedule = [{ start = "00:00", usd_per_kwh = 0.04 }]\n',
        "[economics.power_override #1] usd_per_kwh: give usd_per_kwh or schedule (one of the two)",
    ),
    "override with neither price form": (
        BOTH + OVERRIDE,
        "[economics.power_override #1] usd_per_kwh: give usd_per_kwh or schedule (one of the two)",
    ),
    "second override bad": (
        BOTH + OVERRIDE + "usd_per_kwh = 0.03\n" + '[[economics.power_override]]\nrigs = ["b"]\nusd_per_kwh = -1\n',
        "[economics.power_override #2] usd_per_kwh = -1: must be 0 or more",
    ),
    "override schedule bad start": (
        BOTH + OVERRIDE + 'schedule = [{ start = "noon", usd_per_kwh = 0.04 }]\n',
        "[economics.power_override #1 schedule #1] start = 'noon': must be a time of day",
    ),
    "override schedule unknown key": (
        BOTH + OVERRIDE + 'schedule = [{ start = "00:00", usd_per_kwh = 0.04, until = "07:00" }]\n',
        "[economics.power_override #1 schedule #1] until: unknown key",
    ),
    "override not an array of tables": (
        BOTH + '[economics.power_override]\nrigs = ["a"]\nusd_per_kwh = 0.03\n',
        "[economics.power_override]",
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(ERRORS.values()), ids=list(ERRORS))
def test_each_mistake_is_one_problem_naming_its_key(text, expected):
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_duplicate_start_problem_says_when():
    (problem,) = problems(
        PRICE
        + '[[economics.power_schedule]]\nstart = "17:00"\nusd_per_kwh = 0.11\nweekdays = ["mon", "tue"]\n'
        + '[[economics.power_schedule]]\nstart = "17:00"\nusd_per_kwh = 0.2\nweekdays = ["tue"]\n'
    )
    assert problem.startswith("[economics.power_schedule]")
    assert "two entries start at 17:00" in problem and "weekday 1" in problem  # Tuesday


def test_same_start_on_different_weekdays_is_fine():
    e = economics(
        PRICE
        + '[[economics.power_schedule]]\nstart = "00:00"\nusd_per_kwh = 0.05\nweekdays = ["mon", "tue"]\n'
        + '[[economics.power_schedule]]\nstart = "00:00"\nusd_per_kwh = 0.03\n'
        + 'weekdays = ["wed", "thu", "fri", "sat", "sun"]\n'
    )
    assert len(e.power_schedule.entries) == 2


@pytest.mark.parametrize("start", ["17:00+01:00", "17:00Z"])
def test_start_with_an_offset_is_a_config_problem(start):
    found = problems(PRICE + f'[[economics.power_schedule]]\nstart = "{start}"\nusd_per_kwh = 0.1\n')
    assert len(found) == 1 and found[0].startswith(f"[economics.power_schedule #1] start = '{start}'")


def test_several_problems_are_reported_at_once():
    text = """
[stratum]
lisen = ":3333"

[economics]
btc_price_usd = -1
power_price_usd_per_kwh = 0.05
colour = "red"
timezone = "Nowhere/Special"
fees_btc_per_block = 60

[[economics.power_schedule]]
start = "25:61"
usd_per_kwh = 0.1

[economics.price_feed]
url = "ftp://x"
json_path = "usd"

[[economics.power_override]]
usd_per_kwh = 0.03
"""
    with pytest.raises(ConfigError) as exc:
        parse(text)
    found = exc.value.problems
    expected_starts = [
        "[stratum] lisen: unknown key",
        "[economics] colour: unknown key",
        "[economics] btc_price_usd = -1: must be greater than 0",
        "[economics.price_feed] url = 'ftp://x'",
        "[economics] btc_price_usd and [economics.price_feed]: give one, not both",
        "[economics.power_schedule #1] start = '25:61'",
        "[economics] power_price_usd_per_kwh and [[economics.power_schedule]]: give one, not both",
        "[economics] timezone = 'Nowhere/Special'",
        "[economics] fees_btc_per_block = 60.0",
        "[economics.power_override #1] rigs",
    ]
    assert len(found) == len(expected_starts), found
    for start in expected_starts:
        assert sum(p.startswith(start) for p in found) == 1, (start, found)
    message = str(exc.value)
    assert all(p in message for p in found)


# ---------------------------------------------------------------------------------------------
# Time of use, with the clock injected

TOU = f"""
btc_price_usd = 77000
timezone = "America/Chicago"

[[economics.power_schedule]]
start = "00:00"
usd_per_kwh = 0.045
[[economics.power_schedule]]
start = "17:00"
usd_per_kwh = 0.11
weekdays = {MON_FRI}
"""


@pytest.mark.parametrize(
    ("when", "price"),
    [
        ((2025, 1, 6, 16, 59, 59), 0.045),  # Monday, one second before 17:00
        ((2025, 1, 6, 17, 0, 0), 0.11),  # Monday, 17:00 exactly
        ((2025, 1, 6, 23, 59, 59), 0.11),
        ((2025, 1, 7, 0, 0, 0), 0.045),  # Tuesday midnight: back to the base price
        ((2025, 1, 10, 17, 0, 0), 0.11),  # Friday
        ((2025, 1, 10, 23, 59, 59), 0.11),
        ((2025, 1, 11, 0, 0, 0), 0.045),  # Saturday
        ((2025, 1, 11, 17, 0, 0), 0.045),  # the weekday-only entry does not apply on Saturday
        ((2025, 1, 12, 18, 0, 0), 0.045),  # nor on Sunday
    ],
)
def test_site_price_switches_at_local_boundaries(when, price):
    prices = PowerPrices(economics(TOU))
    assert prices.site(at(*when)) == price
    assert prices.for_rigs(["any.rig"], at(*when)) == {"any.rig": price}  # no override: the site's price


def test_local_weekday_and_offset_decide_not_utc():
    prices = PowerPrices(economics(TOU))
    # January (CST, UTC-6): 17:00 in Chicago is 23:00 UTC
    assert prices.site(at(2025, 1, 6, 22, 59, 59, tz=UTC)) == 0.045
    assert prices.site(at(2025, 1, 6, 23, 0, 0, tz=UTC)) == 0.11
    # July (CDT, UTC-5): 17:00 in Chicago is 22:00 UTC
    assert prices.site(at(2025, 7, 7, 21, 59, 59, tz=UTC)) == 0.045
    assert prices.site(at(2025, 7, 7, 22, 0, 0, tz=UTC)) == 0.11
    # Friday 20:00 in Chicago is already Saturday 02:00 UTC: still Friday's evening price
    assert prices.site(at(2025, 1, 11, 2, 0, 0, tz=UTC)) == 0.11
    # the same schedule read in UTC switches six hours earlier
    utc = PowerPrices(economics(TOU.replace('timezone = "America/Chicago"', 'timezone = "UTC"')))
    assert utc.site(at(2025, 1, 6, 17, 0, 0, tz=UTC)) == 0.11
    assert prices.site(at(2025, 1, 6, 17, 0, 0, tz=UTC)) == 0.045  # 11:00 in Chicago


def test_a_price_crosses_midnight_and_days_until_the_next_entry():
    prices = PowerPrices(
        economics(
            f"""
btc_price_usd = 77000
timezone = "America/Chicago"
[[economics.power_schedule]]
start = "07:00"
usd_per_kwh = 0.09
weekdays = {MON_FRI}
[[economics.power_schedule]]
start = "22:00"
usd_per_kwh = 0.035
"""
        )
    )
    assert prices.site(at(2025, 1, 6, 21, 59, 59)) == 0.09  # Monday
    assert prices.site(at(2025, 1, 6, 22, 0, 0)) == 0.035
    assert prices.site(at(2025, 1, 7, 0, 0, 0)) == 0.035  # across midnight
    assert prices.site(at(2025, 1, 7, 6, 59, 59)) == 0.035
    assert prices.site(at(2025, 1, 7, 7, 0, 0)) == 0.09
    assert prices.site(at(2025, 1, 11, 12, 0, 0)) == 0.035  # Saturday noon: Friday 22:00 still holds
    assert prices.site(at(2025, 1, 13, 6, 59, 59)) == 0.035  # Monday dawn: Sunday 22:00 still holds
    assert prices.site(at(2025, 1, 13, 7, 0, 0)) == 0.09


DST = """
btc_price_usd = 77000
timezone = "America/Chicago"
[[economics.power_schedule]]
start = "00:00"
usd_per_kwh = 0.04
[[economics.power_schedule]]
start = "06:00"
usd_per_kwh = 0.08
"""


def test_spring_forward_switches_by_the_wall_clock():
    prices = PowerPrices(economics(DST))
    # Sunday 9 March 2025: 02:00 CST jumps to 03:00 CDT, so 06:00 comes 5 h after midnight, not 6
    midnight = at(2025, 3, 9)
    six = at(2025, 3, 9, 6)
    assert six - midnight == 5 * 3600
    assert six == at(2025, 3, 9, 11, tz=UTC)  # 06:00 CDT
    assert prices.site(six - 1) == 0.04
    assert prices.site(six) == 0.08
    assert prices.site(midnight + 6 * 3600 - 1) == 0.08  # six elapsed hours would be too late
    # the day before, 06:00 CST is 12:00 UTC
    assert prices.site(at(2025, 3, 8, 11, 59, 59, tz=UTC)) == 0.04
    assert prices.site(at(2025, 3, 8, 12, tz=UTC)) == 0.08


def test_fall_back_follows_the_repeated_wall_clock_hour():
    prices = PowerPrices(
        economics(
            """
btc_price_usd = 77000
timezone = "America/Chicago"
[[economics.power_schedule]]
start = "00:00"
usd_per_kwh = 0.04
[[economics.power_schedule]]
start = "01:30"
usd_per_kwh = 0.08
"""
        )
    )
    # Sunday 2 November 2025: 01:00-02:00 happens twice (CDT, then CST)
    first = at(2025, 11, 2, 1, 30)
    second = at(2025, 11, 2, 1, 30, fold=1)
    assert second - first == 3600
    assert prices.site(first - 1) == 0.04
    assert prices.site(first) == 0.08
    assert prices.site(at(2025, 11, 2, 1, 0, fold=1)) == 0.04  # the clock reads 01:00 again
    assert prices.site(second - 1) == 0.04
    assert prices.site(second) == 0.08


OVERRIDES = (
    TOU
    + """
[[economics.power_override]]
rigs = ["acct.rack7-01"]
usd_per_kwh = 0.03

[[economics.power_override]]
rigs = ["acct.rack7-*", "acct.spare?"]
schedule = [
  { start = "09:00", usd_per_kwh = 0.02 },
  { start = "18:00", usd_per_kwh = 0.06 },
]

[[economics.power_override]]
rigs = ["acct.rack7-0*"]
usd_per_kwh = 0.5
"""
)
RIGS = ["acct.rack7-01", "acct.rack7-02", "acct.rack7-10", "acct.spare1", "acct.spare10", "acct.rack8-01", "other"]


def test_overrides_by_name_and_glob_first_match_wins():
    prices = PowerPrices(economics(OVERRIDES))
    now = at(2025, 1, 6, 12)  # Monday noon: site 0.045, second override 0.02
    assert prices.for_rigs(RIGS, now) == {
        "acct.rack7-01": 0.03,  # exact name, though the two globs below also match
        "acct.rack7-02": 0.02,  # the rack glob comes before "acct.rack7-0*"
        "acct.rack7-10": 0.02,
        "acct.spare1": 0.02,
        "acct.spare10": 0.045,  # "?" is one character: not matched, the site price
        "acct.rack8-01": 0.045,
        "other": 0.045,
    }
    assert prices.for_rigs([], now) == {}


def test_override_schedule_switches_at_its_own_boundaries():
    prices = PowerPrices(economics(OVERRIDES))
    rigs = ["acct.rack7-02", "acct.rack7-01", "other"]

    def expect(when, override, site):
        assert prices.for_rigs(rigs, at(*when)) == {"acct.rack7-02": override, "acct.rack7-01": 0.03, "other": site}
        assert prices.site(at(*when)) == site

    expect((2025, 1, 6, 8, 59, 59), 0.06, 0.045)  # Monday: Sunday's 18:00 price held across midnight
    expect((2025, 1, 6, 9, 0, 0), 0.02, 0.045)
    expect((2025, 1, 6, 16, 59, 59), 0.02, 0.045)
    expect((2025, 1, 6, 17, 0, 0), 0.02, 0.11)  # the site switches, the override does not
    expect((2025, 1, 6, 17, 59, 59), 0.02, 0.11)
    expect((2025, 1, 6, 18, 0, 0), 0.06, 0.11)  # now the override switches
    expect((2025, 1, 11, 17, 0, 0), 0.02, 0.045)  # Saturday: the site's weekday entry does not apply
    # cached matches do not freeze the prices: back to an earlier moment
    expect((2025, 1, 6, 8, 59, 59), 0.06, 0.045)
