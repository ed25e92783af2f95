"""Finding a request's route (``opengroup.api.paths.PathTable``), for both APIs' tables.

Rules pinned here: a path matches the first route of its method, in table order, whose
pattern it fits (``{name}``: one segment; ``{name:path}``: the rest); a trailing ``/`` is
ignored; no route of the method but one of another: 405; none at all: 404. The table
looks only at the routes that can fit a path's number of segments, and must find
exactly what trying every route in order finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opengroup.api.errors import MethodNotAllowed, NoSuchEndpoint
from opengroup.api.paths import PathTable, pattern_of
from opengroup.api.routes import ROUTES as V2_ROUTES
from opengroup.api.v3.routes import ROUTES as V3_ROUTES


@dataclass(frozen=True)
class Plain:
    method: str
    path: str


# Neither API has a {name:path} route today; this table has, between others.
REST = [
    Plain("GET", "/files/{name}"),
    Plain("GET", "/files/{rest:path}"),
    Plain("POST", "/files/{name}/x"),
    Plain("GET", "/{a}/{b}"),
    Plain("PUT", "/{rest:path}"),
]
TABLES: dict[str, list[Any]] = {"v2": list(V2_ROUTES), "v3": list(V3_ROUTES), "rest": REST}


def every_route_in_order(routes: list[Any], method: str, path: str) -> tuple[Any, Any]:
    """The plain rule: try each route in table order."""
    path = "/" + path.strip("/")
    allowed = False
    for route in routes:
        found = pattern_of(route.path).match(path)
        if found is None:
            continue
        if route.method == method:
            return route, found.groupdict()
        allowed = True
    return (MethodNotAllowed if allowed else NoSuchEndpoint), None


def outcome(table: PathTable[Any], method: str, path: str) -> tuple[Any, Any]:
    try:
        return table.match(method, path)
    except (MethodNotAllowed, NoSuchEndpoint) as exc:
        return type(exc), None


def segments(routes: list[Any]) -> list[str]:
    words = {part for route in routes for part in route.path.split("/") if "{" not in part}
    return sorted(words | {"lobby", "5", "x.jpg", "", "files", "x"})


@pytest.mark.parametrize("name", TABLES)
def test_every_route_is_found_by_its_own_path(name: str) -> None:
    routes = TABLES[name]
    table: PathTable[Any] = PathTable(routes)
    for route in routes:
        path = route.path.replace("{rest:path}", "a/b").replace("{", "").replace("}", "")
        path = "/".join(part.split(":")[0] for part in path.split("/"))
        assert outcome(table, route.method, path) == every_route_in_order(
            routes, route.method, path
        )


@pytest.mark.parametrize("name", TABLES)
@given(data=st.data())
def test_any_path_finds_what_trying_every_route_finds(name: str, data: st.DataObject) -> None:
    routes = TABLES[name]
    table: PathTable[Any] = PathTable(routes)
    parts = data.draw(st.lists(st.sampled_from(segments(routes)), min_size=0, max_size=8))
    method = data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    path = "/" + "/".join(parts) + data.draw(st.sampled_from(["", "/"]))
    assert outcome(table, method, path) == every_route_in_order(routes, method, path)
