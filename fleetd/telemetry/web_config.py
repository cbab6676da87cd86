"""The HTTP listener's TLS and basic auth, from a web config file as Prometheus exporters take it
(the exporter-toolkit format), named by ``[http] web_config_file``::

    tls_server_config:
      cert_file: fleetd.crt          # relative paths are read beside the web config file
      key_file: fleetd.key
      client_auth_type: RequireAndVerifyClientCert   # optional; then client_ca_file too
      client_ca_file: clients.pem
      min_version: TLS12             # optional: TLS12 (default) or TLS13
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hash: htpasswd -nBC 12 "" | tr -d ':\\n'

Parsing is strict: an unknown key, an unreadable file or a value that is not a bcrypt hash is
an error naming the key. Basic auth verifies bcrypt off the event loop and remembers the last
password that verified for each user (as an HMAC under a per-process key, compared in constant
time), so a scrape every 15 s pays bcrypt's cost once, not every time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

# exporter-toolkit's client_auth_type values; Python's ssl only asks for a client certificate
# that it also verifies, so the two "ask but do not verify" modes are refused, not weakened.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version")
# exporter-toolkit keys fleetd does not implement: named as such rather than as typos
_UNSUPPORTED = {
    "http_server_config": "HTTP/2 and extra response headers are not configurable in fleetd",
    "rate_limit": "not supported by fleetd",
    "tls_server_config.cert": "give the certificate as cert_file",
    "tls_server_config.key": "give the key as key_file",
    "tls_server_config.client_ca": "give the client CAs as client_ca_file",
    "tls_server_config.cipher_suites": "fleetd uses Python's default TLS ciphers",
    "tls_server_config.curve_preferences": "fleetd uses Python's default TLS curves",
    "tls_server_config.max_version": "not supported by fleetd",
    "tls_server_config.prefer_server_cipher_suites": "not supported by fleetd",
    "tls_server_config.client_allowed_sans": "not supported by fleetd",
}
_BCRYPT = re.compile(r"\$2[abxy]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_TOP_KEYS = ("tls_server_config", "basic_auth_users")


class WebConfigError(ValueError):
    """What is wrong with a web config file: every problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"

    def context(self) -> ssl.SSLContext:
        """A server context: the certificate chain, the minimum version and client auth."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = TLS_VERSIONS[self.min_version]
        context.load_cert_chain(self.cert_file, self.key_file)
        context.verify_mode = CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=self.client_ca_file)
        return context


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TlsServerConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash

    def ssl_context(self) -> ssl.SSLContext | None:
        return None if self.tls is None else self.tls.context()

    def basic_auth(self) -> BasicAuth | None:
        return BasicAuth(self.users) if self.users else None


def load(path: str | Path) -> WebConfig:
    """The web config at ``path``, checked: certificates and keys are loaded once here, so a
    file that cannot be read or does not match is refused before anything listens."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError([f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"]) from None
    return parse(text, base=path.parent)


