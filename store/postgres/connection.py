"""Connections to a PostgreSQL store, and what their errors mean to a caller.

Owns: turning a libpq URL into a connection (with miniscan's application name, a connect
timeout, a read-write session and TCP keepalives unless the URL sets them), a
password-free description of the URL for messages, hiding the password in every message
libpq makes of a URL (`hide_secrets`), `connect_existing` for readers and admin commands,
and `translate_error`: the one mapping from psycopg exceptions to the store.errors classes
(store.sqlite.connection holds SQLite's).

Never: create or migrate tables (store.postgres.schema, called by the writer's open), write
data, log, or retry.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from store.errors import BatchDataError, StoreError, StoreUnavailable
from store.postgres import schema

CONNECT_TIMEOUT_S = 10
# read-write: after a failover, a host list or a DNS name may lead to the old primary, now a
# standby; libpq then tries the next host or fails the connect (weather) instead of handing
# the writer a session that refuses every batch with 25006 (issue 25).
DEFAULT_PARAMS = (
    ("application_name", "miniscan"),
    ("connect_timeout", str(CONNECT_TIMEOUT_S)),
    ("target_session_attrs", "read-write"),
    *(
        # A connection dropped silently (a failover, a NAT's timeout) is noticed in ~10 s
        # instead of the kernel's minutes, while write_batch blocks the writer's heartbeat
        # and the supervisor kills it as stalled after 30 s (issue 25).
        ("keepalives", "1"),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "2"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "10000"),
    ),
)

# SQLSTATE classes and codes: the database cannot be written now (connection, resources,
# object in use or lock timeout, operator intervention, system error, a read-only standby,
# a conflict that outlasted its retries), or the data itself was refused.
_UNAVAILABLE_CLASSES = ("08", "53", "55", "57", "58")
_UNAVAILABLE_STATES = ("25006", "40001", "40P01")
_BAD_DATA_CLASSES = ("22", "23")
# What libpq says (with no SQLSTATE) when the server refuses a connection for a reason that
# waiting will not fix (issue 25): a start-up exits 3 on these instead of waiting forever.
# A database or role that does not exist yet is waited for: it may be being provisioned.
_REFUSALS = ("authentication failed", "no password supplied", "no pg_hba.conf entry",
             "not permitted to log in")  # fmt: skip


def describe(url: str) -> str:
    """The URL without its password or options: safe for logs and error messages.

    StoreError (a refusal: exit 3 at start, never retried) when libpq's split does not
    match the URL's text, since what it calls the host, port or database then holds part
    of the password."""
    params = _parse(url)
    _refuse_a_moved_split(url, params)
    secrets = _password_candidates(url)
    shown = {key: _unless_secret(params.get(key, ""), secrets) for key in _SHOWN}
    user = f"{shown['user']}@" if shown["user"] else ""
    port = f":{shown['port']}" if shown["port"].isdigit() else ""
    return f"postgresql://{user}{shown['host']}{port}/{shown['dbname']}"


_SHOWN = ("user", "host", "port", "dbname")


def _refuse_a_moved_split(url: str, params: dict[str, str]) -> None:
    # A '/' in the password ends libpq's authority early (issue 25):
    # postgresql://bob:Zm9vYmFy/YmF6@host/x parses as host=bob, port=Zm9vYmFy and
    # dbname=YmF6@host/x. An '@' or a ':' where libpq puts the host, port or database name
    # (other than an IPv6 host in brackets) means the split moved.
    host = params.get("host", "")
    bracketed = f"[{host}]" in url
    moved = any(c in params.get(key, "") for key in ("port", "dbname") for c in "@:")
    if moved or "@" in host or (":" in host and not bracketed):
        raise StoreError("invalid PostgreSQL URL: its password must be percent-encoded")


def _unless_secret(value: str, secrets: set[str]) -> str:
    # Any field sharing a piece of a possible password is not shown, nor one holding an
    # '@' or a space (a split moved by the password).
    if "@" in value or any(c.isspace() for c in value):
        return "?"
    return "?" if any(_overlap(value, secret) for secret in secrets) else value


def connect(url: str, where: str) -> psycopg.Connection:
    """A new connection (not in autocommit); StoreUnavailable when the server cannot be
    reached now (refused, timed out, starting up, in recovery), StoreError when it refused
    us for good (authentication failed, no pg_hba.conf entry). No message holds the
    password, whatever libpq made of the URL."""
    params = _parse(url)
    extra = {key: value for key, value in DEFAULT_PARAMS if key not in params}
    try:
        return psycopg.connect(url, autocommit=False, **extra)
    except psycopg.Error as exc:
        refusal = translate_error(exc, f"cannot connect to {where}")
        raise type(refusal)(hide_secrets(str(refusal), url)) from None


def connect_existing(url: str, *, writable: bool = False) -> psycopg.Connection:
    """A connection for readers and admin commands to tables that must exist and be current.

    Never creates or migrates. Read-only unless `writable`. Raises SchemaError,
    StoreUnavailable or StoreError. Readers decode `scans.response` with
    `store.postgres.schema.decode_response`.
    """
    where = describe(url)
    conn = connect(url, where)
    try:
        schema.require_current(conn, where)
        conn.commit()
        conn.read_only = not writable
    except BaseException as exc:
        conn.close()
        if isinstance(exc, psycopg.Error):
            raise translate_error(exc, f"cannot open {where}") from None
        raise
    return conn


def _parse(url: str) -> dict[str, str]:
    try:
        return {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except psycopg.ProgrammingError as exc:
        detail = hide_secrets(_describe(exc), url)
        raise StoreError(f"invalid PostgreSQL URL: {detail}") from None


# libpq repeats the part of a URL it could not use, in double quotes: the password itself
# when its percent-encoding is broken, or a host name holding part of it when an '@' or a
# space in the password moved the split (issue 25). Quoted text that shares this much with
# anything that may be a password, or holds an '@' (a split moved by the password), is
# hidden whole.
_QUOTED = re.compile(r""""([^"]*)"|'([^']*)'""")
_SHARED_CHARS = 3
_URI_PASSWORD = re.compile(r"^[a-z]+://[^:/@]*:(.*)@", re.IGNORECASE | re.DOTALL)
_KEYWORD_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def hide_secrets(text: str, url: str) -> str:
    """`text` without anything that may be the password of `url`, however broken the URL:
    what libpq parses as the password, what sits between the user and the last '@' of a
    URI, what follows `password=`. Quoted fragments that overlap one are hidden whole."""
    secrets = _password_candidates(url)
    if not secrets:
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _SHARED_CHARS:  # a shorter one would mangle words at random
            text = text.replace(secret, "***")

    def hide_if_shared(match: re.Match[str]) -> str:
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        if "@" in quoted or any(_overlap(quoted, secret) for secret in secrets):
            return '"***"'
        return match.group(0)

    return _QUOTED.sub(hide_if_shared, text)


