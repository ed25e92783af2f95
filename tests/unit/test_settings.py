"""opengroup.config: the settings, defined once and resolved once.

Rules pinned here:

* One definition: :data:`SETTINGS` is built from the fields of :class:`Settings`, in
  their order, with their defaults, types, help texts and choices; a default is one
  of its choices.
* Every setting has help text, and every quantity names its unit: an integer
  setting ends in ``_seconds``, ``_bytes`` or ``_count``, or is in
  :data:`COUNTED_BY_THEIR_NOUN` below (with what it counts).
* Precedence, highest first: overrides (command-line flags), ``OPENGROUP_<NAME>``,
  the TOML file (``config_file``, else ``OPENGROUP_CONFIG``), the default. An
  override of None and an empty environment variable mean "not given".
* Values are checked where they come in: a refusal (:class:`ConfigError`) names
  where the value came from, the setting and the value. Booleans take
  1/true/yes/on and 0/false/no/off in any case; integers are whole and not
  negative (a TOML float or boolean is refused, never cut), nor above their bound if
  they have one (``port``, ``workers``); choices are exact; a
  database URL is SQLite's or PostgreSQL's (a refusal shows its scheme only).
* A TOML file with an unknown key, invalid TOML, or no such file is refused.
* ``Settings.as_env()`` is read back by :func:`load_settings` to the same settings
  (what worker processes get).
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from opengroup.config import (
    ENV_PREFIX,
    MOST_INTEGER,
    SETTINGS,
    SETTINGS_BY_NAME,
    ConfigError,
    DeletionsFormat,
    LogLevel,
    Settings,
    _coerce,
    load_settings,
)

UNITS = ("_seconds", "_bytes", "_count")

# Integer settings whose name says what they count instead of a unit suffix.
COUNTED_BY_THEIR_NOUN = {
    "port": "a TCP port number",
    "workers": "worker processes",
    "request_threads": "threads in a worker process",
    "writes_on_event_loop_per_second": "writes a second of one worker, made on its event loop",
    "max_poll_rooms": "rooms in one compact_poll",
    "max_poll_items": "messages and deletions in one compact_poll answer",
    "max_json_depth": "levels of JSON nesting",
    "max_pending_challenges_per_key": "unclaimed challenges of one key",
    "max_tokens_per_key": "live tokens of one key",
    "max_batch_requests": "sub-requests in one batch",
    "new_identities_per_minute": "new identities admitted to speak in a minute",
}


def toml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opengroup.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- one definition


def test_settings_are_built_from_the_fields_of_settings_in_order() -> None:
    fields = dataclasses.fields(Settings)
    assert [s.name for s in SETTINGS] == [f.name for f in fields]
    assert set(SETTINGS_BY_NAME) == {f.name for f in fields}
    defaults = Settings()
    for setting, field in zip(SETTINGS, fields, strict=True):
        assert setting.default == getattr(defaults, field.name)
        assert setting.type is type(field.default)
        assert setting.help == field.metadata["help"]
        assert setting.choices == field.metadata["choices"]


@pytest.mark.parametrize("setting", [pytest.param(s, id=s.name) for s in SETTINGS])
def test_every_setting_has_help_text_and_a_usable_type(setting: Any) -> None:
    assert setting.help.strip(), f"{setting.name} has no help text"
    assert setting.type in (str, int, bool) or issubclass(setting.type, StrEnum)
    if setting.choices:
        assert setting.default in setting.choices
        assert setting.choices == tuple(member.value for member in setting.type)


@pytest.mark.parametrize("setting", [pytest.param(s, id=s.name) for s in SETTINGS if s.type is int])
def test_every_quantity_names_its_unit(setting: Any) -> None:
    assert setting.name.endswith(UNITS) or setting.name in COUNTED_BY_THEIR_NOUN, (
        f"{setting.name}: end it in one of {UNITS}, or add it to COUNTED_BY_THEIR_NOUN"
    )


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in COUNTED_BY_THEIR_NOUN])
def test_the_exceptions_are_integer_settings_without_a_unit_suffix(name: str) -> None:
    assert name in SETTINGS_BY_NAME, f"{name} is no setting: drop it from the exceptions"
    assert SETTINGS_BY_NAME[name].type is int
    assert not name.endswith(UNITS)


# ---------------------------------------------------------------------------- precedence


def test_with_nothing_given_every_setting_is_its_default() -> None:
    assert load_settings(env={}) == Settings()


@pytest.mark.parametrize(
    "in_file, in_env, override, expected",
    [
        pytest.param(None, None, None, 8080, id="the default"),
        pytest.param(1001, None, None, 1001, id="the file over the default"),
        pytest.param(1001, "1002", None, 1002, id="the environment over the file"),
        pytest.param(1001, "1002", 1003, 1003, id="an override over the environment"),
        pytest.param(None, None, 1003, 1003, id="an override alone"),
        pytest.param(1001, "", None, 1001, id="an empty variable is not given"),
    ],
)
def test_overrides_beat_the_environment_which_beats_the_file_which_beats_the_default(
    tmp_path: Path, in_file: int | None, in_env: str | None, override: int | None, expected: int
) -> None:
    config = toml_file(tmp_path, f"port = {in_file}\n" if in_file is not None else "")
    env = {} if in_env is None else {"OPENGROUP_PORT": in_env}
    settings = load_settings(overrides={"port": override}, env=env, config_file=config)
    assert settings.port == expected


def test_each_setting_comes_from_its_own_highest_source(tmp_path: Path) -> None:
    config = toml_file(
        tmp_path, 'port = 1001\nworkers = 3\nlog_level = "debug"\nmax_dm_bytes = 7\n'
    )
    env = {"OPENGROUP_WORKERS": "4", "OPENGROUP_LOG_LEVEL": "error"}
    settings = load_settings(overrides={"log_level": "warning"}, env=env, config_file=config)
    assert (settings.port, settings.workers, settings.log_level) == (1001, 4, "warning")
    assert settings.max_dm_bytes == 7
    assert settings.max_upload_bytes == Settings().max_upload_bytes


def test_the_file_may_be_named_by_opengroup_config(tmp_path: Path) -> None:
    config = toml_file(tmp_path, "port = 1001\n")
    assert load_settings(env={"OPENGROUP_CONFIG": str(config)}).port == 1001


def test_a_named_file_beats_the_one_in_opengroup_config(tmp_path: Path) -> None:
    named = tmp_path / "named.toml"
    named.write_text("port = 1005\n")
    config = toml_file(tmp_path, "port = 1001\n")
    env = {"OPENGROUP_CONFIG": str(config)}
    assert load_settings(env=env, config_file=named).port == 1005


def test_settings_as_environment_variables_read_back_to_the_same_settings() -> None:
    changed = Settings(
        port=9000,
        verify_signatures=False,
        metrics_enabled=True,
        log_level=LogLevel.DEBUG,
        deletions_format=DeletionsFormat.OBJECTS,
        public_url="https://chat.example.org",
        max_json_depth=0,
    )
    env = changed.as_env()
    assert set(env) == {ENV_PREFIX + s.name.upper() for s in SETTINGS}
    assert load_settings(env=env) == changed


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "raw, expected",
    [
        *[pytest.param(w, True, id=f"{w!r} is true") for w in ("1", "true", "yes", "on")],
        *[pytest.param(w, False, id=f"{w!r} is false") for w in ("0", "false", "no", "off")],
        pytest.param(" TRUE ", True, id="any case, spaces around"),
        pytest.param("Off", False, id="Off"),
        pytest.param(True, True, id="a TOML true"),
        pytest.param(False, False, id="a TOML false"),
    ],
)
def test_boolean_settings_take_the_usual_words(raw: Any, expected: bool) -> None:
    assert _coerce(SETTINGS_BY_NAME["verify_signatures"], raw, "test") is expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("maybe", id="another word"),
        pytest.param("", id="empty"),
        pytest.param("2", id="the number 2"),
        pytest.param("y", id="an abbreviation"),
    ],
)
def test_other_boolean_words_are_refused_naming_the_setting_and_the_value(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _coerce(SETTINGS_BY_NAME["verify_signatures"], raw, "OPENGROUP_VERIFY_SIGNATURES")
    assert str(refused.value) == (
        f"OPENGROUP_VERIFY_SIGNATURES: verify_signatures must be bool, got {raw!r}"
    )


@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param("0", 0, id="zero text"),
        pytest.param(" 42 ", 42, id="text with spaces"),
        pytest.param(42, 42, id="a TOML integer"),
    ],
)
def test_integer_settings_take_whole_numbers(raw: Any, expected: int) -> None:
    assert _coerce(SETTINGS_BY_NAME["max_dm_bytes"], raw, "test") == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("ten", id="a word"),
        pytest.param("1.5", id="decimal text"),
        pytest.param("", id="empty text"),
        pytest.param(0.5, id="a TOML float"),
        pytest.param(16.0, id="a whole TOML float"),
        pytest.param(True, id="a TOML boolean"),
        pytest.param([1], id="a TOML array"),
    ],
)
def test_anything_but_a_whole_number_is_refused_for_an_integer_setting(raw: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        _coerce(SETTINGS_BY_NAME["post_rate_limit_seconds"], raw, "opengroup.toml")
    assert str(refused.value) == (
        f"opengroup.toml: post_rate_limit_seconds must be int, got {raw!r}"
    )


@pytest.mark.parametrize(
    "raw", [pytest.param("-1", id="negative text"), pytest.param(-5, id="a negative integer")]
)
def test_negative_integers_are_refused(raw: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        _coerce(SETTINGS_BY_NAME["port"], raw, "--port")
    assert str(refused.value) == f"--port: port must not be negative, got {raw!r}"


@pytest.mark.parametrize(("name", "most"), [("port", 65535), ("workers", 64)])
def test_a_bounded_integer_takes_its_largest_value_and_no_more(name: str, most: int) -> None:
    setting = SETTINGS_BY_NAME[name]
    assert setting.most == most
    assert _coerce(setting, str(most), "test") == most
    with pytest.raises(ConfigError) as refused:
        _coerce(setting, str(most + 1), "--" + name)
    assert str(refused.value) == f"--{name}: {name} must be at most {most}, got '{most + 1}'"


@pytest.mark.parametrize(
    "name", ["request_time_window_seconds", "max_upload_bytes", "dm_ttl_seconds"]
)
def test_an_integer_without_a_bound_of_its_own_takes_up_to_a_trillion(name: str) -> None:
    """Past 10^12, times in milliseconds and sizes would overflow a 64-bit integer in
    the database (a window of 10^21 seconds did, in a traceback at start)."""
    setting = SETTINGS_BY_NAME[name]
    assert _coerce(setting, str(MOST_INTEGER), "test") == MOST_INTEGER
    with pytest.raises(ConfigError) as refused:
        _coerce(setting, "1" + "0" * 21, "ENV")
    assert str(refused.value) == (f"ENV: {name} must be at most {MOST_INTEGER}, got '1{'0' * 21}'")


@pytest.mark.parametrize(
    "name",
    [
        "workers",
        "max_message_bytes",
        "max_request_body_bytes",
        "max_onion_body_bytes",
        "max_poll_rooms",
        "max_batch_requests",
        "request_time_window_seconds",
        "token_ttl_seconds",
        "pending_token_ttl_seconds",
    ],
)
def test_where_zero_would_refuse_every_request_of_a_kind_it_is_refused(name: str) -> None:
    setting = SETTINGS_BY_NAME[name]
    assert _coerce(setting, "1", "test") == 1
    with pytest.raises(ConfigError) as refused:
        _coerce(setting, "0", "--" + name)
    assert str(refused.value) == f"--{name}: {name} must be at least 1, got '0'"


@pytest.mark.parametrize("name", ["max_poll_items", "max_json_depth", "post_rate_limit_seconds"])
def test_where_zero_means_no_limit_it_is_taken(name: str) -> None:
    assert _coerce(SETTINGS_BY_NAME[name], "0", "test") == 0


@pytest.mark.parametrize(
    "url", ["", "http://chat.example.org", "https://chat.example.org:8443", "http://[::1]:80"]
)
def test_a_public_url_is_http_or_https_with_a_host(url: str) -> None:
    assert _coerce(SETTINGS_BY_NAME["public_url"], url, "test") == url


@pytest.mark.parametrize("url", ["ftp://x", "http://", "chat.example.org", "https:///path"])
def test_a_public_url_clients_could_not_reach_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _coerce(SETTINGS_BY_NAME["public_url"], url, "--public-url")
    assert str(refused.value) == (
        f"--public-url: public_url must be http://HOST[:PORT] or https://HOST[:PORT], got {url!r}"
    )


def test_a_choice_must_be_one_of_the_choices_exactly() -> None:
    setting = SETTINGS_BY_NAME["log_level"]
    assert _coerce(setting, "warning", "test") == "warning"
    with pytest.raises(ConfigError) as refused:
        _coerce(setting, "verbose", "OPENGROUP_LOG_LEVEL")
    assert str(refused.value) == (
        "OPENGROUP_LOG_LEVEL: log_level must be one of debug, info, warning, error, critical, "
        "got 'verbose'"
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sqlite:////srv/og/opengroup.db",
        "postgresql://og@127.0.0.1/og",
        "postgres://og@/og?host=/run/postgresql",
        "postgresql+psycopg://og:pw@db.example.org:5433/og",
    ],
)
def test_a_database_url_names_sqlite_or_postgresql(url: str) -> None:
    assert _coerce(SETTINGS_BY_NAME["database_url"], url, "test") == url


@pytest.mark.parametrize(
    "url, scheme",
    [
        ("mysql://root:secret@127.0.0.1/og", "mysql"),
        ("postgresql+asyncpg://og@127.0.0.1/og", "postgresql+asyncpg"),
        ("/srv/og/opengroup.db", "scheme-less"),
    ],
)
def test_another_database_url_is_refused_without_showing_it(url: str, scheme: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _coerce(SETTINGS_BY_NAME["database_url"], url, "--database-url")
    assert str(refused.value) == (
        "--database-url: database_url must be sqlite:///FILE or "
        f"postgresql://USER@HOST/DATABASE, not a {scheme} URL"
    )


@pytest.mark.parametrize(
    "source, where",
    [
        pytest.param("env", "OPENGROUP_MAX_DM_BYTES", id="the environment"),
        pytest.param("file", "opengroup.toml", id="the file"),
        pytest.param("override", "--max-dm-bytes", id="a flag"),
    ],
)
def test_load_settings_names_where_a_bad_value_came_from(
    tmp_path: Path, source: str, where: str
) -> None:
    config = toml_file(tmp_path, "max_dm_bytes = -3\n" if source == "file" else "")
    env = {"OPENGROUP_MAX_DM_BYTES": "-3"} if source == "env" else {}
    overrides = {"max_dm_bytes": -3} if source == "override" else {}
    with pytest.raises(ConfigError, match="max_dm_bytes must not be negative") as refused:
        load_settings(overrides=overrides, env=env, config_file=config)
    assert where in str(refused.value)


# ---------------------------------------------------------------------------- the file


@pytest.mark.parametrize(
    "text, key",
    [
        pytest.param("prot = 8080\n", "prot", id="a misspelt setting"),
        pytest.param("PORT = 8080\n", "PORT", id="upper case"),
        pytest.param("[server]\nport = 8080\n", "server", id="a table"),
    ],
)
def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path, text: str, key: str) -> None:
    config = toml_file(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_settings(env={}, config_file=config)
    assert str(refused.value) == f"{config}: unknown setting {key!r}"


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    config = toml_file(tmp_path, "port = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(env={}, config_file=config)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(env={}, config_file=tmp_path / "absent.toml")


def test_a_choice_is_its_enum_member_however_it_was_given(tmp_path: Path) -> None:
    config = tmp_path / "opengroup.toml"
    config.write_text('deletions_format = "objects"\nlog_level = "warning"\n')
    from_file = load_settings(env={}, config_file=config)
    assert from_file.deletions_format is DeletionsFormat.OBJECTS
    assert from_file.log_level is LogLevel.WARNING
    from_env = load_settings(env={ENV_PREFIX + "DELETIONS_FORMAT": "ids"})
    assert from_env.deletions_format is DeletionsFormat.IDS
    # A choice given as text, as a caller may: the type says the member, hence the ignore.
    text_given = Settings(log_level="error")  # type: ignore[arg-type]
    assert text_given.log_level is LogLevel.ERROR


def test_deletions_are_paged_by_number_only_as_objects() -> None:
    assert DeletionsFormat.OBJECTS.by_number
    assert not DeletionsFormat.IDS.by_number


@pytest.mark.parametrize(
    ("overrides", "threads"),
    [
        ({}, 4),  # SQLite in the data dir
        ({"database_url": "sqlite:////tmp/other.db"}, 4),
        ({"database_url": "postgresql://postgres@127.0.0.1/og"}, 16),
        ({"request_threads": 2}, 2),
        ({"request_threads": 32, "database_url": "postgresql://postgres@127.0.0.1/og"}, 32),
    ],
)
def test_request_threads_default_to_what_the_backend_needs(
    overrides: dict[str, Any], threads: int
) -> None:
    assert load_settings(overrides=overrides, env={}).effective_request_threads == threads


@pytest.mark.parametrize(
    ("database_url", "on_loop"),
    [
        ("", True),  # SQLite in the data dir
        ("sqlite:////tmp/other.db", True),
        ("postgresql://postgres@127.0.0.1/og", True),
        ("postgresql://postgres@127.8.0.1:5433/og", True),
        ("postgresql://postgres@[::1]/og", True),
        ("postgresql://postgres@localhost/og", True),
        ("postgresql://postgres@/og", True),  # libpq's default: the Unix socket
        ("postgresql://postgres@/og?host=/var/run/postgresql", True),
        ("postgresql://postgres@10.0.0.7/og", False),
        ("postgresql://postgres@db.example.org/og", False),
        ("postgresql://postgres@/og?host=db.example.org", False),
    ],
)
def test_reads_stay_on_the_event_loop_only_where_the_database_needs_no_network(
    database_url: str, on_loop: bool
) -> None:
    settings = load_settings(overrides={"database_url": database_url}, env={})
    assert settings.effective_reads_on_event_loop is on_loop
    turned_off = load_settings(
        overrides={"database_url": database_url, "reads_on_event_loop": False}, env={}
    )
    assert turned_off.effective_reads_on_event_loop is False


@pytest.mark.parametrize(
    ("overrides", "per_second"),
    [
        ({}, 200),  # SQLite: its writes on the loop take no network wait and no lock wait
        ({"reads_on_event_loop": False}, 200),
        ({"database_url": "postgresql://postgres@127.0.0.1/og"}, 200),
        ({"database_url": "postgresql://postgres@127.0.0.1/og", "reads_on_event_loop": False}, 0),
        ({"database_url": "postgresql://postgres@10.0.0.7/og"}, 0),
        (
            {
                "database_url": "postgresql://postgres@127.0.0.1/og",
                "writes_on_event_loop_per_second": 0,
            },
            0,
        ),
    ],
)
def test_postgresqls_writes_are_on_the_event_loop_only_where_its_reads_are(
    overrides: dict[str, Any], per_second: int
) -> None:
    settings = load_settings(overrides=overrides, env={})
    assert settings.effective_writes_on_event_loop_per_second == per_second
