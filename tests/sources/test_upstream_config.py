"""UpstreamConfig validation and the proxy's pure decisions (names, layout, forwarding)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from fleetd.sources.base import BlockBuilder, ExtranonceLayout, ForwardingSource, JobSource
from fleetd.sources.demo import DemoChain
from fleetd.sources.upstream import PoolUrl, UpstreamConfig, UpstreamSource, build_source
from fleetd.stratum.job import Job

POOL = "stratum+tcp://127.0.0.1:3333"


def test_defaults():
    config = UpstreamConfig(pools=[POOL], user="acct")
    assert config.pools == (POOL,)  # a TOML list becomes a tuple: the config is frozen
    assert (config.password, config.passthrough, config.prefix_size) == ("x", False, 2)
    assert (config.failover_seconds, config.stall_seconds, config.failback_seconds) == (5.0, 120.0, 30.0)
    assert config.max_job_age_seconds == 120.0 and config.version_rolling and config.version_mask == 0x1FFFE000
    assert config.max_consecutive_rejects == 50 and config.tls_verify and config.tls_ca_file is None


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"pools": []}, "pools"),
        ({"pools": POOL}, "pools"),  # a string, not a list
        ({"pools": [POOL, "http://pool:3333"]}, "pools[1]"),
        ({"pools": ["stratum+tcp://pool"]}, "pools[0]"),  # no port
        ({"pools": ["stratum+tcp://pool:70000"]}, "pools[0]"),
        ({"user": ""}, "user"),
        ({"password": None}, "password"),
        ({"passthrough": "yes"}, "passthrough"),
        ({"prefix_size": 0}, "prefix_size"),
        ({"prefix_size": 5}, "prefix_size"),
        ({"prefix_size": True}, "prefix_size"),
        ({"failover_seconds": 0}, "failover_seconds"),
        ({"stall_seconds": float("inf")}, "stall_seconds"),
        ({"failback_seconds": -1}, "failback_seconds"),
        ({"max_job_age_seconds": "60"}, "max_job_age_seconds"),
        ({"version_mask": 0}, "version_mask"),
        ({"version_mask": 1 << 32}, "version_mask"),
        ({"max_consecutive_rejects": -1}, "max_consecutive_rejects"),
        ({"tls_ca_file": ""}, "tls_ca_file"),
    ],
)
def test_a_bad_value_names_its_key(options, key):
    values = {"pools": [POOL], "user": "acct", **options}
    with pytest.raises(ValueError, match="^" + re.escape(f"upstream {key} = ")):
        UpstreamConfig(**values)


def test_from_mapping_names_unknown_and_missing_keys_and_reads_a_hex_mask():
    config = UpstreamConfig.from_mapping({"pools": [POOL], "user": "acct", "version_mask": "1fffe000"})
    assert config.version_mask == 0x1FFFE000
    with pytest.raises(ValueError, match="upstream stall_secs: unknown key"):
        UpstreamConfig.from_mapping({"pools": [POOL], "user": "acct", "stall_secs": 3})
    with pytest.raises(ValueError, match="upstream user: required"):
        UpstreamConfig.from_mapping({"pools": [POOL]})
    with pytest.raises(ValueError, match="upstream version_mask = 'zz'"):
        UpstreamConfig.from_mapping({"pools": [POOL], "user": "a", "version_mask": "zz"})


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("stratum+tcp://pool.example:3333", PoolUrl("pool.example", 3333, False)),
        ("stratum+ssl://pool.example:443/", PoolUrl("pool.example", 443, True)),
        ("stratum+tcp://[::1]:3333", PoolUrl("::1", 3333, False)),
    ],
)
def test_pool_urls(url, parsed):
    assert PoolUrl.parse(url) == parsed
    assert PoolUrl.parse(str(parsed)) == parsed


def test_worker_names_upstream():
    single = build_source(UpstreamConfig(pools=[POOL], user="acct"))
    assert single.upstream_worker("site.rig7") == "acct"
    through = build_source(UpstreamConfig(pools=[POOL], user="acct", passthrough=True))
    assert through.upstream_worker("site.rig7") == "acct.rig7"
    assert through.upstream_worker("rig7") == "acct.rig7"
    assert through.upstream_worker("site.row2.rig7") == "acct.row2.rig7"


def test_the_source_is_a_job_source_and_a_forwarding_one_and_demo_is_not_forwarding():
    source = UpstreamSource(UpstreamConfig(pools=[POOL], user="acct", prefix_size=3))
    assert isinstance(source, JobSource) and isinstance(source, ForwardingSource)
    assert not isinstance(source, BlockBuilder)  # its pool builds the blocks
    assert not isinstance(DemoChain(), ForwardingSource) and isinstance(DemoChain(), BlockBuilder)
    assert source.extranonce_layout() == ExtranonceLayout(3, 5)  # assumed 8-byte upstream until one answers
    assert source.layout_problem(5) is None
    assert "extranonce2 too small: the pool offers 4 bytes" in source.layout_problem(4)
    health = source.health()
    assert not health.up and "not tried yet" in health.detail


def test_a_share_on_a_job_that_is_not_the_sources_is_not_forwarded():
    source = UpstreamSource(UpstreamConfig(pools=[POOL], user="acct"))
    job = Job("j1", bytes(32), b"", b"", (), 0x20000000, 0x1D00FFFF, 0, True)  # not one it published
    share = SimpleNamespace(worker="site.rig1", extranonce1=b"\x00\x01", extranonce2=bytes(6), ntime=0, nonce=0,
                            version=0x20000000)  # fmt: skip
    assert source.submit_share(job, share, bytes(32)) is None
