"""Who may mine: ``mining.authorize`` policies as small pure callables.

A policy is any ``(username, password) -> bool``. Usernames are ``account.worker``; the
account is what policies judge, the full name is what the session remembers.

A policy's ``proves_identity`` says whether passing it proves anything about the name: the
pool keeps a rig record for a name from its login only when it does (a policy without the
attribute is taken to). Under ``open`` a name is only a claim: its record waits for an
accepted share.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

Authorizer = Callable[[str, str], bool]


def account_of(username: str) -> str:
    """The part before the first dot: ``bc1q…x.rig7`` → ``bc1q…x``."""
    return username.partition(".")[0]


@dataclass(frozen=True, slots=True)
class OpenAuthorization:
    """Anyone with a non-empty account name (solo mining, a site's own fleet)."""

    proves_identity: ClassVar[bool] = False  # any client may claim any name

    def __call__(self, username: str, password: str) -> bool:
        return bool(account_of(username))


@dataclass(frozen=True, slots=True)
class AllowListAuthorization:
    """Only the listed accounts, any worker name, any password."""

    proves_identity: ClassVar[bool] = True

    accounts: frozenset[str]

    def __init__(self, accounts: Iterable[str]) -> None:
        object.__setattr__(self, "accounts", frozenset(accounts))

    def __call__(self, username: str, password: str) -> bool:
        return account_of(username) in self.accounts


@dataclass(frozen=True, slots=True)
class PasswordAuthorization:
    """Listed accounts with their password; compared in constant time."""

    proves_identity: ClassVar[bool] = True

    passwords: Mapping[str, str] = field(hash=False, repr=False)

    def __init__(self, passwords: Mapping[str, str]) -> None:
        object.__setattr__(self, "passwords", MappingProxyType(dict(passwords)))

    def __call__(self, username: str, password: str) -> bool:
        expected = self.passwords.get(account_of(username))
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), password.encode())
