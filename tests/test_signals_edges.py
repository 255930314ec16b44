"""Edge cases of open_signal_receiver, with real signals (no mocks)."""

from __future__ import annotations

import signal
import sys

import pytest

import yieldio

USR1 = signal.SIGUSR1


@pytest.fixture(autouse=True)
def handlers_restored():
    before = {s: signal.getsignal(s) for s in (USR1, signal.SIGUSR2, signal.SIGINT)}
    yield
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.timeout(10)
def test_block_ending_while_a_receive_is_at_its_checkpoint_raises_closed():
    # A task calls receive() with a signal pending: it takes its checkpoint
    # first. If the block ends before it resumes, the pending signal goes back
    # to the restored handler and the receiver is closed, so receive() must
    # raise ClosedResourceError -- it used to park for ever on the closed
    # receiver, which nothing can wake any more.
    async def main():
        delivered = []
        old = signal.signal(USR1, lambda *a: delivered.append(USR1))
        try:
            outcome = []

            async def reader(signals):
                try:
                    outcome.append(await signals.receive())
                except yieldio.ClosedResourceError:
                    outcome.append("closed")

            async with yieldio.TaskGroup() as tg:
                with yieldio.open_signal_receiver(USR1) as signals:
                    signal.raise_signal(USR1)
                    assert signals.pending() == [USR1]
                    tg.spawn(reader, signals)
                    await yieldio.sleep(0)  # the reader is now at its checkpoint
                    assert outcome == []
                with yieldio.fail_after(2):
                    while not outcome:
                        await yieldio.sleep(0)
            return outcome, delivered
        finally:
            signal.signal(USR1, old)

    outcome, delivered = yieldio.run(main)
    # Delivered once, to the restored handler, and not also returned.
    assert outcome == ["closed"] and delivered == [USR1]


@pytest.mark.timeout(10)
def test_closing_a_receiver_keeps_the_kernel_wakeup_fd_quiet_when_full(monkeypatch):
    # The kernel installs its wakeup socket with warn_on_full_buffer=False: a
    # burst of signals while the loop is busy may fill it, and that is fine
    # (one byte already wakes the loop). Closing a receiver used to re-install
    # it with the default (True), so the same burst then printed "Exception
    # ignored when trying to write to the signal wakeup fd" for every signal.
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_type))

    async def main():
        with yieldio.open_signal_receiver(signal.SIGUSR2):
            pass
        hits = []
        old = signal.signal(USR1, lambda *a: hits.append(1))
        try:
            for _ in range(5000):  # far more bytes than the socket buffer holds
                signal.raise_signal(USR1)
        finally:
            signal.signal(USR1, old)
        return len(hits)

    assert yieldio.run(main) == 5000
    assert unraisable == []


class _HandlerFailed(Exception):
    pass


@pytest.mark.timeout(10)
def test_pending_signals_are_all_redelivered_even_if_a_handler_raises():
    # "Nothing lost at the end": a restored handler that raises (a SIGTERM
    # handler calling sys.exit(), say) must not make the receiver drop the
    # other pending signals. trio delivers them all too.
    async def main():
        seen = []

        def failing(signum, frame):
            seen.append(signum)
            raise _HandlerFailed

        old1 = signal.signal(USR1, failing)
        old2 = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
        try:
            with pytest.raises(_HandlerFailed):
                with yieldio.open_signal_receiver(USR1, signal.SIGUSR2) as signals:
                    signal.raise_signal(USR1)
                    signal.raise_signal(signal.SIGUSR2)
                    assert signals.pending() == [USR1, signal.SIGUSR2]
            assert signals.pending() == []
        finally:
            signal.signal(USR1, old1)
            signal.signal(signal.SIGUSR2, old2)
        return seen

    assert yieldio.run(main) == [USR1, signal.SIGUSR2]


@pytest.mark.timeout(10)
def test_a_worker_thread_of_a_run_is_told_main_thread_only():
    # From to_thread() inside a run, the error used to say "must be used
    # inside yieldio.run()", which the caller was: the thread is the problem.
    def in_worker():
        with pytest.raises(RuntimeError, match="main thread"):
            with yieldio.open_signal_receiver(USR1):
                pass
        return "checked"

    async def main():
        with yieldio.fail_after(5):
            return await yieldio.to_thread(in_worker)

    assert yieldio.run(main) == "checked"


@pytest.mark.timeout(10)
def test_an_old_wakeup_fd_closed_during_the_block_does_not_break_its_end():
    # With a custom SIGINT handler the kernel installs no wakeup fd, and the
    # receiver remembers the program's own. If that socket was closed during
    # the block, restoring it raised OSError from the end of the block, which
    # then skipped closing the receiver and re-delivering its pending signals.
    import socket

    a, b = socket.socketpair()
    a.setblocking(False)
    old_int = signal.signal(signal.SIGINT, lambda *args: None)
    old_fd = signal.set_wakeup_fd(a.fileno())
    delivered = []
    old_usr1 = signal.signal(USR1, lambda *args: delivered.append(USR1))

    async def main():
        with yieldio.open_signal_receiver(USR1) as signals:
            signal.raise_signal(USR1)
            a.close()  # the program's wakeup socket goes away meanwhile
        return signals.pending()

    try:
        assert yieldio.run(main) == []
        assert delivered == [USR1]  # re-delivered to the restored handler
        assert signal.set_wakeup_fd(-1) == -1  # and no stale fd left installed
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(USR1, old_usr1)
        signal.signal(signal.SIGINT, old_int)
        a.close()
        b.close()
