"""The I/O part of ``python -m yieldio demo``: an echo server under 1,000 clients."""

from __future__ import annotations

import sys
import time

import yieldio

CLIENTS = 1000
ROUNDS = 20
MESSAGE = b"x" * 64 + b"\n"


async def echo(stream: yieldio.Stream) -> None:
    async for data in stream:
        await stream.write(data)


async def client(port: int, latencies: list[float], progress: list[int]) -> None:
    async with await yieldio.open_tcp_stream("127.0.0.1", port) as stream:
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            await stream.write(MESSAGE)
            await stream.read_exactly(len(MESSAGE))
            latencies.append(time.perf_counter() - t0)
        progress[0] += 1


def _percentile(sorted_values: list[float], q: float) -> float:
    i = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[i]


def _raise_fd_limit(wanted: int) -> None:
    """1,000 clients and their 1,000 server-side peers need ~2,000 descriptors."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


async def net_section() -> None:
    _raise_fd_limit(4 * CLIENTS)
    print("\n7. Real I/O: an echo server on 127.0.0.1 and 1,000 concurrent clients:", flush=True)
    latencies: list[float] = []
    progress = [0]
    peak_tasks = 0
    async with yieldio.serve_tcp(echo, "127.0.0.1", 0, backlog=1024) as server:
        t0 = time.perf_counter()
        async with yieldio.TaskGroup() as tg:
            for _ in range(CLIENTS):
                # (a TCP server always has a port: Server.port is None only for Unix sockets)
                tg.spawn(client, server.port, latencies, progress)  # type: ignore[arg-type, call-arg]

            # Redrawing one line with "\r" only works on a terminal: piped
            # into a file or a pager it became one long line of snapshots.
            live = sys.stdout.isatty()

            async def report() -> None:
                nonlocal peak_tasks
                while progress[0] < CLIENTS:
                    from ._state import current_kernel

                    peak_tasks = max(peak_tasks, len(current_kernel().all_tasks()))
                    if live:
                        sys.stdout.write(f"\r   {progress[0]:4d}/{CLIENTS} clients done, "
                                         f"{len(latencies):6d} round trips")
                        sys.stdout.flush()
                    await yieldio.sleep(0.1)

            tg.spawn(report)
        elapsed = time.perf_counter() - t0
    lat = sorted(latencies)
    back = "\r" if live else ""
    print(f"{back}   {CLIENTS}/{CLIENTS} clients done, {len(lat)} round trips in {elapsed:.2f} s"
          f" = {len(lat) / elapsed:,.0f} round trips/s")
    print(f"   latency p50 {_percentile(lat, 0.5) * 1e3:.2f} ms, p90 "
          f"{_percentile(lat, 0.9) * 1e3:.2f} ms, p99 {_percentile(lat, 0.99) * 1e3:.2f} ms; "
          f"peak {peak_tasks} tasks alive (clients + server handlers)")
