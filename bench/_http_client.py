"""Minimal HTTP/1.1 keep-alive load client (fallback when ``wrk`` is missing;
also used for the short warm-up run before wrk).

    python bench/_http_client.py HOST PORT PATH CONNS DURATION

CONNS keep-alive connections each send ``GET PATH`` and read the complete
response (headers + Content-Length body) before sending the next one, for
DURATION seconds. Prints one JSON line: {"requests", "seconds", "errors",
"non_2xx"}. Plain ``selectors`` loop; it is slower than wrk and, against the
fastest servers, can be the bottleneck (see ``client_cpu_pct``).
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time


def main(argv: list[str]) -> int:
    host, port, path = argv[0], int(argv[1]), argv[2]
    nconns, duration = int(argv[3]), float(argv[4])
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    bufs: dict[socket.socket, bytearray] = {}
    for _ in range(nconns):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        bufs[s] = bytearray()
        sel.register(s, selectors.EVENT_READ)
        s.send(request)
    requests = errors = non_2xx = 0
    t0 = time.perf_counter()
    tend = t0 + duration
    while bufs:
        t = time.perf_counter()
        if t >= tend:
            break
        for key, _ in sel.select(tend - t):
            s = key.fileobj
            buf = bufs[s]
            try:
                data = s.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                errors += 1
                sel.unregister(s)
                del bufs[s]
                s.close()
                continue
            buf += data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = bytes(buf[:end]).lower()
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                total = end + 4 + length
                if len(buf) < total:
                    break
                if not head.startswith(b"http/1.1 2"):
                    non_2xx += 1
                del buf[:total]
                requests += 1
                s.send(request)
    t1 = time.perf_counter()
    print(
        json.dumps({"requests": requests, "seconds": t1 - t0, "errors": errors, "non_2xx": non_2xx})
    )
    return 0 if requests else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
