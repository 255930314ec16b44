"""Context variables: every task behaves as if it ran in its own copy.

The kernel only makes a real copy for tasks spawned from a context that
holds variables; the others share one context until a step sets a variable
in it (see docs/architecture.md, "Contexts"). These tests pin the semantics
users rely on, whichever of the two paths a task takes.
"""

from __future__ import annotations

import contextvars
import threading

import pytest

import yieldio

pytestmark = pytest.mark.timeout(30)

var = contextvars.ContextVar("var", default="unset")
other = contextvars.ContextVar("other", default=0)


def run_clean(main, **kw):
    """Run ``main`` from an empty context (the shared-context path)."""
    return contextvars.Context().run(yieldio.run, main, **kw)


def test_a_set_in_one_task_is_invisible_to_its_siblings():
    seen = {}

    async def setter():
        var.set("mine")
        await yieldio.sleep(0)
        seen["setter"] = var.get()

    async def watcher(name):
        for _ in range(3):
            await yieldio.sleep(0)
        seen[name] = var.get()

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(watcher, "before")
            tg.spawn(setter)
            tg.spawn(watcher, "after")
        seen["main"] = var.get()

    run_clean(main)
    assert seen == {"before": "unset", "setter": "mine", "after": "unset", "main": "unset"}


def test_children_see_what_their_parent_had_set_when_they_were_spawned():
    seen = {}

    async def child(name):
        await yieldio.sleep(0)
        seen[name] = var.get()

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(child, "spawned-before-set")
            var.set("parent")
            tg.spawn(child, "spawned-after-set")
            await yieldio.sleep(0)
            var.set("changed")
            tg.spawn(child, "spawned-after-change")

    run_clean(main)
    assert seen == {"spawned-before-set": "unset", "spawned-after-set": "parent",
                    "spawned-after-change": "changed"}


def test_a_child_set_never_reaches_its_parent():
    async def child():
        var.set("child")
        other.set(1)

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(child)
        return var.get(), other.get()

    assert run_clean(main) == ("unset", 0)


def test_tokens_reset_across_steps():
    async def task():
        token = var.set("temporary")
        await yieldio.sleep(0)
        assert var.get() == "temporary"
        var.reset(token)
        await yieldio.sleep(0)
        return var.get()

    async def main():
        async with yieldio.TaskGroup() as tg:
            t = tg.spawn(task)
            tg.spawn(task)
        return t.result()

    assert run_clean(main) == "unset"


def test_a_task_that_sets_a_variable_and_ends_in_the_same_step_leaks_nothing():
    async def quick():
        var.set("leak?")

    async def reader():
        return var.get()

    async def main():
        async with yieldio.TaskGroup() as tg:
            for _ in range(5):
                tg.spawn(quick)
        async with yieldio.TaskGroup() as tg:
            r = tg.spawn(reader)
        return r.result(), var.get()

    assert run_clean(main) == ("unset", "unset")


def test_generator_coroutines_and_failures_keep_their_own_context():
    @yieldio.coroutine
    def gen_task():
        var.set("gen")
        yield from yieldio.sleep(0)
        return var.get()

    async def failing():
        var.set("failing")
        raise ValueError("boom")

    async def main():
        async with yieldio.TaskGroup() as tg:
            g = tg.spawn(gen_task)
        with pytest.raises(ExceptionGroup) as info:
            async with yieldio.TaskGroup() as tg:
                tg.spawn(failing)
        return g.result(), type(info.value.exceptions[0]).__name__, var.get()

    assert run_clean(main) == ("gen", "ValueError", "unset")


def test_the_callers_context_is_seen_and_not_changed():
    async def main():
        before = var.get()
        var.set("inside")
        return before

    def outer():
        var.set("caller")
        result = yieldio.run(main)
        return result, var.get()

    assert contextvars.Context().run(outer) == ("caller", "caller")


def test_a_call_from_a_thread_that_sets_a_variable_does_not_leak_into_tasks():
    seen = []

    def on_the_loop():  # run on the kernel thread, outside any task
        var.set("from a thread")
        return threading.get_ident()

    def worker():
        var.set("worker")  # the worker's own copy
        return yieldio.from_thread(on_the_loop)

    async def reader():
        for _ in range(5):
            await yieldio.sleep(0)
            seen.append(var.get())

    async def main():
        async with yieldio.TaskGroup() as tg:
            tg.spawn(reader)
            loop_thread = await yieldio.to_thread(worker)
            tg.spawn(reader)
        seen.append(var.get())
        return loop_thread

    assert run_clean(main) == threading.get_ident()
    assert set(seen) == {"unset"}


def test_seeded_runs_keep_tasks_apart_too():
    async def task(i):
        var.set(i)
        for _ in range(3):
            await yieldio.sleep(0)
        return var.get()

    async def main():
        async with yieldio.TaskGroup() as tg:
            ts = [tg.spawn(task, i) for i in range(20)]
        return [t.result() for t in ts]

    for seed in range(5):
        assert run_clean(main, seed=seed) == list(range(20))
