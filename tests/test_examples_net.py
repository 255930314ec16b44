"""The network examples, run as real programs and driven with stdlib sockets."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 15.0


class Program:
    """A running example: its process, the port it printed, and a way to stop it."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C, as a user would; return (exit status, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"{self.proc.args} did not stop on SIGINT\n{err}")
        return self.proc.returncode, out, err


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail(f"{proc.args} printed nothing within {timeout} s")
    return proc.stdout.readline()


@contextlib.contextmanager
def running(script: str, *args: str) -> Iterator[Program]:
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / script), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1)
    try:
        first = _readline(proc, TIMEOUT)
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", first)
        if match is None:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"unexpected first line {first!r} from {script}\n{err}")
        program = Program(proc, int(match.group(1)))
        yield program
        status, out, err = program.stop()
        assert status == 0, err
        assert "Traceback" not in err, err
        assert out.endswith("stopped\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return s


def recv_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def recv_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


# -- echo -------------------------------------------------------------------------------


def test_echo_server_with_stdlib_clients():
    with running("echo_server.py") as server:
        with connect(server.port) as a, connect(server.port) as b:
            a.sendall(b"from a\n")
            b.sendall(b"from b\n")
            assert recv_line(b) == b"from b\n"
            assert recv_line(a) == b"from a\n"
            payload = os.urandom(300_000)
            a.sendall(payload)
            a.shutdown(socket.SHUT_WR)
            assert recv_all(a) == payload


def test_echo_client_against_the_echo_server():
    with running("echo_server.py") as server:
        done = subprocess.run([sys.executable, str(EXAMPLES / "echo_client.py"),
                               "--port", str(server.port), "hello", "world"],
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "hello\nworld\n"
        done = subprocess.run([sys.executable, str(EXAMPLES / "echo_client.py"),
                               "--port", str(server.port)], input="line 1\nline 2",
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "line 1\nline 2\n"


def test_echo_client_reports_a_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, str(EXAMPLES / "echo_client.py"), "--port",
                           str(port), "x"], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1
    assert "cannot talk to" in done.stderr and "Traceback" not in done.stderr


def test_echo_client_reports_a_server_that_never_answers():
    # The kernel completes the handshake into the backlog; nobody ever
    # accepts, so the client's line is never echoed.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        done = subprocess.run([sys.executable, str(EXAMPLES / "echo_client.py"), "--port",
                               str(silent.getsockname()[1]), "--timeout", "0.5", "x"],
                              capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1
    assert done.stderr == "no answer within 0.5 s\n"


# -- startup errors -----------------------------------------------------------------------------

SERVERS = [("echo_server.py",), ("chat_server.py",),
           ("tcp_proxy.py", "--target", "127.0.0.1:1")]


@pytest.mark.parametrize("script", SERVERS, ids=lambda s: s[0])
def test_server_reports_a_port_in_use_in_one_line(script):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, str(EXAMPLES / script[0]), "--port", str(port),
                               *script[1:]], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"cannot serve on 127.0.0.1:{port}: ")
    assert "Address already in use" in done.stderr


