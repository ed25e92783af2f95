"""The documents match the code: every setting is in the README's table, every
route of both APIs is in docs/API.md, and every module is in ARCHITECTURE.md's
module map (so a newcomer who reads them is not misled by omission)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opengroup.api.routes import ROUTES as V2_ROUTES
from opengroup.api.v3.routes import ROUTES as V3_ROUTES
from opengroup.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
API = (ROOT / "docs" / "API.md").read_text()
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()
PACKAGE = ROOT / "opengroup"


def _readme_setting_names() -> set[str]:
    """Names in the first column of the README's settings table (one or several a row)."""
    names: set[str] = set()
    for line in README.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_every_setting_is_in_the_readme_table(name: str) -> None:
    assert name in _readme_setting_names(), f"README.md's settings table lacks {name}"


def _api_doc_form(path: str) -> str:
    """docs/API.md writes path parameters as :name."""
    return re.sub(r"\{(\w+)(?::path)?\}", r":\1", path)


@pytest.mark.parametrize(
    "method, path",
    [pytest.param(r.method, r.path, id=f"v3 {r.method} {r.path}") for r in V3_ROUTES],
)
def test_every_community_api_route_is_in_the_api_doc(method: str, path: str) -> None:
    assert f"`{method} {_api_doc_form(path)}`" in API, f"docs/API.md lacks {method} {path}"


@pytest.mark.parametrize(
    "method, path",
    [pytest.param(r.method, r.path, id=f"v2 {r.method} {r.path}") for r in V2_ROUTES],
)
def test_every_v2_route_is_in_the_api_doc(method: str, path: str) -> None:
    assert f"`{method} {_api_doc_form(path)}`" in API, f"docs/API.md lacks {method} {path}"


def _modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" and path.stat().st_size < 400:
            continue  # a package marker with a docstring
        if "migrations/" in relative:
            continue  # the migrations are named by their directory
        found.append(relative)
    return found


@pytest.mark.parametrize("module", _modules())
def test_every_module_is_in_the_architecture_map(module: str) -> None:
    assert module in ARCHITECTURE, f"ARCHITECTURE.md's module map lacks {module}"


def test_the_architecture_map_names_no_module_that_is_gone() -> None:
    named = set(re.findall(r"\b((?:[a-z_0-9]+/)*[a-z_0-9]+\.py)\b", ARCHITECTURE))
    missing = sorted(n for n in named if "/" in n and not (PACKAGE / n).exists())
    assert not missing, f"ARCHITECTURE.md names modules that do not exist: {missing}"
