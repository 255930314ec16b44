"""Check which TCP ports of a host accept connections, many at a time.

    python examples/port_checker.py --host 127.0.0.1 --ports 8000-8010,9000
    python examples/port_checker.py --ports 1-1024 --concurrency 200 --timeout 0.5

Prints one line per open port (``PORT open``) in port order, then a summary
line (``N open, M closed, K timed out``); a host name that cannot be
resolved is reported on stderr instead. A semaphore bounds how many
connection attempts run at once; ``fail_after`` bounds each one, so a port
behind a firewall that drops packets costs ``--timeout`` seconds, not
minutes. Exit status: 0 if at least one port is open, else 1.
"""

from __future__ import annotations

import argparse
import socket
import sys

import yieldio
import yieldio.socket


def parse_ports(text: str) -> list[int]:
    ports: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        lo, hi = int(first), int(last) if sep else int(first)
        if not (1 <= lo <= hi <= 65535):
            raise argparse.ArgumentTypeError(f"bad port range {part!r}")
        ports.update(range(lo, hi + 1))
    return sorted(ports)


async def check(host: str, port: int, timeout: float, limit: yieldio.Semaphore,
                results: dict[int, str]) -> None:
    async with limit:
        try:
            with yieldio.fail_after(timeout):
                stream = await yieldio.open_tcp_stream(host, port)
        except TimeoutError:
            results[port] = "timed out"
        except OSError:
            results[port] = "closed"
        else:
            await stream.aclose()
            results[port] = "open"


async def main(host: str, ports: list[int], timeout: float, concurrency: int) -> int:
    # Look the name up once, first. An unknown host would otherwise make every
    # connection attempt fail with socket.gaierror -- an OSError, so each port
    # would be counted as "closed", which says the host answered.
    try:
        await yieldio.socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        print(f"cannot resolve {host}: {exc.strerror}", file=sys.stderr)
        return 1
    limit = yieldio.Semaphore(concurrency)
    results: dict[int, str] = {}
    async with yieldio.TaskGroup() as tg:
        for port in ports:
            tg.spawn(check, host, port, timeout, limit, results)
    for port in sorted(results):
        if results[port] == "open":
            print(f"{port} open")
    states = list(results.values())
    print(f"{states.count('open')} open, {states.count('closed')} closed, "
          f"{states.count('timed out')} timed out", flush=True)
    return 0 if "open" in states else 1


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", type=parse_ports, required=True,
                        help="e.g. 22,80,8000-8100")
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    sys.exit(yieldio.run(main, args.host, args.ports, args.timeout, args.concurrency))


if __name__ == "__main__":
    cli()
