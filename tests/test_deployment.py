"""Deployment files under deploy/ (README "Deployment"): kept true to the code.

- `deploy/opengroup.toml` is exactly what `opengroup settings` prints: every
  setting with its current default (regenerate it with
  `python -m opengroup settings > deploy/opengroup.toml`).
- `deploy/opengroup.service` is a hardened systemd unit, checked with
  `systemd-analyze` where that exists.
- `deploy/nginx.conf` proxies to the default address with a body limit equal
  to the server's own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from harness.server import REPO_ROOT, run_cli

from opengroup.config import SETTINGS, Settings

DEPLOY = REPO_ROOT / "deploy"
EXAMPLE_CONFIG = DEPLOY / "opengroup.toml"
UNIT = DEPLOY / "opengroup.service"
NGINX = DEPLOY / "nginx.conf"
REGENERATE = "regenerate it: python -m opengroup settings > deploy/opengroup.toml"


# --------------------------------------------------------------------------- helpers


def toml_value(value: Any) -> str:
    """A default as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every directive of a systemd unit, repeats kept."""
    section, found = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def nginx_size(text: str) -> int:
    """An nginx size ("16m", "512k", "1g", "100") in bytes."""
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([kmg]?)", text.lower())
    assert match, f"not an nginx size: {text!r}"
    return int(match[1]) * units[match[2]]


# --------------------------------------------------------------------------- example config


def test_example_config_lists_every_setting_with_its_current_default() -> None:
    lines = EXAMPLE_CONFIG.read_text().splitlines()
    for setting in SETTINGS:
        expected = f"# {setting.name} = {toml_value(setting.default)}"
        assert expected in lines, f"deploy/opengroup.toml lacks {expected!r}; {REGENERATE}"
        assert f"# Environment: OPENGROUP_{setting.name.upper()}" in lines


def test_example_config_is_exactly_what_opengroup_settings_prints(tmp_path: Path) -> None:
    printed = run_cli(None, None, "settings", cwd=tmp_path).stdout
    assert EXAMPLE_CONFIG.read_text() == printed, f"deploy/opengroup.toml is stale; {REGENERATE}"


def test_example_config_uncommented_is_a_config_of_exactly_the_defaults(tmp_path: Path) -> None:
    assignments = [
        line[2:] for line in EXAMPLE_CONFIG.read_text().splitlines() if re.match(r"# \w+ = ", line)
    ]
    config = tmp_path / "opengroup.toml"
    config.write_text("\n".join(assignments) + "\n")
    assert tomllib.loads(config.read_text()) == {s.name: s.default for s in SETTINGS}
    assert {s.name: s.default for s in SETTINGS} == vars(Settings())
    # The server takes it as it is (an unknown or mistyped setting would stop it).
    listed = run_cli(tmp_path / "data", None, "rooms", "list", "--config", str(config))
    assert listed.stdout.splitlines() == ["main\tMain"]


# --------------------------------------------------------------------------- systemd unit


def test_systemd_unit_is_hardened_and_runs_the_server_from_the_example_config() -> None:
    directives = unit_directives(UNIT.read_text())
    service = {(key, value) for section, key, value in directives if section == "Service"}
    required = {
        ("User", "opengroup"),
        ("Group", "opengroup"),
        ("WorkingDirectory", "/var/lib/opengroup"),
        ("StateDirectory", "opengroup"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/opengroup"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("Restart", "on-failure"),
    }
    assert required <= service, f"missing: {sorted(required - service)}"
    [exec_start] = [value for key, value in service if key == "ExecStart"]
    assert exec_start.split()[1:] == ["serve", "--config", "/etc/opengroup/opengroup.toml"]
    assert exec_start.split()[0].endswith("/bin/opengroup")
    assert ("Install", "WantedBy", "multi-user.target") in directives


def test_systemd_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    # The one check of this module that may skip: systemd-analyze is not on every machine.
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (the only check here that may skip)")
    # verify insists that ExecStart's program exists: point it at the installed one.
    installed = Path(sys.executable).with_name("opengroup")
    assert installed.exists(), f"no {installed}: install the package (pip install -e .)"
    text = UNIT.read_text()
    [program] = re.findall(r"^ExecStart=(\S+)", text, re.M)
    unit = tmp_path / "opengroup.service"
    unit.write_text(text.replace(f"ExecStart={program}", f"ExecStart={installed}"))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown keys and bad values are only warnings on stderr: none is allowed.
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    overall = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert security.returncode == 0, f"exposure above 2.0: {overall and overall[1]}"


# --------------------------------------------------------------------------- nginx


def test_nginx_example_proxies_to_the_default_address_with_the_servers_body_limit() -> None:
    text = NGINX.read_text()
    active = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    defaults = Settings()
    assert re.search(rf"server 127\.0\.0\.1:{defaults.port};", active)
    servers = len(re.findall(r"^server \{", active, re.M))
    assert servers == 2
    assert re.search(r"listen 443 ssl;", active)
    assert re.search(r"listen 80;", active)
    limits = re.findall(r"client_max_body_size (\S+);", active)
    assert len(limits) == servers
    assert {nginx_size(limit) for limit in limits} == {defaults.max_request_body_bytes}
    for directive in (
        "proxy_pass http://opengroup;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header Host $host;",
        "location = /metrics {",
    ):
        assert active.count(directive) == servers, directive


def test_nginx_example_lets_idle_upstream_connections_go_before_the_server_does() -> None:
    """Else nginx may send a request on a connection the server is closing (502)."""
    active = "\n".join(line.split("#", 1)[0] for line in NGINX.read_text().splitlines())
    upstream = re.search(r"upstream opengroup \{(.*?)\}", active, re.S)
    assert upstream, "no upstream block"
    timeout = re.search(r"keepalive_timeout (\d+)s;", upstream[1])
    assert timeout, "the upstream block sets no keepalive_timeout (nginx's default is 60 s)"
    assert int(timeout[1]) < Settings().keep_alive_seconds


def test_readme_points_at_every_deployment_file() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for path in sorted(DEPLOY.iterdir()):
        assert f"deploy/{path.name}" in readme, f"README.md does not mention deploy/{path.name}"
