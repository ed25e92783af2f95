"""Settings: one table, each with a default, a type and help text.

Precedence, highest first: command-line flag, ``OPENGROUP_<NAME>`` environment
variable, the TOML file given by ``--config``, the default. Settings are
resolved once at start-up into a frozen :class:`Settings` object that is
passed down; nothing reads the environment after that.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

ENV_PREFIX = "OPENGROUP_"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names both."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str
    choices: tuple[str, ...] = ()
    most: int | None = None
    least: int = 0

    @property
    def largest(self) -> int:
        """The largest value of an integer setting: its own bound, else MOST_INTEGER."""
        return self.most if self.most is not None else MOST_INTEGER


class DeletionsFormat(StrEnum):
    """The shape of deletions in ``compact_poll`` and ``GET /deleted_messages``."""

    IDS = "ids"  # the seed document's: a list of deleted message ids
    OBJECTS = "objects"  # what released clients read: [{id, deleted_message_id}]

    @property
    def by_number(self) -> bool:
        """Whether clients page deletions by the deletion's own number (``objects``)
        rather than by the deleted message's id (``ids``)."""
        return self is DeletionsFormat.OBJECTS


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


# Worker processes a server may run: each is a Python process of about 90 MB, and a
# mistyped count must not start thousands of them.
MOST_WORKERS = 64

# The largest value of an integer setting without a bound of its own: a second count
# of 30,000 years, a terabyte. Past it, times in milliseconds and sizes would overflow
# the databases' 64-bit integers.
MOST_INTEGER = 10**12

# The URL schemes of the databases we run on (postgres:// is libpq's other spelling).
DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


