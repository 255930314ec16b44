"""The WebSocket handshake of a server connection: h11 hands the stream to wsproto.

:meth:`Request.accept_websocket` lands here. The handshake request has no
body, but h11 must reach its end; then wsproto checks the handshake, the
101 goes out, and the bytes h11 had buffered beyond the request (frames a
client sent without waiting) are fed to wsproto, so none is lost. The
:class:`WebSocket`'s reader (and keepalive) tasks run in the server's task
group from then on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import h11

from ._errors import HTTPException

if TYPE_CHECKING:
    from ._connection import ServerConnection
    from ._request import Request

__all__ = ["accept_websocket"]


async def accept_websocket(conn: ServerConnection, req: Request, subprotocol: str | None,
                           headers: dict[str, str] | None) -> Any:
    """Do the WebSocket handshake for ``req`` and start the WebSocket's reader."""
    import wsproto
    import wsproto.events as wse
    from wsproto.utilities import RemoteProtocolError as WSRemoteProtocolError

    from ._websocket import WebSocket

    while (await conn.receive_body_chunk()):
        pass  # a handshake has no body, but h11 must reach its end
    if conn.watch is not None:
        # Stopped, not dropped: nothing may start another one, wsproto reads from now on.
        await conn.watch.stop()
    h = conn.h11
    if h.their_state is not h11.MIGHT_SWITCH_PROTOCOL:
        raise HTTPException(400, "expected a WebSocket handshake")
    wsconn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    try:
        wsconn.initiate_upgrade_connection(list(req._raw_headers), req.target)
        offered = [s for e in wsconn.events() if isinstance(e, wse.Request)
                   for s in e.subprotocols]
    except WSRemoteProtocolError as exc:
        hint = exc.event_hint
        status = getattr(hint, "status_code", 400)
        extra = {n.decode("latin-1"): v.decode("latin-1")
                 for n, v in getattr(hint, "headers", [])}
        raise HTTPException(status, f"bad WebSocket handshake: {exc}", extra) from None
    if subprotocol is not None and subprotocol not in offered:
        # Checked before anything is sent (wsproto would raise its own
        # LocalProtocolError from deep inside): an application bug, said plainly.
        raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client "
                         f"(it offered {offered or 'none'}): pick one of those, or None")
    extra_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                     for k, v in (headers or {}).items()]
    data = wsconn.send(wse.AcceptConnection(subprotocol=subprotocol,
                                            extra_headers=extra_headers))
    await conn.stream.write(data)
    connection = wsconn.connection
    assert connection is not None
    trailing, _ = h.trailing_data
    if trailing:
        connection.receive_data(trailing)
    server = conn.server
    limits = server.limits
    ws = WebSocket(conn.stream, connection, client=False,
                   max_message_size=limits.max_websocket_message,
                   subprotocol=subprotocol, path=req.path, headers=req.headers,
                   ping_interval=limits.websocket_ping_interval,
                   ping_timeout=limits.websocket_ping_timeout,
                   write_timeout=limits.write_timeout)
    conn.websocket = ws
    server._tg.spawn(ws._reader, name=f"websocket reader {conn.client}")
    if ws.ping_interval is not None:
        server._tg.spawn(ws._keepalive, name=f"websocket keepalive {conn.client}")
    if server._closing:
        conn.shutdown()
    return ws
