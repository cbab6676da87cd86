"""Bitcoin addresses → the scriptPubKey a coinbase pays, checked against the node's chain.

Decoding (base58check, bech32/bech32m with BIP173/BIP350 checksum rules) is embit's;
this module adds the network table in Bitcoin Core's chain names (``getblockchaininfo``
``chain``) and refuses what a pool must never pay to: an address of another network, and
witness versions 2..16 (not yet defined, so anyone could spend them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from embit import base58, bech32

# Bitcoin Core's chain names as getblockchaininfo reports them.
CHAINS = ("main", "test", "testnet4", "signet", "regtest")

P2PKH = "p2pkh"
P2SH = "p2sh"
P2WPKH = "p2wpkh"
P2WSH = "p2wsh"
P2TR = "p2tr"

_OP_DUP, _OP_HASH160, _OP_EQUALVERIFY, _OP_CHECKSIG, _OP_EQUAL = 0x76, 0xA9, 0x88, 0xAC, 0x87
_OP_0, _OP_1 = 0x00, 0x51
_HASH160_SIZE = 20
_BASE58_PAYLOAD_SIZE = 1 + _HASH160_SIZE  # version byte + hash160


@dataclass(frozen=True, slots=True)
class _Prefixes:
    hrp: str  # bech32 human-readable part
    p2pkh: int  # base58 version bytes
    p2sh: int


# Core's chainparams: test, testnet4 and signet share every prefix; regtest shares the
# base58 ones with them but has its own bech32 hrp.
_PREFIXES: Mapping[str, _Prefixes] = MappingProxyType(
    {
        "main": _Prefixes("bc", 0x00, 0x05),
        "test": _Prefixes("tb", 0x6F, 0xC4),
        "testnet4": _Prefixes("tb", 0x6F, 0xC4),
        "signet": _Prefixes("tb", 0x6F, 0xC4),
        "regtest": _Prefixes("bcrt", 0x6F, 0xC4),
    }
)


@dataclass(frozen=True, slots=True)
class Address:
    """A decoded address: what it pays to and the chains it is valid on."""

    text: str
    kind: str  # p2pkh | p2sh | p2wpkh | p2wsh | p2tr
    script_pubkey: bytes
    chains: frozenset[str]

    def script_for(self, chain: str) -> bytes:
        """The scriptPubKey, or ValueError when the address belongs to another network."""
        if chain not in CHAINS:
            raise ValueError(f"unknown chain {chain!r}; Bitcoin Core's chains are {', '.join(CHAINS)}")
        if chain not in self.chains:
            raise ValueError(
                f"{self.text!r} is a {describe_chains(self.chains)} address, but the node runs {chain}: "
                f"use an address of that network ({example_prefixes(chain)})"
            )
        return self.script_pubkey


def decode_address(text: str) -> Address:
    """Decode a P2PKH, P2SH, P2WPKH, P2WSH or P2TR address of any Bitcoin network.

    ValueError says what is wrong: not an address at all, a bad checksum, or a kind a
    coinbase should not pay.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty address")
    text = text.strip()
    if not text.isascii():
        raise ValueError(f"{text!r} is not a Bitcoin address (non-ASCII characters)")
    hrp = _bech32_hrp(text)
    if hrp is not None:
        return _decode_segwit(text, hrp)
    return _decode_base58(text)


def describe_chains(chains: frozenset[str]) -> str:
    names = [chain for chain in CHAINS if chain in chains]
    return "/".join(names)


def example_prefixes(chain: str) -> str:
    prefixes = _PREFIXES[chain]
    legacy = {"main": "1… or 3…", "regtest": "m…, n… or 2…"}.get(chain, "m…, n… or 2…")
    return f"{prefixes.hrp}1… or {legacy}"


def _bech32_hrp(text: str) -> str | None:
    """The hrp if the text claims to be bech32 for a Bitcoin network, else None."""
    lowered = text.lower()
    # No hrp + "1" is a prefix of another ("bcrt1" does not start with "bc1").
    return next((p.hrp for p in _PREFIXES.values() if lowered.startswith(p.hrp + "1")), None)


def _decode_segwit(text: str, hrp: str) -> Address:
    if text != text.lower() and text != text.upper():
        raise ValueError(f"{text!r} mixes upper and lower case, which bech32 forbids (BIP173)")
    version, program = bech32.decode(hrp, text.lower())
    if version is None:
        raise ValueError(
            f"{text!r} is not a valid bech32/bech32m address: bad checksum, bad length, or the wrong "
            "checksum variant for its witness version (BIP173, BIP350)"
        )
    program = bytes(program)
    if version == 0 and len(program) == 20:
        kind = P2WPKH
    elif version == 0 and len(program) == 32:
        kind = P2WSH
    elif version == 1 and len(program) == 32:
        kind = P2TR
    else:
        raise ValueError(
            f"{text!r} is a witness version {version} address with a {len(program)}-byte program; "
            "fleetd pays only P2WPKH, P2WSH and P2TR (undefined witness versions are spendable by anyone)"
        )
    op = _OP_0 if version == 0 else _OP_1 - 1 + version
    script = bytes((op, len(program))) + program
    chains = frozenset(chain for chain, p in _PREFIXES.items() if p.hrp == hrp)
    return Address(text, kind, script, chains)


def _decode_base58(text: str) -> Address:
    try:
        payload = base58.decode_check(text)
    except (ValueError, IndexError) as exc:
        reason = "bad checksum" if "checksum" in str(exc).lower() else "not base58"
        raise ValueError(f"{text!r} is not a Bitcoin address ({reason}; expected base58check or bech32)") from None
    if len(payload) != _BASE58_PAYLOAD_SIZE:
        # Not echoed: a base58check string of another length may be a private key (WIF, xprv).
        raise ValueError(
            f"the address decodes to {len(payload)} bytes, not a version byte and a 20-byte hash: "
            "not a P2PKH or P2SH address (if it is a private or extended key, remove it from the config)"
        )
    version, digest = payload[0], payload[1:]
    p2pkh_chains = frozenset(chain for chain, p in _PREFIXES.items() if p.p2pkh == version)
    p2sh_chains = frozenset(chain for chain, p in _PREFIXES.items() if p.p2sh == version)
    if p2pkh_chains:
        script = bytes((_OP_DUP, _OP_HASH160, _HASH160_SIZE)) + digest + bytes((_OP_EQUALVERIFY, _OP_CHECKSIG))
        return Address(text, P2PKH, script, p2pkh_chains)
    if p2sh_chains:
        script = bytes((_OP_HASH160, _HASH160_SIZE)) + digest + bytes((_OP_EQUAL,))
        return Address(text, P2SH, script, p2sh_chains)
    raise ValueError(f"{text!r} has base58 version byte {version:#04x}, which is no Bitcoin network's P2PKH or P2SH")
