"""Configuration: the documented keys work as written; every bad key and value is named."""

from __future__ import annotations

import pytest

from fleetd.cli import main
from fleetd.config import Config, ConfigError, HostPort, load, parse, parse_host_port

ISSUE_EXAMPLE = """
[stratum]
listen = "0.0.0.0:3333"
min_difficulty = 0.0001
start_difficulty = 1024
[http]
listen = "127.0.0.1:9550"
[source]
kind = "demo"          # "demo" | "bitcoind" | "upstream"
network_difficulty = 0.01   # demo chain only: a share meeting it is a block
"""

BITCOIND = """
[source.bitcoind]
url = "http://127.0.0.1:18443"
cookie_file = "/var/lib/bitcoind/regtest/.cookie"
payout_address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
zmq = "tcp://127.0.0.1:28332"
"""
UPSTREAM = """
[source.upstream]
pools = ["stratum+tcp://127.0.0.1:3334", "stratum+ssl://127.0.0.1:3443"]
user = "site1"
password = "x"
passthrough = true
"""


def test_documented_example_loads_as_written():
    config = parse(ISSUE_EXAMPLE)
    assert config.stratum.listen == HostPort("0.0.0.0", 3333)
    assert config.stratum.min_difficulty == 0.0001
    assert config.stratum.start_difficulty == 1024.0
    assert config.http.listen == HostPort("127.0.0.1", 9550)
    assert config.source.kind == "demo" and config.source.network_difficulty == 0.01


def test_empty_file_gives_the_defaults():
    assert parse("") == Config()


DEMO_ON_NETWORK = (
    '[source] kind = "demo" with [stratum] listen = "0.0.0.0:3333": the demo chain is not Bitcoin; '
    'rigs on the network would mine it for nothing. Choose kind = "bitcoind" or "upstream", '
    "listen on a loopback address, or set [source] allow_demo_on_network = true."
)


def test_the_built_in_defaults_refuse_to_serve_the_demo_chain_on_all_interfaces():
    with pytest.raises(ConfigError) as exc:
        load(None)
    assert exc.value.problems == [DEMO_ON_NETWORK]
    assert exc.value.source == "built-in defaults"


@pytest.mark.parametrize("listen", ["0.0.0.0:3333", ":3333", "192.168.1.5:3333", "[::]:3333", "pool.site:3333"])
def test_a_file_serving_the_demo_chain_on_a_network_address_is_refused(tmp_path, listen):
    path = tmp_path / "site.toml"
    path.write_text(f'[stratum]\nlisten = "{listen}"\n')
    with pytest.raises(ConfigError) as exc:
        load(path)
    (problem,) = exc.value.problems
    assert problem == DEMO_ON_NETWORK.replace("0.0.0.0:3333", str(parse_host_port(listen)))


@pytest.mark.parametrize(
    "text",
    [
        '[stratum]\nlisten = "127.0.0.1:3333"',
        '[stratum]\nlisten = "127.1.0.9:3333"',
        '[stratum]\nlisten = "[::1]:3333"',
        '[stratum]\nlisten = "localhost:3333"',
        "[source]\nallow_demo_on_network = true",
        '[source]\nkind = "bitcoind"\n' + BITCOIND,
    ],
)
def test_loopback_an_explicit_allowance_or_a_real_source_is_served(tmp_path, text):
    path = tmp_path / "site.toml"
    path.write_text(text)
    assert load(path) == parse(text)


def test_the_refusal_waits_for_valid_values(tmp_path):
    """With a bad listen its default stands in: the refusal would quote what nobody wrote."""
    path = tmp_path / "site.toml"
    path.write_text('[stratum]\nlisten = "nowhere"\n')
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert exc.value.problems == ["[stratum] listen = 'nowhere': must be \"host:port\", e.g. \"0.0.0.0:3333\""]


