"""A TCP echo client: send each message as a line, print the echo.

    python examples/echo_client.py --port 8007 hello world
    printf 'a\\nb\\n' | python examples/echo_client.py --port 8007

Messages come from the command line, or from standard input when none are
given (read in a worker thread, so the loop never blocks on the terminal).
Each line is printed as it comes back. ``--timeout`` bounds the whole run.
"""

from __future__ import annotations

import argparse
import sys

import yieldio


async def main(host: str, port: int, messages: list[str] | None, timeout: float) -> int:
    with yieldio.fail_after(timeout):
        async with await yieldio.open_tcp_stream(host, port) as stream:
            while True:
                if messages is not None:
                    if not messages:
                        break
                    line = messages.pop(0) + "\n"
                else:
                    line = await yieldio.to_thread(sys.stdin.readline)
                    if not line:
                        break
                    if not line.endswith("\n"):
                        line += "\n"
                await stream.write(line.encode())
                reply = await stream.readline()
                if not reply:
                    print("server closed the connection", file=sys.stderr)
                    return 1
                print(reply.decode().rstrip("\n"), flush=True)
    return 0


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("messages", nargs="*")
    args = parser.parse_args()
    try:
        code = yieldio.run(main, args.host, args.port, args.messages or None, args.timeout)
    # TimeoutError is a subclass of OSError, so it must be caught first:
    # otherwise the OSError clause would swallow the timeout too.
    except TimeoutError:
        print(f"no answer within {args.timeout} s", file=sys.stderr)
        code = 1
    except OSError as exc:
        print(f"cannot talk to {args.host}:{args.port}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    cli()
