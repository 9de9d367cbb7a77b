"""HTTP Basic auth for the backend, as Label Studio's ML backends do it: the pair comes from
``BASIC_AUTH_USER`` and ``BASIC_AUTH_PASS`` (never a command line), Label Studio is given it
by ``ls connect`` and sends it with every call."""

from __future__ import annotations

import base64
import binascii
import os
import secrets

USER_ENV, PASSWORD_ENV = "BASIC_AUTH_USER", "BASIC_AUTH_PASS"


def credentials() -> tuple[str, str] | None:
    """The basic-auth pair from the environment, when both are set."""
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    return (user, password) if user and password else None


def authorized(value: str, expected: tuple[str, str]) -> bool:
    """Whether an ``Authorization`` header carries the expected pair (compared in constant
    time)."""
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return (secrets.compare_digest(user.encode(), expected[0].encode())
            & secrets.compare_digest(password.encode(), expected[1].encode()))