def parse(text: str, base: Path = Path(".")) -> WebConfig:
    """A web config from YAML ``text``; relative file names are read from ``base``."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebConfigError([f"not valid YAML: {_one_line(str(exc))}"]) from None
    if raw is None:
        raw = {}  # an empty file: neither TLS nor auth, as exporter-toolkit takes it
    if not isinstance(raw, dict):
        raise WebConfigError(["must be a YAML mapping of tls_server_config and basic_auth_users"])
    problems: list[str] = []
    _check_keys(raw, _TOP_KEYS, "", problems)
    tls = _tls(raw.get("tls_server_config"), base, problems)
    users = _users(raw.get("basic_auth_users"), problems)
    if problems:
        raise WebConfigError(problems)
    return WebConfig(tls, users)


def _check_keys(table: dict, known: tuple[str, ...], prefix: str, problems: list[str]) -> None:
    for key in table:
        name = f"{prefix}{key}"
        if key in known:
            continue
        if name in _UNSUPPORTED:
            problems.append(f"{name}: {_UNSUPPORTED[name]}")
        else:
            problems.append(f"{name}: unknown key (known: {', '.join(known)})")


def _tls(raw: Any, base: Path, problems: list[str]) -> TlsServerConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("tls_server_config: must be a mapping with cert_file and key_file")
        return None
    before = len(problems)
    _check_keys(raw, _TLS_KEYS, "tls_server_config.", problems)
    values: dict[str, Any] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            problems.append(f"tls_server_config.{key}: must be a file name")
            continue
        file = base / Path(value).expanduser()
        if not file.is_file():
            problems.append(f"tls_server_config.{key}: {file} is not a readable file")
            continue
        values[key] = file
    for key in ("cert_file", "key_file"):
        if key not in raw:
            problems.append(f"tls_server_config.{key}: missing (both cert_file and key_file are needed)")
    auth = raw.get("client_auth_type", "NoClientCert")
    if auth in _UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: {auth} is not supported (a client certificate is "
            "always verified); use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
    elif auth not in CLIENT_AUTH:
        problems.append(f"tls_server_config.client_auth_type: {auth!r}: must be one of {', '.join(CLIENT_AUTH)}")
    elif auth != "NoClientCert" and "client_ca_file" not in raw:
        problems.append(f"tls_server_config.client_ca_file: missing; client_auth_type {auth} verifies against it")
    version = raw.get("min_version", "TLS12")
    if version not in TLS_VERSIONS:
        problems.append(f"tls_server_config.min_version: {version!r}: must be one of {', '.join(TLS_VERSIONS)}")
    if len(problems) > before:
        return None
    tls = TlsServerConfig(values["cert_file"], values["key_file"], auth, values.get("client_ca_file"), version)
    try:
        tls.context()
    except (ssl.SSLError, OSError) as exc:
        problems.append(
            f"tls_server_config: cannot load cert_file {tls.cert_file} with key_file {tls.key_file}"
            f"{f' and client_ca_file {tls.client_ca_file}' if tls.client_ca_file else ''}: {exc}"
        )
        return None
    return tls


def _users(raw: Any, problems: list[str]) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("basic_auth_users: must be a mapping of user: bcrypt hash")
        return {}
    users = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            problems.append(f"basic_auth_users: user {user!r} must be a non-empty name without ':'")
        elif not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            # the value is never quoted: it may be a password written where its hash belongs
            problems.append(
                f"basic_auth_users.{user}: not a bcrypt hash (expected $2b$<cost>$ and 53 characters, "
                "as htpasswd -nB makes)"
            )
        else:
            users[user] = hashed.encode()
    return users


def _one_line(text: str) -> str:
    return " ".join(text.split())


UNKNOWN_USER = "unknown_user"  # why a login failed, as fleetd_http_auth_failures_total counts it
WRONG_PASSWORD = "wrong_password"
MAX_CONCURRENT_CHECKS = 4  # bcrypt runs in threads; wrong guesses cannot take every thread


class BasicAuth:
    """``Authorization: Basic`` against bcrypt hashes, with each user's last verified password
    remembered as an HMAC (keyed per process) and compared in constant time."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}  # user -> HMAC of the (user, password) that verified
        self._checks = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)
        # an unknown user is checked against this, so a wrong name costs what a wrong password does
        self._no_user = next(iter(self._users.values()), b"")[:29] + b"fleetd.no.such.user.hash.here...."[:31]
        self.bcrypt_checks = 0  # how many times bcrypt ran (the cache's effect is seen here)

    async def check(self, user: str, password: str) -> bool:
        """Whether ``user`` with ``password`` may in."""
        return await self.verify(user, password) is None

    async def verify(self, user: str, password: str) -> str | None:
        """None when ``user`` with ``password`` may in; else why not (``UNKNOWN_USER`` or
        ``WRONG_PASSWORD``, as counted: never told to the client)."""
        digest = hmac.new(self._key, user.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
        remembered = self._verified.get(user)
        if remembered is not None and hmac.compare_digest(remembered, digest):
            return None
        hashed = self._users.get(user)
        async with self._checks:
            self.bcrypt_checks += 1
            ok = await asyncio.to_thread(_checkpw, password.encode(), hashed or self._no_user)
        if hashed is None:
            return UNKNOWN_USER
        if not ok:
            return WRONG_PASSWORD
        self._verified[user] = digest  # one entry per configured user: bounded by the file
        return None


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # bcrypt takes at most 72 bytes of password; longer is not one that verifies
        return False
