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
Ctrl-C does the same: see ``OWN_SESSION`` below.
"""

from __future__ import annotations

import sys

import yieldio
import yieldio.subprocess as ysp

#: Ctrl-C in a terminal sends SIGINT to every process of the foreground group,
#: children included: each would die on its own, mid-write, and the pumps
#: would report broken pipes. Started in their own session, the children do
#: not see the terminal's SIGINT; only this program does, and the
#: KeyboardInterrupt leaving the ``async with`` kills and reaps them in order.
OWN_SESSION = {"start_new_session": True}


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
                                   stdout=ysp.PIPE, **OWN_SESSION) as generate,
            await ysp.open_process(["grep", "7"], stdin=ysp.PIPE, stdout=ysp.PIPE,
                                   **OWN_SESSION) as transform,
            await ysp.open_process(["wc", "-l"], stdin=ysp.PIPE, stdout=ysp.PIPE,
                                   **OWN_SESSION) as count,
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
    try:
        yieldio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
    except KeyboardInterrupt:
        # The children are already killed and reaped; 130 is the shell's
        # convention for "ended by SIGINT".
        print("interrupted", file=sys.stderr)
        sys.exit(130)