@pytest.mark.parametrize("script", SERVERS, ids=lambda s: s[0])
def test_server_rejects_a_port_out_of_range(script):
    done = subprocess.run([sys.executable, str(EXAMPLES / script[0]), "--port", "70000",
                           *script[1:]], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 2
    assert "port must be 0-65535, not 70000" in done.stderr
    assert "Traceback" not in done.stderr


# -- chat -------------------------------------------------------------------------------------


def test_chat_server_broadcasts_to_the_others():
    with running("chat_server.py") as server:
        with connect(server.port) as one:
            assert recv_line(one) == b"* welcome, you are guest1\n"
            with connect(server.port) as two, connect(server.port) as three:
                assert recv_line(two) == b"* welcome, you are guest2\n"
                assert recv_line(three) == b"* welcome, you are guest3\n"
                assert recv_line(one) == b"* guest2 joined\n"
                assert recv_line(one) == b"* guest3 joined\n"
                assert recv_line(two) == b"* guest3 joined\n"
                one.sendall(b"hello all\r\n")
                assert recv_line(two) == b"guest1: hello all\n"
                assert recv_line(three) == b"guest1: hello all\n"
                two.sendall(b"/name bob\n")
                for s in (one, three):
                    assert recv_line(s) == b"* guest2 is now bob\n"
                two.sendall(b"hi\n")
                assert recv_line(one) == b"bob: hi\n"
                # The sender does not get its own line back: the next thing it
                # sees is what somebody else says.
                three.sendall(b"bye\n")
                assert recv_line(two) == b"* guest2 is now bob\n"
                assert recv_line(two) == b"guest3: bye\n"
            assert recv_line(one).startswith(b"guest3: bye")
            # (Closing with unread data makes a TCP reset, so the reason may be
            # "quit" or "connection lost".)
            left = sorted(recv_line(one).split(b" (")[0] for _ in range(2))
            assert left == [b"* bob left", b"* guest3 left"]


def test_chat_server_keeps_fast_clients_through_a_pasted_burst():
    # One line per write: a client pasting 1000 lines filled every other
    # client's 100-message queue before its writer got going, and healthy
    # readers were dropped as "too slow" after some 80 messages.
    lines = 1000
    with running("chat_server.py") as server:
        with connect(server.port) as one, connect(server.port) as two:
            assert recv_line(one) == b"* welcome, you are guest1\n"
            assert recv_line(two) == b"* welcome, you are guest2\n"
            assert recv_line(one) == b"* guest2 joined\n"
            with connect(server.port) as sender:
                assert recv_line(sender) == b"* welcome, you are guest3\n"
                for s in (one, two):
                    assert recv_line(s) == b"* guest3 joined\n"
                sender.sendall(b"".join(b"msg %d\n" % i for i in range(lines)))
                for s in (one, two):
                    got = [recv_line(s) for _ in range(lines)]
                    assert got == [b"guest3: msg %d\n" % i for i in range(lines)]


# -- proxy -----------------------------------------------------------------------------------------


def test_tcp_proxy_forwards_both_ways_and_half_closes():
    with running("echo_server.py") as echo:
        with running("tcp_proxy.py", "--target", f"127.0.0.1:{echo.port}") as proxy:
            with connect(proxy.port) as s:
                s.sendall(b"through the proxy\n")
                assert recv_line(s) == b"through the proxy\n"
                payload = os.urandom(1 << 20)
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)  # the echo server sees EOF through the proxy
                assert recv_all(s) == payload


def test_tcp_proxy_with_an_unreachable_target_hangs_up():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with running("tcp_proxy.py", "--target", f"127.0.0.1:{port}") as proxy:
        with connect(proxy.port) as s:
            assert recv_all(s) == b""


# -- port checker ------------------------------------------------------------------------------------


def test_port_checker_finds_the_open_ports():
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    try:
        open_ports = sorted(lst.getsockname()[1] for lst in listeners)
        ports = ",".join(str(p) for p in [*open_ports, closed])
        done = subprocess.run([sys.executable, str(EXAMPLES / "port_checker.py"),
                               "--ports", ports, "--timeout", "5"],
                              capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        for lst in listeners:
            lst.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{open_ports[0]} open", f"{open_ports[1]} open",
                                        "2 open, 1 closed, 0 timed out"]


def test_port_checker_rejects_bad_ranges():
    done = subprocess.run([sys.executable, str(EXAMPLES / "port_checker.py"), "--ports",
                           "10-5"], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 2
    assert "bad port range" in done.stderr


def test_port_checker_reports_an_unknown_host():
    # .invalid is reserved (RFC 2606): the lookup fails, offline or not.
    done = subprocess.run([sys.executable, str(EXAMPLES / "port_checker.py"), "--host",
                           "no.such.host.invalid", "--ports", "80,443"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("cannot resolve no.such.host.invalid: ")
    assert done.stderr.count("\n") == 1, done.stderr
