"""echo_tls: the echo benchmark over TLS.

Same servers and metrics as ``bench_echo`` (req/s, server CPU µs per round
trip), each wrapping its listener in TLS the way its documentation shows:
``start_server(ssl=ctx)`` / ``create_server(ssl=ctx)`` for asyncio and
uvloop, ``trio.serve_ssl_over_tcp``, curio's ``run_server(ssl=curio.ssl
context)``, ``yieldio.serve_tcp(ssl=ctx)``. The certificate is a throw-away
localhost one (trustme, else the ``openssl`` command) cached in bench/out/.

The load client is the C client built with OpenSSL (``-DWITH_TLS``); it does
the handshakes before the clock starts, so this measures steady-state
record encryption/decryption plus the runtime's TLS plumbing (asyncio's
SSLProtocol, trio's SSLStream, ...), not handshakes. Without the TLS build
the Python client is used instead. There is no ``floor`` variant.
"""

from __future__ import annotations

from typing import Any

from bench import bench_echo

METRICS = bench_echo.METRICS
BASELINE = "asyncio"


def cases(quick: bool) -> list[dict[str, Any]]:
    """Quick: 10 conns × 1 KiB; full: also 10 KiB and 100 connections."""
    if quick:
        grid = [(10, 1024)]
        duration, warmup = 0.2, 0.05
    else:
        grid = [(10, 1024), (10, 10 * 1024), (100, 1024)]
        duration, warmup = 2.0, 0.5
    return [
        {"conns": c, "size": s, "duration": duration, "warmup": warmup, "tls": True}
        for c, s in grid
    ]


case_label = bench_echo.case_label

RUNTIMES = {
    name: bench_echo.RUNTIMES[name]
    for name in ("asyncio", "asyncio-proto", "uvloop", "uvloop-proto", "trio", "curio", "yieldio")
}
