"""The rules of `opengroup import-pysogs` that need no database (unit).

* A message's data is served padded back to pysogs' ``data_size`` (0x80, then
  zeros); data already that long, or without a size, is served as stored.
* A deleted message (data NULL) is blank, keeps its ids and seqnos; the v2
  timestamp is ``posted`` in whole milliseconds.
* A ban ends at the first unban pysogs scheduled; one whose unban is past is over.
* ``sogs.ini``: what has a setting here becomes a TOML line (days to seconds,
  booleans, levels in lower case); a value the setting cannot take, and keys with
  no equivalent, are listed as not carried over; the database URL, key file and
  uploads directory are the import's own business.
* The schema: the current one has nothing missing; an older shape names what is
  missing; a database without pysogs' tables is refused.
"""

from __future__ import annotations

import base64
import configparser

import pytest

from opengroup.pysogs_import.errors import PysogsImportError
from opengroup.pysogs_import.plan import ban_expiry, ban_is_over, copied_message, session_padded
from opengroup.pysogs_import.settings import carry_settings
from opengroup.pysogs_import.source import REQUIRED, check_schema


def test_data_is_padded_back_to_its_size() -> None:
    assert session_padded(b"abc", 8) == b"abc\x80\x00\x00\x00\x00"
    assert session_padded(b"abc", 4) == b"abc\x80"
    assert session_padded(b"abc", 3) == b"abc"
    assert session_padded(b"abc", None) == b"abc"


def _row(data: bytes | None, size: int | None) -> tuple[object, ...]:
    signature = None if data is None else b"s" * 64
    return (7, "15" + "ab" * 32, 1700000000.1234, None, 9, 8, 3, data, size, signature, 0,
            None, 0)  # fmt: skip


def test_a_message_is_kept_as_pysogs_serves_it() -> None:
    m = copied_message(_row(b"hi", 5))
    assert base64.b64decode(m.data) == b"hi\x80\x00\x00"
    assert base64.b64decode(m.signature) == b"s" * 64
    assert (m.server_id, m.seqno, m.seqno_data, m.seqno_created) == (7, 9, 8, 3)
    assert m.timestamp == 1700000000123 and m.posted_at == 1700000000.1234
    assert not m.deleted and m.whisper_to is None and m.whisper_mods is False


def test_a_deleted_message_is_blank() -> None:
    m = copied_message(_row(None, None))
    assert (m.deleted, m.data, m.signature, m.seqno) == (True, "", "", 9)


def test_a_ban_ends_at_the_first_scheduled_unban() -> None:
    assert ban_expiry([]) is None
    assert ban_expiry([(50.0, True), (200.0, False), (100.0, False)]) == 100.0
    assert ban_is_over([(100.0, False)], now=150.0)
    assert not ban_is_over([(100.0, False)], now=50.0)
    assert not ban_is_over([], now=50.0)


def test_sogs_ini_settings_become_toml_or_are_named() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(
        "[db]\nurl = sqlite:///sogs.db\n"
        "[net]\nbase_url = https://x.example/\nomq_listen = tcp://*:22028\n"
        "[files]\nexpiry = 1.5\nmax_size = lots\n"
        "[users]\nrequire_blind_keys = no\n"
        "[log]\nlevel = DEBUG\n"
    )
    carried = carry_settings(parser)
    assert carried.toml == [
        'public_url = "https://x.example"  # sogs.ini [net] base_url',
        "file_ttl_seconds = 129600  # sogs.ini [files] expiry",
        "require_blinded_ids = false  # sogs.ini [users] require_blind_keys",
        'log_level = "debug"  # sogs.ini [log] level',
    ]
    assert carried.not_carried == [
        "[net] omq_listen = tcp://*:22028: no equivalent here",
        "[files] max_size = lots: not a value max_upload_bytes can take",
    ]


def test_the_current_schema_is_recognised_and_older_ones_say_what_they_lack() -> None:
    current = {table: set(columns) for table, columns in REQUIRED.items()}
    assert check_schema(current) == []
    older = {**current, "rooms": current["rooms"] - {"accessible"}}
    del older["user_ban_futures"]
    assert check_schema(older) == ["column rooms.accessible", "table user_ban_futures"]
    with pytest.raises(PysogsImportError, match="not one of pysogs"):
        check_schema({"main": {"id", "name"}})
