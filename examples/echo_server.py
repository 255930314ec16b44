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

import yieldio


async def echo(stream: yieldio.Stream) -> None:
    """Write back whatever arrives, until the client closes its side."""
    async for data in stream:
        await stream.write(data)


async def main(host: str, port: int) -> None:
    async with yieldio.serve_tcp(echo, host, port) as server:
        print(f"listening on {host}:{server.port}", flush=True)
        await server.serve_forever()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8007)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        yieldio.run(main, args.host, args.port)
    except KeyboardInterrupt:
        print("stopped", flush=True)


if __name__ == "__main__":
    cli()
