"""Secrets kept out of what fleetd prints: configuration errors, logs and the API.

A URL keeps its user and loses its password (``stratum+tcp://user:***@host:port``); a value
under a secret key (``password``, ``[auth.passwords]``...) is shown as ``***``; and the
configuration's own secrets are replaced wherever a message quotes them anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# scheme://user:password@ (the user may be empty); the password runs to the last @ of the authority
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s/@:'\"]*):([^\s/'\"]*)@(?=[^\s/@'\"]+)")
_SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")


def is_secret_key(key: object) -> bool:
    """A key whose value is a secret: ``password``, ``passwords``, ``rpc_password``, ``api_key``..."""
    name = str(key).lower()
    return any(word in name for word in _SECRET_WORDS)


def url(text: str) -> str:
    """``text`` with the password of every URL in it replaced: ``stratum+tcp://user:***@host:3333``."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)


def value(key: object, raw: Any) -> Any:
    """``raw`` as it may be shown under ``key``: masked under a secret key (a table keeps its
    keys, every value masked), URL passwords masked in any text."""
    if is_secret_key(key):
        if isinstance(raw, Mapping):
            return {k: _Masked() for k in raw}
        return _Masked()
    if isinstance(raw, str):
        return url(raw)
    if isinstance(raw, (list, tuple)):
        return type(raw)(value("", item) for item in raw)
    if isinstance(raw, Mapping):
        return {k: value(k, v) for k, v in raw.items()}
    return raw


def shown(key: object, raw: Any) -> str:
    """``repr`` of ``raw`` as it may be shown under ``key`` (see ``value``)."""
    return repr(value(key, raw))


def secrets_in(table: Mapping[str, Any]) -> set[str]:
    """Every secret a parsed configuration holds: the values under secret keys (text, numbers,
    whole tables) and the passwords of URLs anywhere in it."""
    found: set[str] = set()

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, secret or is_secret_key(k))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item, secret)
        elif secret and isinstance(node, (str, int, float)) and not isinstance(node, bool):
            found.add(str(node))
        elif isinstance(node, str):
            found.update(m.group(3) for m in _USERINFO.finditer(node))

    walk(table, False)
    return {s for s in found if len(s) >= 2}  # one character is no secret, and would mask every "x"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords masked and each of ``secrets`` replaced wherever it stands
    alone (not inside a longer word), longest first."""
    text = url(text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", MASK, text)
    return text


class _Masked:
    """Shows as ``***`` inside a repr (no quotes), so a masked value never looks like the secret."""

    __slots__ = ()

    def __repr__(self) -> str:
        return MASK
