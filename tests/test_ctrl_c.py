"""Ctrl-C: a real SIGINT sent to a real child process running yieldio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PROGRAM = textwrap.dedent(
    """
    import sys, yieldio

    async def child(n):
        try:
            await yieldio.sleep_forever()
        except yieldio.Cancelled:
            print("child", n, "cancelled", flush=True)
            raise

    async def main():
        async with yieldio.TaskGroup() as tg:
            for n in range(3):
                tg.spawn(child, n)
            {body}

    try:
        yieldio.run(main)
    except KeyboardInterrupt:
        print("run raised KeyboardInterrupt", flush=True)
        sys.exit(3)
    """
)


def _run_and_interrupt(body: str) -> tuple[int, str, str]:
    return _interrupt(PROGRAM.format(body=body))


def _interrupt(code: str) -> tuple[int, str, str]:
    """Run ``code``, wait for its "ready" line, send SIGINT: (returncode, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", code, "--ready"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", line
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, line + out, err


@pytest.mark.timeout(30)
def test_ctrl_c_while_main_sleeps():
    rc, out, err = _run_and_interrupt('print("ready", flush=True); await yieldio.sleep(60)')
    assert rc == 3, (out, err)
    assert out.count("cancelled") == 3
    assert "run raised KeyboardInterrupt" in out
    assert "Traceback" not in err


@pytest.mark.timeout(30)
def test_ctrl_c_while_main_waits_for_children():
    rc, out, err = _run_and_interrupt('print("ready", flush=True)')
    assert rc == 3, (out, err)
    assert out.count("cancelled") == 3
    assert "Traceback" not in err


@pytest.mark.timeout(30)
def test_ctrl_c_while_main_waits_in_start_cancels_the_starting_child():
    # start() waits for its child to leave the caller's scopes; Ctrl-C is
    # passed on to the child as a cancellation, then raised in main.
    body = """
        async def starting(*, task_status):
            print("ready", flush=True)
            try:
                await yieldio.sleep_forever()
            except yieldio.Cancelled:
                print("starting child cancelled", flush=True)
                raise
        await tg.start(starting)"""
    rc, out, err = _run_and_interrupt(body)
    assert rc == 3, (out, err)
    assert "starting child cancelled" in out
    assert out.count("cancelled") == 4
    assert "run raised KeyboardInterrupt" in out
    assert "Traceback" not in err


@pytest.mark.timeout(30)
def test_ctrl_c_restores_the_default_handler():
    code = textwrap.dedent(
        """
        import signal, yieldio
        async def main():
            return signal.getsignal(signal.SIGINT) is signal.default_int_handler
        inside = yieldio.run(main)
        print(inside, signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=20)
    assert out.stdout.split() == ["False", "True"], out


def test_not_main_thread_leaves_signals_alone():
    import threading

    import yieldio

    result = {}

    def in_thread():
        async def main():
            return signal.getsignal(signal.SIGINT)

        result["handler"] = yieldio.run(main)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert result["handler"] is signal.default_int_handler
    assert os.getpid() > 0


@pytest.mark.timeout(30)
def test_ctrl_c_while_condition_wait_retakes_its_lock():
    # The main task was notified, and now waits (shielded) for the lock that
    # the notifier keeps. Ctrl-C pierces the shield: the KeyboardInterrupt
    # must come out of run(), not a "lock not held" RuntimeError from the
    # `async with cond` exit.
    code = textwrap.dedent(
        """
        import sys, yieldio

        async def main():
            cond = yieldio.Condition()

            async def holder():
                async with cond:
                    cond.notify()
                    print("ready", flush=True)
                    await yieldio.sleep_forever()

            async with yieldio.TaskGroup() as tg:
                async with cond:
                    tg.spawn(holder)
                    try:
                        await cond.wait()
                    except KeyboardInterrupt:
                        print("wait raised KeyboardInterrupt", cond.lock.owner is None,
                              flush=True)
                        raise

        try:
            yieldio.run(main)
        except KeyboardInterrupt:
            print("run raised KeyboardInterrupt", flush=True)
            sys.exit(3)
        """
    )
    rc, out, err = _interrupt(code)
    assert rc == 3, (out, err)
    # The lock is still the holder's when the interrupt leaves wait().
    assert "wait raised KeyboardInterrupt False" in out
    assert "run raised KeyboardInterrupt" in out
    assert "Traceback" not in err