def _check_database_url(url: str, source: str) -> None:
    """Refuse a database URL we cannot run on, naming only its scheme (a URL may hold
    a password); empty is SQLite in the data dir."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if url and scheme not in DATABASE_SCHEMES:
        raise ConfigError(
            f"{source}: database_url must be sqlite:///FILE or postgresql://USER@HOST/DATABASE, "
            f"not a {scheme or 'scheme-less'} URL"
        )


def _check_public_url(url: str, source: str) -> None:
    """Refuse a base URL clients could not reach us at (empty: http://HOST:PORT)."""
    parsed = urllib.parse.urlsplit(url)
    if url and (parsed.scheme not in ("http", "https") or not parsed.hostname):
        raise ConfigError(
            f"{source}: public_url must be http://HOST[:PORT] or https://HOST[:PORT], got {url!r}"
        )


def database_on_this_machine(url: str) -> bool:
    """Whether the database at ``url`` answers without a network wait: an SQLite file,
    or PostgreSQL over a Unix socket (no host in the URL, or a host that is a directory,
    as libpq reads them) or at a loopback address."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return True
    query_host = parsed.query.get("host")
    host = parsed.host or (query_host if isinstance(query_host, str) else "")
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: taken as another machine's


def _setting(default: Any, help: str, *, most: int | None = None, least: int = 0) -> Any:
    """A field of :class:`Settings`: its default, with the help text (and, for a choice,
    its enum's values) that ``opengroup settings``, the README and error messages show;
    ``most`` and ``least``: the largest and smallest values an integer setting takes."""
    choices = tuple(member.value for member in type(default)) if isinstance(default, Enum) else ()
    return dataclasses.field(
        default=default,
        metadata={"help": help, "choices": choices, "most": most, "least": least},
    )


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one server; built by :func:`load_settings`.

    Each field is one setting: its default, and in its metadata its help text (and
    its choices, if it has any). :data:`SETTINGS` is read from here.
    """

    data_dir: str = _setting(
        "./data",
        "Directory for the SQLite database and the key pair.",
    )
    host: str = _setting(
        "0.0.0.0",
        "Address to listen on.",
    )
    port: int = _setting(
        8080,
        "TCP port to listen on (at most 65535).",
        most=65535,
    )
    workers: int = _setting(
        1,
        f"Number of worker processes (1 to {MOST_WORKERS}; one per core is plenty).",
        most=MOST_WORKERS,
        least=1,
    )
    worker_timeout_seconds: int = _setting(
        30,
        (
            "With 2 or more workers: a worker whose event loop has not turned for this "
            "many seconds (stuck in a request, or deadlocked) is killed and another "
            "started on its socket; the connections the kernel handed it meanwhile wait "
            "there for the new one. A worker still starting has a minute more. 0: never. "
            "(One worker is served in-process, "
            "without a supervisor to replace it.)"
        ),
    )
    request_threads: int = _setting(
        0,
        (
            "Threads per worker process that run requests, and so database connections kept "
            "open. 0: 4 on SQLite (more only add switching between threads: the file is "
            "local), 16 on PostgreSQL (a thread waits on the network for each statement)."
        ),
    )
    reads_on_event_loop: bool = _setting(
        True,
        (
            "Answer community API requests that only read (a GET other than a file "
            "download, or a /batch or /sequence of them) on each worker's event loop, "
            "not in a request thread: the hand-off and the threads' turns at the "
            "interpreter lock cost as much as the request. A post's checks run there too, "
            "and the admission of signed requests (on PostgreSQL its one statement; on "
            "SQLite its write, when it can be had at once); posts and "
            "reactions are written there when nothing is in their way (see "
            "writes_on_event_loop_per_second). Other writes run in threads. Only where "
            "the database answers without a network wait: SQLite, or PostgreSQL on this "
            "machine (a Unix socket or a loopback address); a remote PostgreSQL keeps its "
            "reads and writes in the threads."
        ),
    )
    writes_on_event_loop_per_second: int = _setting(
        200,
        (
            "Up to this many posts and reactions a second per worker are written on its "
            "event loop, each at once, when nothing is in their way (on SQLite the "
            "admissions of signed requests too, a group of them in one write): on SQLite the "
            "database's write lock free that moment, on PostgreSQL no lock held that "
            "a statement would wait for longer than a millisecond (it then gives way). "
            "The hand-off to a thread and back costs a write several turns of a busy "
            "loop, tens of milliseconds. Those past it in a second, and those that find "
            "a lock taken, go to threads (a post to the group-commit writer, whose "
            "groups cost the server less per post under a burst); so do all of "
            "PostgreSQL's where reads_on_event_loop does not hold. 0: never on the loop."
        ),
    )
    keep_alive_seconds: int = _setting(
        5,
        (
            "How long an idle HTTP connection is kept open for its next request (0: closed "
            "as soon as it is idle). A proxy that reuses connections must let them go sooner."
        ),
    )
    database_url: str = _setting(
        "",
        (
            "SQLAlchemy URL of the database; empty means SQLite at DATA_DIR/opengroup.db. "
            "postgresql://user@host/db selects PostgreSQL."
        ),
    )
    public_url: str = _setting(
        "",
        (
            "Base URL clients use to reach this server (e.g. http://chat.example.org), used in "
            "join URLs; empty means http://HOST:PORT."
        ),
    )
    x25519_private_key: str = _setting(
        "",
        "Path of the server's X25519 private key (PEM); empty: DATA_DIR/x25519_private_key.pem.",
    )
    x25519_public_key: str = _setting(
        "",
        "Path of the server's X25519 public key (PEM); empty: DATA_DIR/x25519_public_key.pem.",
    )
    deletions_format: DeletionsFormat = _setting(
        DeletionsFormat.IDS,
        (
            "Shape of deletions in compact_poll and GET /deleted_messages: 'ids' (the seed "
            "document: a list of deleted message ids) or 'objects' (what released Session clients "
            "read: [{id, deleted_message_id}])."
        ),
    )
    verify_signatures: bool = _setting(
        True,
        "Reject messages whose XEdDSA signature is invalid.",
    )
    max_upload_bytes: int = _setting(
        10_000_000,
        "Largest file or room image, decoded.",
    )
    max_message_bytes: int = _setting(
        100_000,
        "Largest message 'data', decoded.",
        least=1,
    )
    max_request_body_bytes: int = _setting(
        16 * 1024 * 1024,
        "Largest direct HTTP request body (room for a base64 upload of max_upload_bytes).",
        least=1,
    )
    max_onion_body_bytes: int = _setting(
        10 * 1024 * 1024,
        "Largest onion request body.",
        least=1,
    )
    max_poll_rooms: int = _setting(
        256,
        "Most room entries in one compact_poll.",
        least=1,
    )
    max_poll_items: int = _setting(
        1024,
        (
            "Most messages and deletions in one compact_poll answer, over all its rooms (each "
            "room's at most 256); rooms past it get theirs in the next poll. 0: no limit of ours."
        ),
    )
    max_poll_answer_bytes: int = _setting(
        10 * 1024 * 1024,
        (
            "Most bytes of messages (their data and signatures, as base64 text) in one "
            "compact_poll answer, over all its rooms; the message that would pass it and "
            "those after it come in the next poll (the first message always comes). "
            "0: no limit of ours."
        ),
    )
    max_json_depth: int = _setting(
        32,
        (
            "Deepest nesting of a JSON body (and of an onion request's inner JSON); 400 deeper. "
            "0: no limit of ours."
        ),
    )
    max_pending_challenges_per_key: int = _setting(
        16,
        "Most unclaimed challenges one public key may hold in one room; 429 above. 0: no limit.",
    )
    max_tokens_per_key: int = _setting(
        32,
        (
            "Most live tokens one public key may hold in one room; claiming one more revokes the "
            "oldest. 0: no limit."
        ),
    )
    post_rate_limit_count: int = _setting(
        5,
        "Posts allowed per user per room in the window.",
    )
    post_rate_limit_seconds: int = _setting(
        16,
        "Window of the posting rate limit; 0 disables.",
    )
    challenge_rate_limit_count: int = _setting(
        20,
        (
            "Challenges (auth_token_challenge) allowed per public key, all rooms, in the window "
            "(a room's moderators are exempt there)."
        ),
    )
    challenge_rate_limit_seconds: int = _setting(
        60,
        "Window of the challenge rate limit; 0 disables.",
    )
    upload_rate_limit_count: int = _setting(
        10,
        "Uploads allowed per user per room in the window (moderators exempt).",
    )
    upload_rate_limit_seconds: int = _setting(
        60,
        "Window of the upload rate limit; 0 disables.",
    )
    slow_mode_seconds: int = _setting(
        0,
        (
            "Slow mode: one post per user per room in this many seconds (moderators exempt; "
            "429 with Retry-After). A room's own value (opengroup rooms update --slow-mode) "
            "takes precedence. 0: off."
        ),
    )
    new_poster_wait_seconds: int = _setting(
        0,
        (
            "A user may post in a room only once first seen on this server this many seconds "
            "ago (moderators exempt; 429 with Retry-After). A room's own value (opengroup rooms "
            "update --new-poster-wait) takes precedence. 0: off."
        ),
    )
    new_identities_per_minute: int = _setting(
        0,
        (
            "Most new identities (first seen within new_identity_seconds, never posted or sent "
            "a direct message) that may post or send direct messages per minute, server-wide; "
            "the others get 429 with Retry-After. 0: off."
        ),
    )
    new_identity_seconds: int = _setting(
        3600,
        "How long after it is first seen an identity counts as new (new_identities_per_minute).",
    )
    dm_rate_limit_count: int = _setting(
        0,
        "Direct messages allowed per sender in the window (all recipients); 0 disables.",
    )
    dm_rate_limit_seconds: int = _setting(
        60,
        "Window of the direct message rate limit; 0 disables.",
    )
    pending_token_ttl_seconds: int = _setting(
        600,
        "How long an unclaimed challenge token lives.",
        least=1,
    )
    token_ttl_seconds: int = _setting(
        7 * 24 * 3600,
        "How long a claimed token lives.",
        least=1,
    )
    file_ttl_seconds: int = _setting(
        15 * 24 * 3600,
        "How long uploaded files are kept.",
    )
    prune_interval_seconds: int = _setting(
        600,
        "How often expired tokens and files are pruned.",
    )
    statistics_interval_seconds: int = _setting(
        3600,
        (
            "SQLite: how often each worker refreshes the query planner's statistics (ANALYZE "
            "of a sample of each index: milliseconds at any size; PostgreSQL's autovacuum "
            "does its own). 0: never."
        ),
    )
    future_permissions_interval_seconds: int = _setting(
        10,
        (
            "How often permission changes a moderator scheduled (and bans that ran out) "
            "are applied: they take effect at most this long after their time."
        ),
    )
    log_level: LogLevel = _setting(
        LogLevel.INFO,
        "Log level.",
    )
    log_file: str = _setting(
        "",
        "Also write the log to this file; empty: standard error only.",
    )
    activity_interval_seconds: int = _setting(
        300,
        (
            "How stale a member's recorded last activity in a room may get before a request with "
            "their token refreshes it (keeps most polls free of writes); feeds `opengroup stats`."
        ),
    )
    require_blinded_ids: bool = _setting(
        True,
        "Community API: refuse requests signed with an unblinded ('00') key, as current "
        "Session clients expect (capability 'blind').",
    )
    request_time_window_seconds: int = _setting(
        24 * 3600,
        "Community API: how far a signed request's timestamp may be from the server's "
        "time, either way; 425 beyond. Its nonce is kept until then, so it is never "
        "accepted twice.",
        least=1,
    )
    upload_ttl_seconds: int = _setting(
        3600,
        "Community API: how long an upload lives until a post names it in 'files' (then "
        "file_ttl_seconds from the post). Room images never expire.",
    )
    max_dm_bytes: int = _setting(
        100_000,
        "Largest direct message (message request), decoded.",
    )
    dm_ttl_seconds: int = _setting(
        15 * 24 * 3600,
        "How long an unfetched or fetched direct message is kept.",
    )
    max_batch_requests: int = _setting(
        64,
        "Most sub-requests in one /batch or /sequence; 413 above.",
        least=1,
    )
    max_batch_answer_bytes: int = _setting(
        10 * 1024 * 1024,
        (
            "Once the answers of a /batch or /sequence add up to this many bytes, the "
            "sub-requests left are not run: each is answered 413, for the client to ask "
            "again (the first always runs, so one page of large messages is never "
            "refused for its size)."
        ),
    )
    active_users_cutoff_seconds: int = _setting(
        7 * 24 * 3600,
        "A room's active users are those seen in it within this time.",
    )
    active_users_recount_seconds: int = _setting(
        10,
        (
            "How long a worker shows a room's active users as it last counted them (each "
            "poll shows them; counting reads a row per active user). A user this worker "
            "sees become active is added at once; 0: counted for every request."
        ),
    )
    metrics_enabled: bool = _setting(
        False,
        "Serve Prometheus metrics at GET /metrics on the main port, to metrics_allow_from only.",
    )
    metrics_allow_from: str = _setting(
        "127.0.0.1,::1",
        "Comma-separated addresses or networks (CIDR) allowed to read /metrics; others get 403.",
    )

    def __post_init__(self) -> None:
        # A choice given as its text (Settings(log_level="debug")) becomes its enum member.
        for field in dataclasses.fields(self):
            if isinstance(field.default, Enum):
                value = getattr(self, field.name)
                object.__setattr__(self, field.name, type(field.default)(value))

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def private_key_path(self) -> Path:
        return Path(self.x25519_private_key or self.data_path / "x25519_private_key.pem")

    @property
    def public_key_path(self) -> Path:
        return Path(self.x25519_public_key or self.data_path / "x25519_public_key.pem")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_path / 'opengroup.db').resolve()}"

    @property
    def _on_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_request_threads(self) -> int:
        if self.request_threads > 0:
            return self.request_threads
        return 4 if self._on_sqlite else 16

    @functools.cached_property
    def effective_reads_on_event_loop(self) -> bool:
        """(Kept: the router asks on every request, and the database URL is resolved.)"""
        return self.reads_on_event_loop and database_on_this_machine(self.effective_database_url)

    @property
    def effective_writes_on_event_loop_per_second(self) -> int:
        """PostgreSQL writes on the event loop only where it reads there."""
        if self._on_sqlite or self.effective_reads_on_event_loop:
            return self.writes_on_event_loop_per_second
        return 0

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}" if self.port == 80 else f"http://{host}:{self.port}"

    def as_env(self) -> dict[str, str]:
        """The settings as ``OPENGROUP_*`` variables, to hand to worker processes."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[ENV_PREFIX + field.name.upper()] = (
                ("true" if value else "false") if isinstance(value, bool) else str(value)
            )
        return out


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(
        f.name,
        f.default,
        type(f.default),
        f.metadata["help"],
        f.metadata["choices"],
        f.metadata["most"],
        f.metadata["least"],
    )
    for f in dataclasses.fields(Settings)
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, value: Any, source: str) -> Any:
    """Turn a raw value (a string from the environment, or a TOML value) into the type."""
    try:
        if setting.type is bool:
            if isinstance(value, bool):
                result: Any = value
            elif str(value).strip().lower() in ("1", "true", "yes", "on"):
                result = True
            elif str(value).strip().lower() in ("0", "false", "no", "off"):
                result = False
            else:
                raise ValueError
        elif setting.type is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError  # (int() would cut a TOML 0.5 to 0, which disables limits)
            result = int(value)
        else:
            result = str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: {setting.name} must be {setting.type.__name__}, got {value!r}"
        ) from None
    if setting.choices and result not in setting.choices:
        raise ConfigError(
            f"{source}: {setting.name} must be one of {', '.join(setting.choices)}, got {value!r}"
        )
    if setting.type is int and result > setting.largest:
        raise ConfigError(
            f"{source}: {setting.name} must be at most {setting.largest}, got {value!r}"
        )
    if setting.type is int and result < setting.least:
        if setting.least == 0:
            raise ConfigError(f"{source}: {setting.name} must not be negative, got {value!r}")
        raise ConfigError(
            f"{source}: {setting.name} must be at least {setting.least}, got {value!r}"
        )
    if setting.name == "database_url":
        _check_database_url(result, source)
    if setting.name == "public_url":
        _check_public_url(result, source)
    if issubclass(setting.type, Enum):
        result = setting.type(result)
    return result


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve every setting from flags (``overrides``), environment and config file."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                table = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        for key, value in table.items():
            setting = SETTINGS_BY_NAME.get(key)
            if setting is None:
                raise ConfigError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(setting, value, str(config_file))
    for setting in SETTINGS:
        raw = env.get(ENV_PREFIX + setting.name.upper())
        if raw is not None and raw != "":
            values[setting.name] = _coerce(setting, raw, ENV_PREFIX + setting.name.upper())
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        setting = SETTINGS_BY_NAME[key]
        values[key] = _coerce(setting, value, "--" + key.replace("_", "-"))
    return Settings(**values)