def test_every_problem_is_named_in_one_pass():
    text = """
[stratum]
lisen = "0.0.0.0:3333"
min_difficulty = -1
version_mask = "zz"
extranonce2_size = 40
listen = "0.0.0.0:99999"
[sourc]
kind = "demo"
[auth]
policy = "pw"
[log]
level = 3
"""
    with pytest.raises(ConfigError) as exc:
        parse(text, "site.toml")
    assert exc.value.problems == [
        "[stratum] lisen: unknown key (did you mean 'listen'?)",
        "[stratum] min_difficulty = -1: must be between 1e-09 and 1e+15",
        "[stratum] version_mask = 'zz': must be 8 hex digits, e.g. \"1fffe000\"",
        "[stratum] extranonce2_size = 40: must be between 2 and 16",
        "[stratum] listen = '0.0.0.0:99999': port 99999 out of range 0-65535",
        "[sourc]: unknown section (did you mean 'source'?)",
        "[auth] policy = 'pw': must be one of open, allowlist, password",
        "[log] level = 3: must be one of debug, info, warning, error",
    ]
    assert str(exc.value).startswith("site.toml: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[stratum]\nstart_difficulty = 1e14\nmax_difficulty = 1e12", "start_difficulty = 1e+14: must be between min_difficulty and max_difficulty"),
        ("[stratum]\nmin_difficulty = 1e-12", "must be between 1e-09"),
        ("[stratum]\nmin_difficulty = 10.0\nmax_difficulty = 1.0", "min_difficulty = 10 is above max_difficulty = 1"),
        ('[auth]\npolicy = "allowlist"', 'policy = "allowlist" needs accounts'),
        ('[auth]\npolicy = "password"', 'policy = "password" needs a [auth.passwords] table'),
        ('[source]\nkind = "bitcoind"', '[source] kind = "bitcoind" needs a [source.bitcoind] table'),
        ('[source]\nkind = "upstream"', '[source] kind = "upstream" needs a [source.upstream] table'),
        ("[source]\nbitcoind = 5", "[source] bitcoind = 5: must be a [source.bitcoind] table"),
        ('[source.bitcoind]\nurl = "http://127.0.0.1:8332"', "[source.bitcoind] payout_address is required"),
        ('[source.bitcoind]\npayout_address = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"\ncookie = "x"', "[source.bitcoind] cookie: unknown key"),
        ('[source.upstream]\nuser = "a"', "[source.upstream] pools: required"),
        ('[source.upstream]\npools = ["http://pool"]\nuser = "a"', "[source.upstream] pools"),
        ('[source]\npayout_script = "xyz"', "must be hex"),
        ("[stratum]\nlisten = 3333", 'must be "host:port"'),
        ("[stratum]\nreconnect_on_shutdown = 1", "must be true or false"),
        ("[stratum]\nmin_difficulty = nan", "must be"),
        ("stratum = 5", "must be a [stratum] table"),
        ("[stratum\nlisten=", "not valid TOML"),
    ],
)
def test_bad_values(text, problem):
    with pytest.raises(ConfigError) as exc:
        parse(text)
    assert any(problem in p for p in exc.value.problems), exc.value.problems


def test_ipv6_and_all_interfaces_listen_addresses():
    config = parse('[stratum]\nlisten = "[::1]:3333"\n[http]\nlisten = ":9550"')
    assert config.stratum.listen == HostPort("::1", 3333)
    assert config.http.listen == HostPort("0.0.0.0", 9550)


def test_unreadable_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(binary)


