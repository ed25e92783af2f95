"""``sogs.ini``: what has a setting here is printed as our TOML, the rest is named.

pysogs reads its ini with configparser; times are given in days there and in
seconds here. Its database URL, key file and uploads directory are read by
the import itself (see ``source.SourcePaths``).
"""

from __future__ import annotations

import configparser
from collections.abc import Callable
from dataclasses import dataclass

from opengroup.config import SETTINGS

DAY = 86400
TRUTHY = ("y", "yes", "true", "on", "1")
FALSY = ("n", "no", "false", "off", "0")
LOG_LEVELS = {"debug", "info", "warning", "error", "critical"}
# Read by the import itself; no setting to carry.
USED_BY_IMPORT = {("db", "url"), ("crypto", "key_file"), ("files", "uploads_dir")}


def _days(value: str) -> int | None:
    try:
        seconds = float(value) * DAY
    except ValueError:
        return None
    return int(seconds) if seconds > 0 else None


def _boolean(value: str) -> bool | None:
    low = value.strip().lower()
    return True if low in TRUTHY else False if low in FALSY else None


def _positive_int(value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 else None


def _url(value: str) -> str | None:
    value = value.strip().rstrip("/")
    return value if value.startswith(("http://", "https://")) else None


def _level(value: str) -> str | None:
    low = value.strip().lower()
    return low if low in LOG_LEVELS else None


# (section, key) of sogs.ini -> (our setting, how its value reads)
EQUIVALENTS: dict[tuple[str, str], tuple[str, Callable[[str], object]]] = {
    ("net", "base_url"): ("public_url", _url),
    ("files", "max_size"): ("max_upload_bytes", _positive_int),
    ("files", "expiry"): ("file_ttl_seconds", _days),
    ("direct_messages", "expiry"): ("dm_ttl_seconds", _days),
    ("users", "require_blind_keys"): ("require_blinded_ids", _boolean),
    ("rooms", "active_threshold"): ("active_users_cutoff_seconds", _days),
    ("log", "level"): ("log_level", _level),
}


@dataclass
class CarriedSettings:
    toml: list[str]  # lines to paste into our config file
    not_carried: list[str]  # "section.key = value (why)"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def carry_settings(parser: configparser.ConfigParser) -> CarriedSettings:
    names = {s.name for s in SETTINGS}
    carried = CarriedSettings([], [])
    for section in parser.sections():
        for key, raw in parser.items(section, raw=True):
            if (section, key) in USED_BY_IMPORT:
                continue
            found = EQUIVALENTS.get((section, key))
            if found is None:
                carried.not_carried.append(f"[{section}] {key} = {raw}: no equivalent here")
                continue
            setting, read = found
            assert setting in names, setting
            value = read(raw)
            if value is None:
                carried.not_carried.append(
                    f"[{section}] {key} = {raw}: not a value {setting} can take"
                )
                continue
            carried.toml.append(f"{setting} = {_toml_value(value)}  # sogs.ini [{section}] {key}")
    return carried
