"""Payout addresses of every kind on every network, bad addresses, and BitcoindConfig's checks."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from fleetd.chain.address import CHAINS, decode_address
from fleetd.sources.bitcoind import BitcoindConfig

# (chain, kind, address, scriptPubKey) from Bitcoin Core's src/test/data/key_io_valid.json
VECTORS = [
    ("main", "p2pkh", "1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo", "76a914a31c06bd463e3923bc1aadbde48b16976c08071788ac"),
    ("main", "p2sh", "36j4NfKv6Akva9amjWrLG6MuSQym1GuEmm", "a914373b819a068f32b7a6b38b6b38729647cfde01c287"),
    ("main", "p2wpkh", "bc1qvyq0cc6rahyvsazfdje0twl7ez82ndmuac2lhv",
     "00146100fc6343edc8c874496cb2f5bbfec88ea9b77c"),
    ("main", "p2wsh", "bc1qyucykdlhp62tezs0hagqury402qwhk589q80tqs5myh3rxq34nwqhkdhv7",
     "002027304b37f70e94bc8a0fbf500e0c957a80ebda87280ef58214d92f119811acdc"),
    ("main", "p2tr", "bc1p83n3au0rjylefxq2nc2xh2y4jzz4pm6zxj4mw5pagdjjr2a9f36s6jjnnu",
     "51203c671ef1e3913f94980a9e146ba895908550ef4234abb7503d436521aba54c75"),
    ("testnet4", "p2pkh", "mzK2FFDEhxqHcmrJw1ysqFkVyhUULo45hZ", "76a914ce28b26c57472737f5c3561a1761185bd8589a4388ac"),
    ("testnet4", "p2sh", "2NC2hEhe28ULKAJkW5MjZ3jtTMJdvXmByvK", "a914ce0bba75891ff9ec60148d4bd4a09ee2dc5c933187"),
    ("testnet4", "p2wpkh", "tb1qcrh3yqn4nlleplcez2yndq2ry8h9ncg3qh7n54",
     "0014c0ef1202759fff90ff19128936814321ee59e111"),
    ("testnet4", "p2wsh", "tb1quyl9ujpgwr2chdzdnnalen48sup245vdfnh2jxhsuq3yx80rrwlq5hqfe4",
     "0020e13e5e482870d58bb44d9cfbfccea78702aad18d4ceea91af0e022431de31bbe"),
    ("testnet4", "p2tr", "tb1p35n52jy6xkm4wd905tdy8qtagrn73kqdz73xe4zxpvq9t3fp50aqk3s6gz",
     "51208d2745489a35b75734afa2da43817d40e7e8d80d17a26cd4460b0055c521a3fa"),
    ("signet", "p2pkh", "mww4LvqtTMKvmeQvizPz2EQv26xTneWrbg", "76a914b4110ba93ac54afc14da3bdd19614774a2d55d2988ac"),
    ("signet", "p2sh", "2N1r7aC69VHeE7yQJPDLi9T1PYq4wnwvjuT", "a9145e5a35ab44b3efaea5129ba22b88ba3e2976614587"),
    ("signet", "p2wpkh", "tb1q3vya2h5435jkugq2few7dmktlrwq4ejmfaw7kr",
     "00148b09d55e958d256e200a4e5de6eecbf8dc0ae65b"),
    ("signet", "p2wsh", "tb1qxkhrl2s6ttrclckldruea0e8anhrehffl8xv7t0pdyrzm08v2hyqy408nf",
     "002035ae3faa1a5ac78fe2df68f99ebf27ecee3cdd29f9cccf2de169062dbcec55c8"),
    ("signet", "p2tr", "tb1pae5um27ahn8n73pgexe3kcwlp8dhswpn684h2k2w6t9a7w3eq65qephd5y",
     "5120ee69cdabddbccf3f4428c9b31b61df09db783833d1eb75594ed2cbdf3a3906a8"),
    ("regtest", "p2pkh", "n4fajahJrAuKbN7uNsKjLjQkz9Qn5ewJXQ", "76a914fdeca3b08e38af53d7c4c60e3ad208ce5066441088ac"),
    ("regtest", "p2sh", "2MxFajLApXpYk4VodBSZSt7rw8y4ryABkfA", "a91436e9f191e0b75036a77f65e2eaa4752443233fbe87"),
    ("regtest", "p2wpkh", "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9",
     "00146f58bac9506f9bfb821d62e69330410bb56f0085"),
    ("regtest", "p2wsh", "bcrt1qan8gntac7z7me2ejt4hpru42ad2f759fmy0m3ejvs98656znv7eqga4uhv",
     "0020ecce89afb8f0bdbcab325d6e11f2aaeb549f50a9d91fb8e64c814faa685367b2"),
    ("regtest", "p2tr", "bcrt1pfwxjqvtt4tcxrtdluukfmy2dv7xd2qzdfy6kajv5nwn4yam3wxkq3553uh",
     "51204b8d20316baaf061adbfe72c9d914d678cd5004d49356ec9949ba752777171ac"),
]  # fmt: skip

# Which chains share an address format with the vector's chain (Core's chainparams).
SAME_FORMAT = {
    ("main", "base58"): {"main"},
    ("main", "bech32"): {"main"},
    ("testnet4", "base58"): {"test", "testnet4", "signet", "regtest"},
    ("testnet4", "bech32"): {"test", "testnet4", "signet"},
    ("signet", "base58"): {"test", "testnet4", "signet", "regtest"},
    ("signet", "bech32"): {"test", "testnet4", "signet"},
    ("regtest", "base58"): {"test", "testnet4", "signet", "regtest"},
    ("regtest", "bech32"): {"regtest"},
}


def _family(kind: str) -> str:
    return "base58" if kind in ("p2pkh", "p2sh") else "bech32"


# -- independent encoders from the BIP173/BIP350 and base58check specs, to make bad addresses ----

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def segwit_address(hrp: str, version: int, program: bytes, bech32m: bool) -> str:
    acc = bits = 0
    data = [version]
    for byte in program:
        acc = acc << 8 | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append(acc >> bits & 31)
    if bits:
        data.append(acc << (5 - bits) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    const = 0x2BC830A3 if bech32m else 1
    polymod = _polymod(expanded + data + [0] * 6) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def base58check(payload: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


@pytest.mark.parametrize("chain, kind, address, script", VECTORS, ids=[f"{v[0]}-{v[1]}" for v in VECTORS])
def test_every_address_kind_on_every_network_decodes_to_its_script(chain, kind, address, script):
    decoded = decode_address(address)
    assert decoded.kind == kind
    assert decoded.script_pubkey.hex() == script
    assert decoded.chains == SAME_FORMAT[chain, _family(kind)]
    assert decoded.script_for(chain).hex() == script
    if _family(kind) == "bech32":  # BIP173: all upper case is the same address (QR codes use it)
        assert decode_address(address.upper()).script_pubkey.hex() == script


@pytest.mark.parametrize("chain, kind, address, script", VECTORS, ids=[f"{v[0]}-{v[1]}" for v in VECTORS])
def test_an_address_for_another_network_is_refused_with_the_reason(chain, kind, address, script):
    decoded = decode_address(address)
    for other in set(CHAINS) - SAME_FORMAT[chain, _family(kind)]:
        with pytest.raises(ValueError, match=f"but the node runs {other}: use an address of that network"):
            decoded.script_for(other)


def test_segwit_checksum_variant_must_match_the_witness_version():
    program20, program32 = bytes(range(20)), bytes(range(32))
    # the encoder agrees with the decoder on good addresses...
    assert decode_address(segwit_address("bc", 0, program20, bech32m=False)).kind == "p2wpkh"
    assert decode_address(segwit_address("tb", 1, program32, bech32m=True)).kind == "p2tr"
    # ...and BIP350's rule is enforced: v0 uses bech32, v1+ bech32m
    for bad in (segwit_address("bc", 0, program20, bech32m=True), segwit_address("bc", 1, program32, bech32m=False)):
        with pytest.raises(ValueError, match="wrong checksum variant"):
            decode_address(bad)


@pytest.mark.parametrize(
    "address, message",
    [
        ("", "empty address"),
        ("bc1qvyq0cc6rahyvsazfdje0twl7ez82ndmuac2lhw", "not a valid bech32"),  # last character changed
        ("bc1qvyq0cc6rahyvsazfdje0twl7ez82ndmuac2lhV", "mixes upper and lower case"),
        ("1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mp", "bad checksum"),
        ("0FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo", "not base58"),
        ("bc1z2rksukkjr8", "witness version 2"),  # valid BIP350 address, but an undefined version
        (segwit_address("bc", 1, bytes(20), bech32m=True), "witness version 1 address with a 20-byte program"),
        ("ltc1qg42tkwuuxefutzxezdkdel39gfstuap288mfea", "not a Bitcoin address"),
        (base58check(b"\x30" + bytes(20)), "version byte 0x30"),  # Litecoin's P2PKH prefix
        ("bitcoin:1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo", "not a Bitcoin address"),
        ("1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo\u00e9", "non-ASCII"),
    ],
)
def test_bad_addresses_say_what_is_wrong(address, message):
    with pytest.raises(ValueError, match=message):
        decode_address(address)


def test_a_private_key_pasted_as_address_is_refused_without_echoing_it():
    wif = "5JuW2AMDYu4xVwRG9DZW18VbzQrGcd5RCgb99sS6ehJsNQXu5b9"  # key_io_valid.json, a mainnet private key
    with pytest.raises(ValueError) as caught:
        decode_address(wif)
    assert wif not in str(caught.value)
    assert "private or extended key" in str(caught.value)
    with pytest.raises(ValueError) as caught:
        BitcoindConfig(payout_address=wif, user="u", password="p")
    assert wif not in str(caught.value)


# -- BitcoindConfig -----------------------------------------------------------------------------

GOOD = {"payout_address": "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9", "user": "u", "password": "p"}


def test_config_defaults():
    config = BitcoindConfig(**GOOD)
    assert config.url == "http://127.0.0.1:8332"
    assert config.pool_tag == "/fleetd/" and config.zmq == "" and config.network == "" and config.longpoll
    assert (config.poll_interval_seconds, config.refresh_interval_seconds) == (1.0, 30.0)
    assert (config.max_job_age_seconds, config.rpc_timeout_seconds) == (300.0, 10.0)
    assert (config.extranonce1_size, config.extranonce2_size) == (4, 8)
    assert "p'" not in repr(config) and "password=" not in repr(config)  # the secret stays out of logs
    assert dataclasses.replace(config, network="regtest").network == "regtest"
    BitcoindConfig(payout_address=GOOD["payout_address"], cookie_file="~/.bitcoin/regtest/.cookie")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"payout_address": ""}, "payout_address is required"),
        ({"payout_address": "nonsense"}, "payout_address: 'nonsense' is not a Bitcoin address"),
        ({"network": "main"}, "payout_address: .* but the node runs main"),
        ({"network": "mainnet"}, "network = 'mainnet': use one of main, test, testnet4, signet, regtest"),
        ({"url": "127.0.0.1:8332"}, "url = '127.0.0.1:8332': must be http://host:port"),
        ({"url": "http://u:secret@127.0.0.1:8332"}, "url = 'http://127.0.0.1:8332': put credentials in user/password"),
        ({"url": "http://127.0.0.1:99999"}, "url = .*out of range"),
        ({"user": "", "password": ""}, "cookie_file, or user and password not set"),
        ({"password": ""}, "password not set"),
        ({"cookie_file": "/tmp/.cookie"}, "cookie_file and user/password are both set"),
        ({"user": "a:b"}, "user = 'a:b': must not contain ':'"),
        ({"zmq": "127.0.0.1:28332"}, "zmq = '127.0.0.1:28332': must be the node's -zmqpubhashblock endpoint"),
        ({"zmq": "tcp://127.0.0.1:"}, "zmq = "),
        ({"poll_interval_seconds": 0}, "poll_interval_seconds = 0: must be a positive number"),
        ({"refresh_interval_seconds": float("nan")}, "refresh_interval_seconds = nan"),
        ({"max_job_age_seconds": -1}, "max_job_age_seconds = -1"),
        ({"rpc_timeout_seconds": "10"}, "rpc_timeout_seconds = '10'"),
        ({"longpoll": "yes"}, "longpoll = 'yes': must be true or false"),
        ({"extranonce2_size": 1}, "extranonce2_size = 1 is out of range"),
        ({"pool_tag": "x" * 200}, "pool_tag = 'x+' is 200 bytes; at most \\d+ fit"),
    ],
)
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        BitcoindConfig(**{**GOOD, **overrides})


def test_config_accepts_every_network_with_a_matching_address():
    for chain, kind, address, _ in VECTORS:
        assert BitcoindConfig(**{**GOOD, "payout_address": address, "network": chain}).address.kind == kind
    BitcoindConfig(**{**GOOD, "payout_address": VECTORS[7][2], "network": "test"})  # testnet3 shares tb1
    BitcoindConfig(**{**GOOD, "zmq": "tcp://127.0.0.1:28332"})
    BitcoindConfig(**{**GOOD, "zmq": "ipc:///var/run/bitcoind.zmq"})
