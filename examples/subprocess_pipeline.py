"""A shell-style pipeline -- generate | transform | count -- plumbed by yieldio tasks.

    python examples/subprocess_pipeline.py [N]

Three child processes run concurrently:

* generate:  a Python child printing the numbers 0 .. N-1, one per line;
* transform: ``grep 7``, keeping the lines that contain a 7;
* count:     ``wc -l``, counting them.

Instead of connecting the children directly (as ``sh -c "a | b | c"`` would),
yieldio tasks pump the bytes from each child's stdout into the next child's
stdin, counting as they go. That is where a real program would inspect,
tee or rate-limit the data. Closing a pump's destination gives the next
child its end-of-file, so the whole pipeline drains and exits in order.

A deadline covers everything: if it passes, the pumps are cancelled and
every child is killed and reaped (cancelling a wait kills the child).
"""

from __future__ import annotations

import sys

import yieldio
import yieldio.subprocess as ysp


async def pump(src: yieldio.Stream, dst: yieldio.Stream, counts: dict[str, int],
               name: str) -> None:
    """Copy ``src`` to ``dst`` until EOF, then close ``dst`` (the next stage sees EOF)."""
    total = 0
    async with dst:
        async for chunk in src:
            await dst.write(chunk)
            total += len(chunk)
    counts[name] = total


async def main(n: int) -> int:
    generate_code = f"import sys\nfor i in range({n}): sys.stdout.write(f'{{i}}\\n')"
    counts: dict[str, int] = {}
    with yieldio.fail_after(120):
        async with (
            await ysp.open_process([sys.executable, "-c", generate_code],
                                   stdout=ysp.PIPE) as generate,
            await ysp.open_process(["grep", "7"], stdin=ysp.PIPE, stdout=ysp.PIPE) as transform,
            await ysp.open_process(["wc", "-l"], stdin=ysp.PIPE, stdout=ysp.PIPE) as count,
        ):
            assert generate.stdout and transform.stdin and transform.stdout
            assert count.stdin and count.stdout
            async with yieldio.TaskGroup() as tg:
                tg.spawn(pump, generate.stdout, transform.stdin, counts, "generate -> transform")
                tg.spawn(pump, transform.stdout, count.stdin, counts, "transform -> count")
                result = int(await count.stdout.read_until(b"\n"))
            for proc in (generate, transform, count):
                await proc.wait()
    for name, total in counts.items():
        print(f"pumped {total} bytes {name}")
    statuses = [generate.returncode, transform.returncode, count.returncode]
    print(f"exit statuses: {statuses}")
    print(f"lines containing 7: {result}")
    return result


if __name__ == "__main__":
    yieldio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
