"""A TCP echo server: every byte a client sends comes back.

    python examples/echo_server.py --port 8007 [--host 127.0.0.1]

The first line printed is ``listening on HOST:PORT`` (with the real port
when ``--port 0`` asks the OS to pick one). Ctrl-C stops the server: every
connection is closed and the program exits cleanly. Try it with
``python examples/echo_client.py --port 8007 hello`` or ``nc``.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yieldio


async def echo(stream: yieldio.Stream) -> None:
    """Write back whatever arrives, until the client closes its side."""
    async for data in stream:
        await stream.write(data)


async def main(host: str, port: int) -> None:
    async with yieldio.serve_tcp(echo, host, port) as server:
        print(f"listening on {host}:{server.port}", flush=True)
        await server.serve_forever()


def port_number(text: str) -> int:
    """An argparse type: a TCP port, so a typo is a usage error (exit 2), not a traceback."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {port}")
    return port


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=8007)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        yieldio.run(main, args.host, args.port)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except OSError as exc:
        # Most often the port is taken ("Address already in use") or the
        # host is not an address of this machine: one line, not a traceback.
        print(f"cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
