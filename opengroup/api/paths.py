"""Finding the route of a request: one path table, used by both APIs' routers.

Paths are written ``/room/{token}/message/{message_id}``: ``{name}`` matches
one path segment and ``{name:path}`` the rest of the path. Paths without a
parameter are found by a dictionary lookup before any pattern is tried (the
v2 hot paths are such). A trailing ``/`` is ignored.
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

    def match(self, method: str, path: str) -> tuple[R, dict[str, str]]:
        """The route and its path parameters: 404 if no route has the path, 405 if
        only routes of other methods do."""
        path = "/" + path.strip("/")
        fixed = self._fixed.get((method, path))
        if fixed is not None:
            return fixed, {}
        allowed = False
        for route, pattern in self._patterns:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed = True
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        raise NoSuchEndpoint(f"no such endpoint: {path}")

    def knows(self, method: str, path: str) -> bool:
        """Whether a route of this method has the path."""
        try:
            self.match(method, path)
        except (NoSuchEndpoint, MethodNotAllowed):
            return False
        return True
