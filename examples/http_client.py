"""Fetch many URLs concurrently with yieldio.http.Client, at most N at a time.

    python examples/http_client.py --limit 4 http://127.0.0.1:8000/ http://example.org/ ...

Each URL gets its own task; a Semaphore lets at most ``--limit`` of them
fetch at once (the client's pool also reuses kept-alive connections). One
line per URL -- status, size, time -- as each finishes, then a summary. A
failing URL (refused, timed out, bad response) is reported, not fatal; the
exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import time

import yieldio
from yieldio.http import Client, HTTPError


async def fetch(client: Client, url: str, limit: yieldio.Semaphore,
                results: list[tuple[str, int | None, int, str]]) -> None:
    async with limit:  # at most --limit fetches at a time
        t0 = time.perf_counter()
        try:
            response = await client.get(url)
        except (HTTPError, ValueError) as exc:
            results.append((url, None, 0, f"{type(exc).__name__}: {exc}"))
            print(f"ERR  {url}  {type(exc).__name__}: {exc}", flush=True)
            return
        ms = (time.perf_counter() - t0) * 1000
        size = len(response.content)
        results.append((url, response.status, size, ""))
        print(f"{response.status}  {url}  {size} bytes  {ms:.0f} ms", flush=True)


async def main(urls: list[str], limit: int, timeout: float) -> int:
    results: list[tuple[str, int | None, int, str]] = []
    semaphore = yieldio.Semaphore(limit)
    t0 = time.perf_counter()
    async with Client(timeout=timeout, follow_redirects=True) as client:
        async with yieldio.TaskGroup() as tg:
            for url in urls:
                tg.spawn(fetch, client, url, semaphore, results, name=f"fetch {url}")
    failed = sum(1 for _, status, _, _ in results if status is None)
    total = sum(size for _, _, size, _ in results)
    print(f"{len(results)} URLs, {failed} failed, {total} bytes in "
          f"{time.perf_counter() - t0:.2f} s (limit {limit})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--limit", type=int, default=4, help="concurrent fetches (default 4)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    args = parser.parse_args()
    if args.limit < 1:
        # Semaphore(0) would let no fetch start: every task would wait forever.
        parser.error("--limit must be >= 1")
    sys.exit(yieldio.run(main, args.urls, args.limit, args.timeout))
