"""Finding the route of a request: one path table, used by both APIs' routers.

Paths are written ``/room/{token}/message/{message_id}``: ``{name}`` matches
one path segment and ``{name:path}`` the rest of the path. Paths without a
parameter are found by a dictionary lookup before any pattern is tried (the
v2 hot paths are such); then only the patterns of the method that can fit the
path's number of segments are tried, in table order. A trailing ``/`` is
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from opengroup.api.errors import MethodNotAllowed, NoSuchEndpoint

_PARAM_RE = re.compile(r"\{(\w+)(:path)?\}")


class Routed(Protocol):
    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...


R = TypeVar("R", bound=Routed)


def pattern_of(path: str) -> re.Pattern[str]:
    def group(found: re.Match[str]) -> str:
        return f"(?P<{found[1]}>.+)" if found[2] else f"(?P<{found[1]}>[^/]+)"

    return re.compile("^" + _PARAM_RE.sub(group, path) + "$")


class PathTable(Generic[R]):
    """The routes of one API, by method and path."""

    def __init__(self, routes: Sequence[R]) -> None:
        self.routes = list(routes)
        self._patterns = [(route, pattern_of(route.path)) for route in routes]
        self._fixed = {(r.method, r.path): r for r in routes if "{" not in r.path}
        self._methods = {r.method for r in routes}
        # A path of more segments than any route without {name:path} has: one key.
        self._most_slashes = max((r.path.count("/") for r in routes), default=0) + 1
        # (method, slashes in the path) -> the patterns that can match such a path, in
        # table order: a {name} is one segment, so only a {name:path} route matches a
        # path with a number of segments other than its own.
        self._candidates: dict[tuple[str, int], list[tuple[R, re.Pattern[str]]]] = {}

    def match(self, method: str, path: str) -> tuple[R, dict[str, str]]:
        """The route and its path parameters: 404 if no route has the path, 405 if
        only routes of other methods do."""
        path = "/" + path.strip("/")
        fixed = self._fixed.get((method, path))
        if fixed is not None:
            return fixed, {}
        for route, pattern in self._candidates_for(method, path.count("/")):
            found = pattern.match(path)
            if found is not None:
                return route, found.groupdict()
        if any(pattern.match(path) for _route, pattern in self._patterns):
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        raise NoSuchEndpoint(f"no such endpoint: {path}")

    def _candidates_for(self, method: str, slashes: int) -> list[tuple[R, re.Pattern[str]]]:
        if method not in self._methods:
            return []
        key = (method, min(slashes, self._most_slashes))
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = self._candidates[key] = [
                (route, pattern)
                for route, pattern in self._patterns
                if route.method == method
                and (":path}" in route.path or route.path.count("/") == key[1])
            ]
        return candidates

    def knows(self, method: str, path: str) -> bool:
        """Whether a route of this method has the path."""
        try:
            self.match(method, path)
        except (NoSuchEndpoint, MethodNotAllowed):
            return False
        return True
