"""A TCP proxy: forward every connection to a target, both ways, byte for byte.

    python examples/tcp_proxy.py --port 9000 --target 127.0.0.1:8007

The first line printed is ``listening on HOST:PORT``. For each client the
proxy opens a connection to the target and runs two pumps, one per
direction. When one side finishes sending, the pump half-closes the other
side (``send_eof``) instead of closing it, so request/response protocols
that rely on half-close (``nc -N``, HTTP/1.0 clients) still work. When
either side fails, the task group cancels the other pump and both
connections are closed.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yieldio

log = logging.getLogger("tcp_proxy")


async def pump(src: yieldio.Stream, dst: yieldio.Stream) -> int:
    """Copy ``src`` to ``dst`` until EOF, then half-close ``dst``; return the byte count."""
    total = 0
    async for chunk in src:
        await dst.write(chunk)
        total += len(chunk)
    await dst.send_eof()
    return total


def make_handler(target_host: str, target_port: int):
    async def handle(client: yieldio.Stream) -> None:
        peer = client.get_extra_info("peername")
        try:
            upstream = await yieldio.open_tcp_stream(target_host, target_port)
        except OSError as exc:
            log.warning("%s: cannot reach %s:%d: %s", peer, target_host, target_port, exc)
            return
        async with upstream:
            async with yieldio.TaskGroup() as tg:
                up = tg.spawn(pump, client, upstream)
                down = tg.spawn(pump, upstream, client)
        log.info("%s: %d bytes up, %d bytes down", peer, up.result(), down.result())

    return handle


async def main(host: str, port: int, target_host: str, target_port: int) -> None:
    handler = make_handler(target_host, target_port)
    async with yieldio.serve_tcp(handler, host, port) as server:
        print(f"listening on {host}:{server.port}", flush=True)
        await server.serve_forever()


def parse_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, so a typo is a usage error (exit 2), not a traceback."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {port}")
    return port


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=9000)
    parser.add_argument("--target", type=parse_target, required=True, help="HOST:PORT")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr)
    try:
        yieldio.run(main, args.host, args.port, *args.target)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except OSError as exc:
        # Most often the port is taken ("Address already in use") or the
        # host is not an address of this machine: one line, not a traceback.
        print(f"cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
