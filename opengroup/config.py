"""Settings: one table, each with a default, a type and help text.

Precedence, highest first: command-line flag, ``OPENGROUP_<NAME>`` environment
variable, the TOML file given by ``--config``, the default. Settings are
resolved once at start-up into a frozen :class:`Settings` object that is
passed down; nothing reads the environment after that.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "./data", str, "Directory for the SQLite database and the key pair."),
    Setting("host", "0.0.0.0", str, "Address to listen on."),
    Setting("port", 8080, int, "TCP port to listen on."),
    Setting("workers", 1, int, "Number of worker processes."),
    Setting(
        "keep_alive_seconds",
        5,
        int,
        "How long an idle HTTP connection is kept open for its next request (0: closed "
        "as soon as it is idle). A proxy that reuses connections must let them go sooner.",
    ),
    Setting(
        "database_url",
        "",
        str,
        "SQLAlchemy URL of the database; empty means SQLite at DATA_DIR/opengroup.db. "
        "postgresql://user@host/db selects PostgreSQL.",
    ),
    Setting(
        "public_url",
        "",
        str,
        "Base URL clients use to reach this server (e.g. http://chat.example.org), used in "
        "join URLs; empty means http://HOST:PORT.",
    ),
    Setting(
        "x25519_private_key",
        "",
        str,
        "Path of the server's X25519 private key (PEM); empty: DATA_DIR/x25519_private_key.pem.",
    ),
    Setting(
        "x25519_public_key",
        "",
        str,
        "Path of the server's X25519 public key (PEM); empty: DATA_DIR/x25519_public_key.pem.",
    ),
    Setting(
        "deletions_format",
        "ids",
        str,
        "Shape of deletions in compact_poll and GET /deleted_messages: 'ids' (the seed "
        "document: a list of deleted message ids) or 'objects' (what released Session clients "
        "read: [{id, deleted_message_id}]).",
        choices=("ids", "objects"),
    ),
    Setting("verify_signatures", True, bool, "Reject messages whose XEdDSA signature is invalid."),
    Setting("max_upload_bytes", 10_000_000, int, "Largest file or room image, decoded."),
    Setting("max_message_bytes", 100_000, int, "Largest message 'data', decoded."),
    Setting(
        "max_request_body_bytes",
        16 * 1024 * 1024,
        int,
        "Largest direct HTTP request body (room for a base64 upload of max_upload_bytes).",
    ),
    Setting("max_onion_body_bytes", 10 * 1024 * 1024, int, "Largest onion request body."),
    Setting("max_poll_rooms", 256, int, "Most room entries in one compact_poll."),
    Setting(
        "max_json_depth",
        32,
        int,
        "Deepest nesting of a JSON body (and of an onion request's inner JSON); 400 deeper. "
        "0: no limit of ours.",
    ),
    Setting(
        "max_pending_challenges_per_key",
        16,
        int,
        "Most unclaimed challenges one public key may hold in one room; 429 above. 0: no limit.",
    ),
    Setting(
        "max_tokens_per_key",
        32,
        int,
        "Most live tokens one public key may hold in one room; claiming one more revokes the "
        "oldest. 0: no limit.",
    ),
    Setting("post_rate_limit_count", 5, int, "Posts allowed per user per room in the window."),
    Setting("post_rate_limit_seconds", 16, int, "Window of the posting rate limit; 0 disables."),
    Setting(
        "challenge_rate_limit_count",
        20,
        int,
        "Challenges (auth_token_challenge) allowed per public key, all rooms, in the window "
        "(a room's moderators are exempt there).",
    ),
    Setting(
        "challenge_rate_limit_seconds", 60, int, "Window of the challenge rate limit; 0 disables."
    ),
    Setting(
        "upload_rate_limit_count",
        10,
        int,
        "Uploads allowed per user per room in the window (moderators exempt).",
    ),
    Setting("upload_rate_limit_seconds", 60, int, "Window of the upload rate limit; 0 disables."),
    Setting("pending_token_ttl_seconds", 600, int, "How long an unclaimed challenge token lives."),
    Setting("token_ttl_seconds", 7 * 24 * 3600, int, "How long a claimed token lives."),
    Setting("file_ttl_seconds", 15 * 24 * 3600, int, "How long uploaded files are kept."),
    Setting("prune_interval_seconds", 600, int, "How often expired tokens and files are pruned."),
    Setting(
        "log_level",
        "info",
        str,
        "Log level.",
        choices=("debug", "info", "warning", "error", "critical"),
    ),
    Setting("log_file", "", str, "Also write the log to this file; empty: standard error only."),
    Setting(
        "activity_interval_seconds",
        300,
        int,
        "How stale a member's recorded last activity in a room may get before a request with "
        "their token refreshes it (keeps most polls free of writes); feeds `opengroup stats`.",
    ),
    Setting(
        "metrics_enabled",
        False,
        bool,
        "Serve Prometheus metrics at GET /metrics on the main port, to metrics_allow_from only.",
    ),
    Setting(
        "metrics_allow_from",
        "127.0.0.1,::1",
        str,
        "Comma-separated addresses or networks (CIDR) allowed to read /metrics; others get 403.",
    ),
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
            if isinstance(value, bool):
                raise ValueError
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
    if setting.type is int and result < 0:
        raise ConfigError(f"{source}: {setting.name} must not be negative, got {value!r}")
    return result


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one server; built by :func:`load_settings`."""

    data_dir: str = "./data"
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    keep_alive_seconds: int = 5
    database_url: str = ""
    public_url: str = ""
    x25519_private_key: str = ""
    x25519_public_key: str = ""
    deletions_format: str = "ids"
    verify_signatures: bool = True
    max_upload_bytes: int = 10_000_000
    max_message_bytes: int = 100_000
    max_request_body_bytes: int = 16 * 1024 * 1024
    max_onion_body_bytes: int = 10 * 1024 * 1024
    max_poll_rooms: int = 256
    max_json_depth: int = 32
    max_pending_challenges_per_key: int = 16
    max_tokens_per_key: int = 32
    post_rate_limit_count: int = 5
    post_rate_limit_seconds: int = 16
    challenge_rate_limit_count: int = 20
    challenge_rate_limit_seconds: int = 60
    upload_rate_limit_count: int = 10
    upload_rate_limit_seconds: int = 60
    pending_token_ttl_seconds: int = 600
    token_ttl_seconds: int = 7 * 24 * 3600
    file_ttl_seconds: int = 15 * 24 * 3600
    prune_interval_seconds: int = 600
    log_level: str = "info"
    log_file: str = ""
    activity_interval_seconds: int = 300
    metrics_enabled: bool = False
    metrics_allow_from: str = "127.0.0.1,::1"

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
