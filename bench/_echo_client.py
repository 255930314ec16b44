"""Python fallback for bench/echo_client.c (used when no C compiler is present).

    python bench/_echo_client.py HOST PORT CONNS SIZE DURATION [tls]

Same behaviour and output as the C client: CONNS connections, each sending
SIZE bytes and waiting for the full echo, repeatedly, for DURATION seconds;
prints {"requests", "seconds", "errors", "conns", "size", "tls"} as one JSON
line. It is written as a plain ``selectors`` loop, so it costs about as much
per round trip as the fastest Python servers: with it, results for fast
runtimes (uvloop, floor) are bounded by the client. The runner notes which
client was used.
"""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import sys
import time


def main(argv: list[str]) -> int:
    host, port, nconns, size, duration = (
        argv[0],
        int(argv[1]),
        int(argv[2]),
        int(argv[3]),
        float(argv[4]),
    )
    tls = len(argv) > 5 and argv[5] == "tls"
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    msg = (b"abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, list[int]] = {}  # sock -> [sent, recvd]
    for _ in range(nconns):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname=host)
        s.setblocking(False)
        state[s] = [0, 0]
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    want_exc = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
    requests = errors = 0

    def kill(s: socket.socket) -> None:
        nonlocal errors
        errors += 1
        sel.unregister(s)
        del state[s]
        s.close()

    def pump_out(s: socket.socket, st: list[int]) -> bool:
        while st[0] < size:
            try:
                n = s.send(msg[st[0] :])
            except want_exc:
                break
            except OSError:
                kill(s)
                return False
            st[0] += n
        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if st[0] < size else 0))
        return True

    t0 = time.perf_counter()
    tend = t0 + duration
    while state:
        t = time.perf_counter()
        if t >= tend:
            break
        for key, _ in sel.select(tend - t):
            s = key.fileobj
            st = state.get(s)
            if st is None:
                continue
            if st[0] < size and not pump_out(s, st):
                continue
            while True:
                try:
                    data = s.recv(65536)
                except want_exc:
                    break
                except OSError:
                    data = b""
                if not data:
                    kill(s)
                    break
                st[1] += len(data)
                if st[1] >= size:
                    requests += 1
                    st[1] -= size
                    st[0] = 0
                    if not pump_out(s, st):
                        break
    t1 = time.perf_counter()
    print(
        json.dumps(
            {
                "requests": requests,
                "seconds": t1 - t0,
                "errors": errors,
                "conns": nconns,
                "size": size,
                "tls": int(tls),
            }
        )
    )
    return 1 if errors == nconns else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
