"""Router: dispatch requests by method and path, with ``{param}`` segments.

::

    router = Router()

    @router.get("/items/{item_id}")
    async def get_item(request):
        return Response.json({"id": request.path_params["item_id"]})

    @router.route("/items", methods=["GET", "POST"])
    async def items(request): ...

    router.mount("/legacy", wsgi(flask_app))     # everything under /legacy

    async with serve(router, "127.0.0.1", 8000): ...

A path that matches no route gets ``404 Not Found``; a path that matches
with another method gets ``405 Method Not Allowed`` with an ``Allow``
header. Both are *raised*, as :class:`HTTPException` (the ``Allow`` value in
its ``headers``), not returned: the server turns them into responses, through
``serve(..., error_handler=fn)`` if you gave one. ``HEAD`` is served by the ``GET`` handler (the server drops the
body). ``{name}`` matches one non-empty segment; ``{name:path}`` matches the
rest of the path, slashes included. Static routes are found with one dict
lookup; routes with parameters are tried in the order they were added.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable

from ._errors import HTTPException
from ._request import Request
from ._response import Response

__all__ = ["Router"]

#: A route handler; WebSocket handlers may return None (what they return after
#: ``accept_websocket()`` is ignored).
Handler = Callable[[Request], Awaitable[Response | None]]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


def _compile(path: str) -> re.Pattern[str] | None:
    """A regex for a path with parameters; None for a static path."""
    if not path.startswith("/"):
        raise ValueError(f"a route path starts with '/', not {path!r}")
    if "{" not in path:
        return None
    out = []
    pos = 0
    names = set()
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[pos:m.start()]))
        name, kind = m.group(1), m.group(2)
        if name in names:
            raise ValueError(f"parameter {name!r} appears twice in {path!r}")
        names.add(name)
        out.append(f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)")
        pos = m.end()
    rest = path[pos:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"bad parameter syntax in {path!r} (use {{name}} or {{name:path}})")
    out.append(re.escape(rest))
    return re.compile("".join(out) + r"\Z")


class Router:
    """An application that dispatches to handlers by method and path.

    ::

        router = Router()
        router.add("GET", "/", home)

        @router.post("/users/{name}")
        async def create(request):
            return Response.json({"created": request.path_params["name"]}, 201)

    Calling it raises ``HTTPException(404)`` for a path no route or mount
    matches and ``HTTPException(405, headers={"allow": ...})`` for a method
    the path does not have; what a handler raises passes through unchanged.
    """

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Handler]] = {}
        self._dynamic: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._dynamic_index: dict[str, dict[str, Handler]] = {}
        self._mounts: list[tuple[str, Handler]] = []

    def add(self, method: str | Iterable[str], path: str, handler: Handler) -> None:
        """Route ``method`` (or several) on ``path`` to ``handler``."""
        methods = [method] if isinstance(method, str) else list(method)
        if not callable(handler):
            raise TypeError(f"handler must be an async function, not {handler!r}")
        pattern = _compile(path)
        if pattern is None:
            table = self._static.setdefault(path, {})
        else:
            table = self._dynamic_index.get(path)  # type: ignore[assignment]
            if table is None:
                table = self._dynamic_index[path] = {}
                self._dynamic.append((pattern, table))
        for m in methods:
            m = m.upper()
            if m in table:
                raise ValueError(f"{m} {path} is already routed to {table[m]!r}")
            table[m] = handler

    def route(self, path: str, methods: Iterable[str] = ("GET",)) -> Callable[[Handler], Handler]:
        """Decorator: ``@router.route("/x", methods=["GET", "POST"])``."""
        def decorate(handler: Handler) -> Handler:
            self.add(list(methods), path, handler)
            return handler
        return decorate

    def get(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator for ``GET`` (and so ``HEAD``) on ``path``."""
        return self.route(path, ["GET"])

    def post(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator for ``POST`` on ``path``."""
        return self.route(path, ["POST"])

    def put(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator for ``PUT`` on ``path``."""
        return self.route(path, ["PUT"])

    def patch(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator for ``PATCH`` on ``path``."""
        return self.route(path, ["PATCH"])

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator for ``DELETE`` on ``path``."""
        return self.route(path, ["DELETE"])

    def websocket(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator for a WebSocket endpoint (a ``GET`` the handler upgrades).

        ::

            @router.websocket("/ws")
            async def ws_endpoint(request):
                ws = await request.accept_websocket()
                ...
        """
        return self.route(path, ["GET"])

    def mount(self, prefix: str, app: Handler) -> None:
        """Send every request under ``prefix`` (any method) to ``app``.

        The request keeps its full path; ``request.path_params["prefix"]``
        holds the mount point (:func:`wsgi` uses it as ``SCRIPT_NAME``).
        ``mount("/", app)`` catches every path no route matched (its prefix
        is ``""``: an application mounted at the root has an empty
        ``SCRIPT_NAME``).
        """
        if not prefix.startswith("/"):
            raise ValueError(f"a mount prefix starts with '/', not {prefix!r}")
        self._mounts.append((prefix.rstrip("/"), app))

    def _find(self, path: str) -> tuple[dict[str, Handler] | None, dict[str, str]]:
        table = self._static.get(path)
        if table is not None:
            return table, {}
        for pattern, table in self._dynamic:
            m = pattern.match(path)
            if m is not None:
                return table, m.groupdict()
        return None, {}

    async def __call__(self, request: Request) -> Response | None:
        path = request.path
        table, params = self._find(path)
        if table is None:
            for prefix, app in self._mounts:
                if path == prefix or path.startswith(prefix + "/"):
                    request.path_params = {"prefix": prefix}
                    return await app(request)
            raise HTTPException(404)
        method = request.method
        handler = table.get(method)
        if handler is None and method == "HEAD":
            handler = table.get("GET")
        if handler is None:
            allowed = set(table)
            if "GET" in allowed:
                allowed.add("HEAD")
            raise HTTPException(405, headers={"allow": ", ".join(sorted(allowed))})
        if params:
            request.path_params = params
        return await handler(request)