def _password_candidates(url: str) -> set[str]:
    found = set()
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = None
    if password:
        found.add(str(password))
    for pattern in (_URI_PASSWORD, _KEYWORD_PASSWORD):
        match = pattern.search(url)
        if match and match.group(1):
            found.add(match.group(1))
    return found


def _overlap(quoted: str, secret: str) -> bool:
    """Whether `quoted` holds a piece of `secret` at least _SHARED_CHARS long (or all of a
    shorter secret)."""
    size = min(_SHARED_CHARS, len(secret))
    return any(secret[i : i + size] in quoted for i in range(len(secret) - size + 1))


def translate_error(exc: psycopg.Error, action: str) -> StoreError:
    """Classify a psycopg exception; `action` says what failed ("cannot write batch to X")."""
    state = exc.sqlstate or ""
    detail = _describe(exc)
    if state == "55P03":
        return StoreUnavailable(f"{action}: locked by another connection ({detail})")
    if state in _UNAVAILABLE_STATES or state[:2] in _UNAVAILABLE_CLASSES:
        return StoreUnavailable(f"{action}: {detail}")
    if state[:2] in _BAD_DATA_CLASSES:
        return BatchDataError(f"{action}: {detail}")
    if state == "42501":
        return StoreError(f"{action}: permission denied ({detail})")
    if not state and isinstance(exc, psycopg.DataError):  # refused before sending (a NUL)
        return BatchDataError(f"{action}: {detail}")
    if not state and isinstance(exc, psycopg.OperationalError):
        if any(refusal in detail for refusal in _REFUSALS):
            return StoreError(f"{action}: {detail}")
        return StoreUnavailable(f"{action}: {detail}")  # refused, lost, starting, recovering
    return StoreError(f"{action}: {detail}")


def _describe(exc: psycopg.Error) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{text} [{exc.sqlstate}]" if exc.sqlstate else text
