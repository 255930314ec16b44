"""A line-based chat server: each line a client sends goes to every other client.

    python examples/chat_server.py --port 8008

Connect with ``nc 127.0.0.1 8008`` from a few terminals. The first line
printed is ``listening on HOST:PORT``. Each client is greeted with its name
(``guest1``, ``guest2``...), and everyone else sees ``guest1: <line>``.
Typing ``/name NEW`` renames you.

A slow client must not slow down everyone else, and must not make the server
buffer without limit. So every client has a small outgoing queue, drained by
its own writer task: broadcasting only puts messages on the queues, and a
client whose queue is full is disconnected.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys

import yieldio

#: Messages waiting for one client before we give up on it.
QUEUE_SIZE = 100
#: The longest line we accept.
MAX_LINE = 4096


class Client:
    def __init__(self, stream: yieldio.Stream, name: str) -> None:
        self.stream = stream
        self.name = name
        self.outbox = yieldio.Queue(QUEUE_SIZE)
        self.tasks: yieldio.TaskGroup | None = None

    async def writer(self, room: ChatRoom) -> None:
        """Send what is queued for this client, in order, until the queue closes.

        Everything queued so far goes out in one write. One line per write
        is not enough even for a fast client: a paste of a thousand lines
        reaches the sender's reader in one piece, and it broadcasts line
        after line while each writer is still on its first, so the queues
        would fill and healthy clients be dropped as "too slow".
        """
        try:
            async for message in self.outbox:
                batch = [message]
                while self.outbox.qsize():
                    batch.append(self.outbox.get_nowait())
                await self.stream.write(b"".join(batch))
        except OSError:
            room.leave(self, "connection lost")


class ChatRoom:
    def __init__(self) -> None:
        self.clients: dict[Client, None] = {}
        self.numbers = itertools.count(1)

    def broadcast(self, message: str, sender: Client | None = None) -> None:
        data = message.encode() + b"\n"
        for client in list(self.clients):
            if client is sender:
                continue
            try:
                client.outbox.put_nowait(data)
            except yieldio.QueueFull:
                # Too slow: drop the client rather than the server's memory.
                self.leave(client, "too slow", kick=True)

    def leave(self, client: Client, why: str, kick: bool = False) -> None:
        """Remove ``client``; ``kick`` also stops its tasks (the server then hangs up)."""
        if client not in self.clients:
            return
        del self.clients[client]
        client.outbox.close()  # the writer sends what is queued, then stops
        if kick and client.tasks is not None:
            client.tasks.cancel()
        self.broadcast(f"* {client.name} left ({why})")

    async def handle(self, stream: yieldio.Stream) -> None:
        client = Client(stream, f"guest{next(self.numbers)}")
        self.clients[client] = None
        client.outbox.put_nowait(f"* welcome, you are {client.name}\n".encode())
        self.broadcast(f"* {client.name} joined", sender=client)
        try:
            async with yieldio.TaskGroup() as tasks:
                client.tasks = tasks
                tasks.spawn(client.writer, self)
                try:
                    await self.read_lines(client)
                except OSError:
                    self.leave(client, "connection lost")
        finally:
            self.leave(client, "disconnected")

    async def read_lines(self, client: Client) -> None:
        while client in self.clients:
            try:
                raw = await client.stream.readline(MAX_LINE)
            except ValueError:
                self.leave(client, "line too long")
                return
            if not raw:
                self.leave(client, "quit")
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line.startswith("/name "):
                old, client.name = client.name, line[6:].strip() or client.name
                self.broadcast(f"* {old} is now {client.name}")
            elif line:
                self.broadcast(f"{client.name}: {line}", sender=client)


async def main(host: str, port: int) -> None:
    room = ChatRoom()
    async with yieldio.serve_tcp(room.handle, host, port) as server:
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
    parser.add_argument("--port", type=port_number, default=8008)
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