def test_check_config_command(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text(ISSUE_EXAMPLE + "allow_demo_on_network = true\n")
    assert main(["check-config", str(good)]) == 0
    assert "ok (stratum 0.0.0.0:3333, http 127.0.0.1:9550, source demo)" in capsys.readouterr().out

    demo_on_network = tmp_path / "demo.toml"
    demo_on_network.write_text(ISSUE_EXAMPLE)
    assert main(["check-config", str(demo_on_network)]) == 1
    assert capsys.readouterr().err == f"{demo_on_network}: 1 problem(s)\n  {DEMO_ON_NETWORK}\n"

    bad = tmp_path / "bad.toml"
    bad.write_text("[stratum]\nlisen = 1\nstart_difficulty = -4\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: 2 problem(s)" in err
    assert "[stratum] lisen: unknown key (did you mean 'listen'?)" in err
    assert "[stratum] start_difficulty = -4: must be between 1e-09" in err


def test_example_config_documents_every_key_with_its_default():
    import dataclasses
    import tomllib

    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "deploy" / "fleetd.example.toml"
    raw = tomllib.loads(example.read_text())
    # the example shows the defaults, but keeps its demo chain on loopback
    loopback = dataclasses.replace(Config().stratum, listen=HostPort("127.0.0.1", 3333))
    assert load(example) == dataclasses.replace(Config(), stratum=loopback)
    for section in dataclasses.fields(Config):
        if section.name == "economics":  # off by default: shown commented out, checked below
            continue
        documented = set(raw.get(section.name, {}))
        keys = {f.name for f in dataclasses.fields(getattr(Config(), section.name))}
        commented = {"passwords", "bitcoind", "upstream", "price_above_usd_per_kwh", "windows"}  # shown commented out
        missing = keys - documented - commented
        assert not missing, f"[{section.name}] keys missing from the example: {missing}"
    # the commented source tables are valid as soon as they are uncommented
    for kind in ("bitcoind", "upstream"):
        block = example.read_text().split(f"# [source.{kind}]\n", 1)[1].split("\n\n", 1)[0]
        table = f"[source]\nkind = \"{kind}\"\n[source.{kind}]\n" + "\n".join(line[2:] for line in block.splitlines())
        table = table.replace("bc1q...", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
        assert parse(table).source.kind == kind
    # the commented curtailment window and price threshold are valid once uncommented
    block = example.read_text().split("[curtailment]\n", 1)[1].split("\n\n", 1)[0]
    text = "[curtailment]\n" + "\n".join(line[2:] if line.startswith("# ") else line for line in block.splitlines())
    curtailment = parse(text).curtailment
    assert curtailment.price_above_usd_per_kwh == 0.15 and curtailment.windows[0].shed_kw == 500.0
    # the commented [economics] block is valid once uncommented, but prices come from one place each
    block = example.read_text().split("# [economics]\n", 1)[1].split("\n\n", 1)[0]
    lines = [line[2:] for line in block.splitlines()]
    text = "[economics]\n" + "\n".join(lines)
    problems = str(pytest.raises(ConfigError, parse, text).value)
    assert "give one, not both" in problems
    for drop in ("btc_price_usd", "power_price_usd_per_kwh"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(drop))
    economics = parse(text).economics
    assert economics.price_feed.json_path == "bitcoin.usd" and economics.overrides[0].patterns == ("acct.rack7-*",)
    assert [e.usd_per_kwh for e in economics.power_schedule.entries] == [0.045, 0.11]



@pytest.mark.parametrize(("kind", "source_class"), [("demo", "DemoChain"), ("bitcoind", "BitcoindSource"), ("upstream", "UpstreamSource")])
def test_kind_alone_switches_between_configured_sources(kind, source_class):
    from fleetd.app import build_source

    config = parse(f'[stratum]\nextranonce2_size = 6\n[source]\nkind = "{kind}"\npool_tag = "/site1/"\n' + BITCOIND + UPSTREAM)
    assert config.source.kind == kind
    assert config.source.bitcoind.payout_address == "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    assert config.source.bitcoind.pool_tag == "/site1/"  # shared [source] keys reach the source
    assert config.source.bitcoind.extranonce2_size == 6  # and so does the rigs' extranonce layout
    assert config.source.upstream.passthrough is True
    assert len(config.source.upstream.pools) == 2
    assert type(build_source(config)).__name__ == source_class


# -- secrets never printed -------------------------------------------------------------------

SECRETS = ("hunter2", "s3cretpw", "rpcpass99", "feedpass77")
VALID_SECRETS = """
[auth]
policy = "password"
[auth.passwords]
rig1 = "hunter2"
[source]
kind = "upstream"
[source.upstream]
pools = ["stratum+tcp://pool.example:3333"]
user = "alice"
password = "s3cretpw"
"""
# each made invalid in its own way; every one quotes or sits next to a secret
INVALID_WITH_SECRETS = [
    VALID_SECRETS.replace('rig1 = "hunter2"', 'rig1 = "hunter2"\nrig2 = 5'),
    VALID_SECRETS.replace('[auth.passwords]\nrig1 = "hunter2"', 'passwords = "hunter2"'),
    VALID_SECRETS.replace('[auth.passwords]\nrig1 = "hunter2"', 'passwords = ["hunter2"]'),
    VALID_SECRETS.replace('"stratum+tcp://pool.example:3333"', '"stratum+tcp://alice:s3cretpw@pool.example:3333"'),
    VALID_SECRETS.replace('"stratum+tcp://pool.example:3333"', '"stratum+tcp://alice:s3cretpw@pool.example:99999"'),
    VALID_SECRETS.replace('"stratum+tcp://pool.example:3333"', '"http://alice:s3cretpw@pool.example"'),
    VALID_SECRETS.replace('password = "s3cretpw"', 'password = ["s3cretpw"]'),
    VALID_SECRETS.replace('password = "s3cretpw"', 'password = "s3cretpw"\npasword = "s3cretpw"'),
    VALID_SECRETS.replace('policy = "password"', 'policy = "hunter2"'),
    VALID_SECRETS + '[source.bitcoind]\nurl = "http://bob:rpcpass99@127.0.0.1:8332"\nuser = "bob"\npassword = "rpcpass99"\n',
    VALID_SECRETS + '[source.bitcoind]\nurl = "http://127.0.0.1:8332"\nuser = "bob"\npassword = "rpcpass99"\ncookie_file = "/c"\n',
    VALID_SECRETS + '[economics]\nbtc_price_usd = 1\npower_price_usd_per_kwh = 0.05\n[economics.price_feed]\n'
    'url = "ftp://u:feedpass77@prices.example/btc"\njson_path = "usd"\n',
    VALID_SECRETS.replace('[auth.passwords]', '[[auth.passwords]]'),
]


@pytest.mark.parametrize("text", INVALID_WITH_SECRETS)
def test_config_errors_never_show_a_password_or_url_credentials(text):
    with pytest.raises(ConfigError) as raised:
        parse(text)
    shown = str(raised.value) + "\n".join(raised.value.problems)
    assert not [secret for secret in SECRETS if secret in shown], shown


def test_a_bad_passwords_table_is_one_problem_naming_the_account_not_the_password():
    with pytest.raises(ConfigError) as raised:
        parse(INVALID_WITH_SECRETS[0])
    assert raised.value.problems == [
        "[auth] passwords = {'rig1': ***, 'rig2': ***}: the password of 'rig2' must be a string in quotes"
    ]  # and no "needs a [auth.passwords] table": the table is there, one of its values is wrong
    with pytest.raises(ConfigError) as raised:
        parse(INVALID_WITH_SECRETS[1])
    assert raised.value.problems == ['[auth] passwords = ***: must be a table of account = "password"']
    with pytest.raises(ConfigError) as raised:
        parse('[auth]\npolicy = "password"\n')
    assert raised.value.problems == ['[auth] policy = "password" needs a [auth.passwords] table']


def test_a_url_with_credentials_is_shown_with_its_user_and_a_masked_password():
    with pytest.raises(ConfigError) as raised:
        parse(INVALID_WITH_SECRETS[3])
    (problem,) = raised.value.problems
    assert "'stratum+tcp://alice:***@pool.example:3333'" in problem
    assert "credentials go in user and password" in problem
