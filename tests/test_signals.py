"""open_signal_receiver with real signals: from the task, from threads, in child programs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import yieldio
import yieldio.subprocess as ysp
from yieldio.signals import SignalReceiver

PY = sys.executable
USR1, USR2 = signal.SIGUSR1, signal.SIGUSR2


@pytest.fixture(autouse=True)
def handlers_restored():
    before = {s: signal.getsignal(s) for s in (USR1, USR2, signal.SIGINT, signal.SIGTERM)}
    yield
    after = {s: signal.getsignal(s) for s in before}
    assert after == before


def _kernel():
    from yieldio import _state

    return _state.current_kernel()


def test_receive_a_signal_sent_by_the_task_itself():
    async def main():
        with yieldio.open_signal_receiver(USR1) as signals:
            assert isinstance(signals, SignalReceiver) and signals.signals == (USR1,)
            os.kill(os.getpid(), USR1)
            return await signals.receive()

    assert yieldio.run(main) == USR1


def test_async_for_with_signals_from_a_thread_is_not_a_deadlock():
    # main's only wait is on the receiver: the park must be counted as
    # external, or run() would report a deadlock.
    def sender():
        for sig in (USR1, USR2, USR1):
            time.sleep(0.05)
            os.kill(os.getpid(), sig)

    async def main():
        got = []
        with yieldio.open_signal_receiver(USR1, USR2) as signals:
            threading.Thread(target=sender, daemon=True).start()
            async for signum in signals:
                got.append(signum)
                if len(got) == 3:
                    break
        assert _kernel().external_parks == 0
        return got

    assert yieldio.run(main) == [USR1, USR2, USR1]


def test_signal_sent_from_to_thread():
    async def main():
        with yieldio.open_signal_receiver(USR2) as signals:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(yieldio.to_thread, os.kill, os.getpid(), USR2)
                return await signals.receive()

    assert yieldio.run(main) == USR2


def test_signal_handled_by_another_thread_wakes_the_loop_even_without_kernel_wakeup_fd():
    # With a custom SIGINT handler the kernel does not install set_wakeup_fd;
    # pthread_kill makes the C-level handler run in the worker thread, so the
    # main thread's epoll wait is not interrupted: only the wakeup fd that the
    # receiver installs can wake it.
    def custom(signum, frame):
        pass

    old = signal.signal(signal.SIGINT, custom)
    try:
        def worker():
            time.sleep(0.1)
            signal.pthread_kill(threading.get_ident(), USR1)

        watchdog_fired = []

        async def main():
            k = _kernel()
            assert k._old_wakeup_fd is None  # the kernel did not install it

            def poke():  # if the wakeup fd failed, this is what would wake the loop
                watchdog_fired.append(True)
                k.call_soon_threadsafe(lambda: None)

            watchdog = threading.Timer(10, poke)
            watchdog.daemon = True
            with yieldio.open_signal_receiver(USR1) as signals:
                threading.Thread(target=worker, daemon=True).start()
                watchdog.start()
                try:
                    return await signals.receive()
                finally:
                    watchdog.cancel()

        assert yieldio.run(main) == USR1
        assert watchdog_fired == []
        assert signal.set_wakeup_fd(-1) == -1  # restored to "none"
    finally:
        signal.signal(signal.SIGINT, old)


def test_duplicates_coalesce_and_order_is_first_arrival():
    async def main():
        with yieldio.open_signal_receiver(USR1, USR2) as signals:
            for sig in (USR2, USR1, USR2, USR1, USR1):
                os.kill(os.getpid(), sig)
            await yieldio.sleep(0.01)
            assert signals.pending() == [USR2, USR1]
            got = [await signals.receive(), await signals.receive()]
            with yieldio.move_on_after(0.05) as scope:
                await signals.receive()
            assert scope.cancelled_caught  # nothing more: duplicates were merged
            os.kill(os.getpid(), USR2)
            got.append(await signals.receive())  # a new one after delivery is kept
            return got

    assert yieldio.run(main) == [USR2, USR1, USR2]


def test_previous_handlers_are_restored_and_get_pending_signals():
    seen = []

    def previous(signum, frame):
        seen.append(signum)

    old = signal.signal(USR1, previous)
    try:
        async def main():
            with yieldio.open_signal_receiver(USR1) as signals:
                assert signal.getsignal(USR1) is not previous
                os.kill(os.getpid(), USR1)
                await yieldio.sleep(0.01)
                assert signals.pending() == [USR1]
                assert seen == []
            # Left with a signal pending: it was re-delivered, not lost.
            assert signal.getsignal(USR1) is previous
            await yieldio.sleep(0)

        yieldio.run(main)
        assert seen == [USR1]
    finally:
        signal.signal(USR1, old)


def test_receivers_nest():
    async def main():
        with yieldio.open_signal_receiver(USR1, USR2) as outer:
            with yieldio.open_signal_receiver(USR1) as inner:
                os.kill(os.getpid(), USR1)
                assert await inner.receive() == USR1
            os.kill(os.getpid(), USR1)
            assert await outer.receive() == USR1
            assert inner.pending() == []

    yieldio.run(main)


def test_receivers_in_two_tasks_may_close_in_any_order():
    # A opens, B opens, A closes first: B must keep receiving (not a default
    # action that kills the process), and only B's close restores the handler
    # that was there before both -- to which a signal pending in B then goes.
    seen = []

    def previous(signum, frame):
        seen.append(signum)

    old = signal.signal(USR1, previous)
    try:
        async def holder(opened, leave, got):
            with yieldio.open_signal_receiver(USR1) as signals:
                opened.set()
                await leave.wait()
                got.extend(signals.pending())

        async def main():
            a_open, a_leave, b_open, b_leave = (yieldio.Event() for _ in range(4))
            a_got, b_got = [], []
            async with yieldio.TaskGroup() as tg:
                tg.spawn(holder, a_open, a_leave, a_got)
                await a_open.wait()
                tg.spawn(holder, b_open, b_leave, b_got)
                await b_open.wait()
                a_leave.set()
                await yieldio.sleep(0.01)
                assert signal.getsignal(USR1) is not previous
                os.kill(os.getpid(), USR1)  # A is gone: B, the newest left, gets it
                await yieldio.sleep(0.01)
                b_leave.set()
            # B's pending signal was re-delivered to the restored handler.
            assert (a_got, b_got, seen) == ([], [USR1], [USR1])
            assert signal.getsignal(USR1) is previous
            os.kill(os.getpid(), USR1)
            await yieldio.sleep(0.01)
            assert seen == [USR1, USR1]

        yieldio.run(main)
    finally:
        signal.signal(USR1, old)


def test_cancelling_receive_leaves_counters_clean():
    async def main():
        with yieldio.open_signal_receiver(USR1) as signals:
            with yieldio.move_on_after(0.02) as scope:
                await signals.receive()
            assert scope.cancelled_caught
            assert _kernel().external_parks == 0
            os.kill(os.getpid(), USR1)
            return await signals.receive()

    assert yieldio.run(main) == USR1


def test_second_concurrent_receiver_is_busy():
    async def main():
        with yieldio.open_signal_receiver(USR1) as signals:
            async with yieldio.TaskGroup() as tg:
                t = tg.spawn(signals.receive)
                await yieldio.sleep(0.01)
                with pytest.raises(yieldio.BusyResourceError):
                    await signals.receive()
                os.kill(os.getpid(), USR1)
            return t.result()

    assert yieldio.run(main) == USR1


def test_leaving_the_block_ends_iteration_of_a_waiting_task():
    async def main():
        got = []

        async def consume(signals):
            async for signum in signals:
                got.append(signum)
            got.append("ended")

        async with yieldio.TaskGroup() as tg:
            with yieldio.open_signal_receiver(USR1) as signals:
                tg.spawn(consume, signals)
                await yieldio.sleep(0.01)
                os.kill(os.getpid(), USR1)
                await yieldio.sleep(0.01)
        with pytest.raises(yieldio.ClosedResourceError):
            await signals.receive()
        assert "closed" in repr(signals)
        return got

    assert yieldio.run(main) == [USR1, "ended"]


def test_bad_arguments_and_uncatchable_signals():
    async def main():
        with pytest.raises(TypeError, match="at least one"):
            with yieldio.open_signal_receiver():
                pass
        with pytest.raises(ValueError):
            with yieldio.open_signal_receiver(10_000):
                pass
        with pytest.raises(TypeError):
            with yieldio.open_signal_receiver("SIGUSR1"):  # type: ignore[arg-type]
                pass
        with pytest.raises(OSError):
            with yieldio.open_signal_receiver(USR1, signal.SIGKILL):
                pass
        # USR1's handler was installed before SIGKILL failed; the fixture
        # checks it was restored.

    yieldio.run(main)


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(signal, "SIGRTMIN"), reason="no real-time signals")
def test_real_time_signals_can_be_received():
    # SIGRTMIN+1 is as valid as SIGUSR1 (signal.signal and trio accept it),
    # but only SIGRTMIN and SIGRTMAX are members of signal.Signals: checking
    # the number against that enum refused every real-time signal in between
    # with "35 is not a valid signal number", and repr() of a receiver for one
    # would have crashed the same way.
    rt1 = signal.SIGRTMIN + 1
    rt2 = signal.SIGRTMAX - 1
    before = (signal.getsignal(rt1), signal.getsignal(rt2))

    async def main():
        with yieldio.open_signal_receiver(rt1, rt2) as signals:
            assert signals.signals == (rt1, rt2)
            assert "SIGRTMIN+1" in repr(signals)
            os.kill(os.getpid(), rt2)
            os.kill(os.getpid(), rt1)
            with yieldio.fail_after(2):
                assert await signals.receive() == rt2
                assert await signals.receive() == rt1

    yieldio.run(main)
    assert (signal.getsignal(rt1), signal.getsignal(rt2)) == before


def test_invalid_signal_numbers_are_still_a_clear_value_error():
    async def main():
        for bad in (0, -1, signal.NSIG, 1000):
            with pytest.raises(ValueError, match="not a valid signal number"):
                with yieldio.open_signal_receiver(bad):
                    pass

    yieldio.run(main)


def test_outside_run_and_outside_the_main_thread_raise_runtime_error():
    with pytest.raises(RuntimeError, match="inside yieldio.run"):
        with yieldio.open_signal_receiver(USR1):
            pass

    async def main():
        with pytest.raises(RuntimeError, match="main thread"):
            with yieldio.open_signal_receiver(USR1):
                pass
        return "checked"

    result = []
    t = threading.Thread(target=lambda: result.append(yieldio.run(main)))
    t.start()
    t.join()
    assert result == ["checked"]


def test_sigint_receiver_replaces_ctrl_c_for_its_duration():
    async def main():
        with yieldio.open_signal_receiver(signal.SIGINT) as signals:
            os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt
            got = await signals.receive()
        return got

    assert yieldio.run(main) == signal.SIGINT


def test_a_waiting_receiver_is_described_for_debugging():
    from yieldio.debug import describe_wait

    async def main():
        with yieldio.open_signal_receiver(USR1, USR2) as signals:
            async with yieldio.TaskGroup() as tg:
                t = tg.spawn(signals.receive)
                await yieldio.sleep(0.01)
                description = describe_wait(t)
                os.kill(os.getpid(), USR2)
            return description, t.result()

    description, got = yieldio.run(main)
    assert "signal receiver (SIGUSR1, SIGUSR2)" in description and got == USR2


def test_cancelled_receive_with_a_signal_pending_does_not_consume_it():
    async def main():
        with yieldio.open_signal_receiver(USR1) as signals:
            os.kill(os.getpid(), USR1)
            with yieldio.CancelScope() as scope:
                scope.cancel()
                await signals.receive()
            assert scope.cancelled_caught
            assert signals.pending() == [USR1]
            return await signals.receive()

    assert yieldio.run(main) == USR1


def test_iterating_a_closed_receiver_ends_at_once():
    async def main():
        with yieldio.open_signal_receiver(USR1) as signals:
            pass
        return [signum async for signum in signals]

    assert yieldio.run(main) == []


def test_receiver_used_outside_its_run_raises_runtime_error():
    # From another run (in a thread) the wakeup would go to the wrong loop,
    # which then stepped the other run's task on the main thread.
    async def other_run(signals):
        with yieldio.move_on_after(2):
            with pytest.raises(RuntimeError, match="another yieldio.run"):
                await signals.receive()
            return "checked"
        return "parked in the wrong run"

    async def main():
        with yieldio.open_signal_receiver(USR1) as signals:
            assert await yieldio.to_thread(yieldio.run, other_run, signals) == "checked"
            assert _kernel().passive_parks == 0
            os.kill(os.getpid(), USR1)
            assert await signals.receive() == USR1  # still works in its own run
        return signals

    signals = yieldio.run(main)
    coro = signals.receive()
    with pytest.raises(RuntimeError, match="yieldio.run"):
        coro.send(None)


# -- whole programs --------------------------------------------------------------

SELF_TERM = textwrap.dedent("""
    import os, signal, yieldio

    async def main():
        with yieldio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
            os.kill(os.getpid(), signal.SIGHUP)
            os.kill(os.getpid(), signal.SIGTERM)
            async for signum in signals:
                print("got", signal.Signals(signum).name, flush=True)
                if signum == signal.SIGTERM:
                    break
        print("default restored", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
              flush=True)
        os.kill(os.getpid(), signal.SIGTERM)   # no receiver now: the process dies
        await yieldio.sleep(5)
        print("still alive?!")

    yieldio.run(main)
""")


def test_program_that_sends_itself_sigterm():
    async def main():
        return await ysp.run([PY, "-c", SELF_TERM], capture_output=True, timeout=30)

    done = yieldio.run(main)
    assert done.stdout.decode().splitlines() == ["got SIGHUP", "got SIGTERM",
                                                 "default restored True"], done.stderr
    assert done.returncode == -signal.SIGTERM


GRACEFUL = textwrap.dedent("""
    import signal, yieldio

    async def worker():
        try:
            await yieldio.sleep_forever()
        finally:
            print("worker cleaned up", flush=True)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(worker)
            with yieldio.open_signal_receiver(signal.SIGTERM) as signals:
                print("ready", flush=True)
                async for signum in signals:
                    print("shutting down on", signal.Signals(signum).name, flush=True)
                    tg.cancel()
                    break
        return 0

    raise SystemExit(yieldio.run(main))
""")


def test_yieldio_program_shuts_down_gracefully_on_sigterm():
    proc = subprocess.Popen([PY, "-c", GRACEFUL], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines() == ["shutting down on SIGTERM", "worker cleaned up"]
