"""TOML configuration: frozen sections, defaults that run, and errors that name every bad key.

``load(path)`` returns a ``Config`` or raises ``ConfigError`` listing each problem as
``[section] key = value: what is wrong``, so one run of ``fleetd check-config`` finds
them all. ``load`` is for the configuration a daemon serves: beyond the values that
``parse`` checks, it refuses the demo chain on a network address.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetd import redact
from fleetd.curtailment import settings as curtailment_settings
from fleetd.curtailment.settings import CurtailmentConfig


class ConfigError(ValueError):
    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = [redact.url(problem) for problem in problems]  # never a URL's password
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StratumConfig:
    listen: HostPort = HostPort("0.0.0.0", 3333)
    min_difficulty: float = 0.0001
    max_difficulty: float = 1e15
    start_difficulty: float = 1024.0
    share_interval_seconds: float = 5.0  # vardiff aims at one share per interval
    extranonce1_size: int = 4
    extranonce2_size: int = 8
    version_mask: int = 0x1FFFE000
    allow_version_bits_without_configure: bool = True  # some Antminer firmware never calls configure
    login_timeout_seconds: float = 30.0
    max_line_bytes: int = 16384
    max_garbage_requests: int = 10
    reconnect_on_shutdown: bool = True
    shutdown_grace_seconds: float = 5.0
    # Limits: defaults fit a large site; a site proxy fronting many rigs from one address may
    # need the per-address ones raised.
    max_connections: int = 20_000
    max_connections_per_ip: int = 1_000
    new_connections_per_ip_per_second: float = 50.0
    new_connections_burst_per_ip: int = 500
    max_workers_per_connection: int = 64
    max_workers_per_ip: int = 2_000
    max_auth_failures: int = 5  # refused logins before a connection is closed
    ban_after_failed_logins: int = 10  # connections in a row from one address that failed to log in
    ban_seconds: float = 60.0  # first ban; doubles with each next one
    max_ban_seconds: float = 3600.0
    ban_forget_seconds: float = 3600.0  # an address quiet this long starts afresh
    idle_timeout_seconds: float = 1800.0  # logged in, no accepted share while there is work (0: never)
    log_window_seconds: float = 60.0  # refusals logged once per window per address and reason
    # stratum+ssl on a second listener ("": none); the same sessions and limits as `listen`.
    # Relative file names are read from the working directory, like [http] web_config_file.
    tls_listen: HostPort | None = None
    tls_cert_file: str = ""  # PEM certificate chain, the server's certificate first
    tls_key_file: str = ""  # PEM private key of that certificate
    tls_min_version: str = "TLS12"
    tls_handshake_timeout_seconds: float = 10.0  # a connection still handshaking this long is closed


@dataclass(frozen=True, slots=True)
class AuthConfig:
    policy: str = "open"  # open | allowlist | password
    accounts: tuple[str, ...] = ()
    passwords: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: HostPort = HostPort("127.0.0.1", 9550)
    # TLS and basic auth: a Prometheus exporter web config (YAML), see fleetd/telemetry/web_config.py
    web_config_file: str = ""
    # A connection that has not sent a whole request this long after connecting or after its
    # last answer is closed: slow-drip headers and idle keep-alive connections alike.
    request_timeout_seconds: float = 20.0
    tls_handshake_timeout_seconds: float = 10.0
    max_header_bytes: int = 8190  # the request line and each header line
    max_headers: int = 64


@dataclass(frozen=True, slots=True)
class SourceConfig:
    kind: str = "demo"  # demo | bitcoind | upstream
    allow_demo_on_network: bool = False  # the demo chain on a non-loopback Stratum address
    network_difficulty: float = 0.01  # demo only: a share meeting it is a block
    block_interval_seconds: float = 600.0  # demo only: a new block even when none is found
    refresh_seconds: float = 30.0  # new job with fresh ntime on the same block
    pool_tag: str = "/fleetd/"
    payout_script: str = ""  # hex scriptPubKey; demo uses an OP_TRUE placeholder when empty
    # demo only: the mainnet-sized network the economics values the demo's work against
    economics_difficulty: float = 1.4e14
    economics_height: int = 975_000
    economics_block_time_seconds: float = 627.0
    # [source.bitcoind] and [source.upstream]: each validated by its source's own config
    # class, so both can stay configured and `kind` alone switches between them.
    bitcoind: Any = None
    upstream: Any = None


@dataclass(frozen=True, slots=True)
class RigsConfig:
    poll: bool = True  # read each rig's management API (pyasic) at the IP it connects from
    poll_interval_seconds: float = 30.0
    poll_timeout_seconds: float = 10.0
    poll_concurrency: int = 256
    inventory: str = ""  # optional TOML or CSV: ip, name, model, nominal TH/s and watts
    retention_seconds: float = 86400.0  # a rig gone this long is forgotten and its series removed


@dataclass(frozen=True, slots=True)
class JournalConfig:
    enabled: bool = True
    # "": journal.sqlite3 in $STATE_DIRECTORY when systemd sets it, else in the working directory
    path: str = ""
    flush_seconds: float = 1.0  # rollups and rig counters reach the file at least this often
    retention_days: float = 400.0  # rollups older than this are deleted (a tax year and some)
    compact_after_days: float = 35.0  # minute rollups older than this become hourly ones


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"  # auto | json | console


@dataclass(frozen=True, slots=True)
class Config:
    stratum: StratumConfig = StratumConfig()
    auth: AuthConfig = AuthConfig()
    http: HttpConfig = HttpConfig()
    source: SourceConfig = SourceConfig()
    rigs: RigsConfig = RigsConfig()
    log: LogConfig = LogConfig()
    journal: JournalConfig = JournalConfig()
    economics: Any = None  # an EconomicsConfig when [economics] is given: prices make margins
    curtailment: CurtailmentConfig = CurtailmentConfig()


_SECTION_TYPES = {
    "stratum": StratumConfig,
    "auth": AuthConfig,
    "http": HttpConfig,
    "source": SourceConfig,
    "rigs": RigsConfig,
    "log": LogConfig,
    "journal": JournalConfig,
    "economics": None,  # its own parser: nested tables
    "curtailment": None,  # its own parser: [[curtailment.window]] tables
}
_CHOICES = {
    ("auth", "policy"): ("open", "allowlist", "password"),
    ("source", "kind"): ("demo", "bitcoind", "upstream"),
    ("log", "level"): ("debug", "info", "warning", "error"),
    ("log", "format"): ("auto", "json", "console"),
    ("stratum", "tls_min_version"): ("TLS12", "TLS13"),
}
_TLS_FILES = ("tls_cert_file", "tls_key_file")
_SOURCE_TABLES = ("bitcoind", "upstream")


def load(path: str | Path | None) -> Config:
    """The configuration to serve: the file at ``path``, or the built-in defaults when None."""
    if path is None:
        return parse("", "built-in defaults", serving=True)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(["not UTF-8 text"], str(path)) from None
    return parse(text, str(path), serving=True)


def parse(text: str, source: str = "config", *, serving: bool = False) -> Config:
    """``serving``: also refuse what is unsafe to serve (``serving_problems``)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source) from None
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _SECTION_TYPES:
            problems.append(f"[{name}]: unknown section{_suggest(name, _SECTION_TYPES)}")
        elif not isinstance(value, dict):
            problems.append(f"{name} = {redact.shown(name, value)}: must be a [{name}] table")
        elif name == "economics":
            from fleetd.economics import settings

            sections[name] = settings.parse(value, problems)
        elif name == "curtailment":
            sections[name] = curtailment_settings.parse(value, problems)
        else:
            sections[name] = _section(name, value, problems)
    config = Config(**{name: section for name, section in sections.items() if section is not None})
    config = _source_tables(config, problems)
    _cross_checks(config, problems)
    # Only on valid values: where one is bad its default stands in, and the refusal would
    # quote a listen address or kind that nobody wrote.
    if serving and not problems:
        problems += serving_problems(config)
    if problems:
        # Values are shown masked where they are quoted; this also catches a secret that a
        # source's own validation quotes in its message.
        secrets = redact.secrets_in(raw)
        raise ConfigError([redact.scrub(problem, secrets) for problem in problems], source)
    return config


def _section(name: str, values: dict[str, Any], problems: list[str]):
    cls = _SECTION_TYPES[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            problems.append(f"[{name}] {key}: unknown key{_suggest(key, fields)}")
            continue
        if name == "source" and key in _SOURCE_TABLES:
            if isinstance(value, dict):
                kwargs[key] = value  # checked in _source_tables, once [stratum] is known
            else:
                problems.append(f"[source] {key} = {redact.shown(key, value)}: must be a [source.{key}] table")
            continue
        try:
            kwargs[key] = _convert(name, key, value, getattr(defaults, key))
        except ValueError as exc:
            problems.append(f"[{name}] {key} = {redact.shown(key, value)}: {exc}")
    return dataclasses.replace(defaults, **kwargs)


def _convert(section: str, key: str, value: Any, default: Any) -> Any:
    choices = _CHOICES.get((section, key))
    if choices is not None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    if isinstance(default, HostPort):
        return parse_host_port(value)
    if key == "tls_listen":
        if not isinstance(value, str):
            raise ValueError('must be "host:port", e.g. "0.0.0.0:3334", or "" for none')
        return parse_host_port(value) if value else None
    if key == "version_mask":
        return _hex_u32(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("must be a whole number")
        return _in_range(key, value)
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError("must be a number")
        return _in_range(key, float(value))
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if key == "web_config_file" and value:
            from fleetd.telemetry import web_config

            web_config.load(value)  # refused here, naming the web config's own key
        if key in _TLS_FILES and value:
            _readable(value)
        if key == "payout_script":
            try:
                bytes.fromhex(value)
            except ValueError:
                raise ValueError("must be hex") from None
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("must be a list of non-empty strings")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ValueError("must be a table of account = \"password\"")
        wrong = [account for account, password in value.items() if not isinstance(password, str)]
        if wrong:
            raise ValueError(f"the password of {', '.join(map(repr, wrong))} must be a string in quotes")
        return dict(value)
    raise ValueError("unsupported value")  # pragma: no cover - every field type is handled above


_RANGES = {
    "min_difficulty": (1e-9, 1e15),  # 1e-9: the smallest difficulty vardiff works with
    "max_difficulty": (1e-9, 1e15),
    "start_difficulty": (1e-9, 1e15),
    "network_difficulty": (1e-9, 1e20),
    "economics_difficulty": (1.0, 1e20),
    "economics_height": (1, 0x7FFFFFFE),
    "extranonce1_size": (1, 8),
    "extranonce2_size": (2, 16),
    "max_line_bytes": (512, 1 << 20),
    "max_garbage_requests": (1, 1000),
    "idle_timeout_seconds": (0.0, 7 * 86400.0),  # 0: never
    "max_ban_seconds": (1.0, 30 * 86400.0),
    "poll_concurrency": (1, 100_000),
    "request_timeout_seconds": (0.1, 3600.0),
    "tls_handshake_timeout_seconds": (0.1, 600.0),
    "max_header_bytes": (1024, 1 << 20),
    "max_headers": (8, 1000),
    "flush_seconds": (0.05, 60.0),
    "retention_days": (1.0, 36500.0),
    "compact_after_days": (1.0, 36500.0),
}


def _readable(name: str) -> None:
    try:
        with open(Path(name).expanduser(), "rb") as file:
            file.read(1)
    except OSError as exc:
        raise ValueError(f"cannot read the file: {exc.strerror or exc}") from None


def _in_range(key: str, value: float) -> float:
    low, high = _RANGES.get(key, (None, None))
    if low is not None and not low <= value <= high:
        raise ValueError(f"must be between {low:g} and {high:g}")
    if low is None and not value > 0:
        raise ValueError("must be greater than 0")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return value


def _hex_u32(value: Any) -> int:
    if isinstance(value, str):
        try:
            number = int(value, 16)
        except ValueError:
            raise ValueError("must be 8 hex digits, e.g. \"1fffe000\"") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ValueError("must be 8 hex digits, e.g. \"1fffe000\"")
    if not 0 <= number <= 0xFFFFFFFF:
        raise ValueError("must fit in 32 bits")
    return number


def parse_host_port(value: Any) -> HostPort:
    """``"host:port"``, ``"[v6]:port"`` or ``":port"`` (all interfaces)."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError('must be "host:port", e.g. "0.0.0.0:3333"')
    host, _, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range 0-65535")
    return HostPort(host or "0.0.0.0", port)


def _cross_checks(config: Config, problems: list[str]) -> None:
    s = config.stratum
    if s.min_difficulty > s.max_difficulty:
        problems.append(f"[stratum] min_difficulty = {s.min_difficulty:g} is above max_difficulty = {s.max_difficulty:g}")
    elif not s.min_difficulty <= s.start_difficulty <= s.max_difficulty:
        problems.append(
            f"[stratum] start_difficulty = {s.start_difficulty:g}: must be between min_difficulty and max_difficulty"
        )
    _tls_checks(s, problems)
    if config.rigs.poll_timeout_seconds >= config.rigs.poll_interval_seconds:
        problems.append("[rigs] poll_timeout_seconds must be shorter than poll_interval_seconds")
    if config.curtailment.mode == "act" and not config.rigs.poll:
        problems.append('[curtailment] mode = "act" needs [rigs] poll = true: rigs are switched through their management API')
    if config.rigs.inventory:
        from fleetd.rigs.inventory import load as load_inventory

        try:
            load_inventory(config.rigs.inventory)
        except (OSError, ValueError) as exc:
            problems.append(f"[rigs] inventory = {config.rigs.inventory!r}: {exc}")
    given = lambda key: any(p.startswith(f"[auth] {key} =") for p in problems)  # noqa: E731 -- given, but bad
    if config.auth.policy == "allowlist" and not config.auth.accounts and not given("accounts"):
        problems.append('[auth] policy = "allowlist" needs accounts = ["..."]')
    if config.auth.policy == "password" and not config.auth.passwords and not given("passwords"):
        problems.append('[auth] policy = "password" needs a [auth.passwords] table')
    if config.journal.compact_after_days >= config.journal.retention_days:
        problems.append("[journal] compact_after_days must be shorter than retention_days")
    kind = config.source.kind
    if kind in _SOURCE_TABLES and getattr(config.source, kind) is None:
        problems.append(f'[source] kind = "{kind}" needs a [source.{kind}] table')


def _tls_checks(s: StratumConfig, problems: list[str]) -> None:
    """stratum+ssl: a listener needs a certificate and its key, and they must load together."""
    if any(p.startswith(tuple(f"[stratum] {key} =" for key in ("tls_listen", *_TLS_FILES))) for p in problems):
        return  # given, but bad: already named
    if s.tls_listen is None:
        for key in _TLS_FILES:
            if getattr(s, key):
                problems.append(
                    f'[stratum] {key} is given without tls_listen: set tls_listen = "host:port" to serve stratum+ssl'
                )
        return
    missing = [key for key in _TLS_FILES if not getattr(s, key)]
    if missing:
        problems.append(f'[stratum] tls_listen = "{s.tls_listen}" needs {" and ".join(missing)}')
        return
    if s.tls_listen == s.listen and s.listen.port != 0:
        problems.append(f'[stratum] tls_listen = "{s.tls_listen}" is the plain listen address too')
    problem = tls_problem(s)
    if problem is not None:
        problems.append(problem)


def stratum_tls_context(s: StratumConfig):
    """The stratum+ssl listener's server context: the certificate chain and the minimum version."""
    from fleetd.telemetry.web_config import TlsServerConfig

    return TlsServerConfig(
        Path(s.tls_cert_file).expanduser(), Path(s.tls_key_file).expanduser(), min_version=s.tls_min_version
    ).context()


def tls_problem(s: StratumConfig) -> str | None:
    """Why the certificate and key do not load, naming the key at fault; None when they do."""
    import ssl

    try:
        stratum_tls_context(s)
    except (ssl.SSLError, OSError) as exc:
        check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            check.load_verify_locations(cafile=str(Path(s.tls_cert_file).expanduser()))
        except (ssl.SSLError, OSError) as cert_exc:
            return f"[stratum] tls_cert_file = {s.tls_cert_file!r}: not a PEM certificate ({cert_exc})"
        return (
            f"[stratum] tls_key_file = {s.tls_key_file!r}: not the private key of tls_cert_file = "
            f"{s.tls_cert_file!r}, or not a PEM key ({exc})"
        )
    return None


def serving_problems(config: Config) -> list[str]:
    """What makes a valid configuration unsafe to serve: the demo chain reachable by real rigs."""
    if config.source.kind != "demo" or config.source.allow_demo_on_network:
        return []
    s = config.stratum
    return [
        f'[source] kind = "demo" with [stratum] {key} = "{listen}": the demo chain is not Bitcoin; '
        'rigs on the network would mine it for nothing. Choose kind = "bitcoind" or "upstream", '
        "listen on a loopback address, or set [source] allow_demo_on_network = true."
        for key, listen in (("listen", s.listen), ("tls_listen", s.tls_listen))
        if listen is not None and not _is_loopback(listen.host)
    ]


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost"; no name is resolved, so the answer never depends on DNS."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _source_tables(config: Config, problems: list[str]) -> Config:
    """Turn [source.bitcoind] and [source.upstream] into their sources' own config objects."""
    from fleetd.sources.bitcoind import BitcoindConfig
    from fleetd.sources.upstream import UpstreamConfig

    source, stratum = config.source, config.stratum
    built: dict[str, Any] = {}
    for table, make in (
        ("bitcoind", lambda v: BitcoindConfig(**{
            "pool_tag": source.pool_tag,
            "extranonce1_size": stratum.extranonce1_size,
            "extranonce2_size": stratum.extranonce2_size,
            **v,
        })),
        ("upstream", UpstreamConfig.from_mapping),
    ):  # fmt: skip
        values = getattr(source, table)
        if values is None:
            continue
        try:
            built[table] = make(values)
        except TypeError as exc:  # an unexpected keyword: name it as a config key
            key = str(exc).rsplit("'", 2)[-2] if "'" in str(exc) else "?"
            problems.append(f"[source.{table}] {key}: unknown key")
        except ValueError as exc:
            problems.append(f"[source.{table}] {str(exc).removeprefix(table + ' ')}")
    return dataclasses.replace(config, source=dataclasses.replace(source, **built)) if built else config


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
