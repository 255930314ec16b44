"""Structural guards on the hot paths (no timing: speed is measured in bench/).

CPython 3.11 compiles ``name.method(...)`` on a name bound by ``import`` as an
attribute load plus a call of a fresh bound method (it assumes the name is a
module), so a dict or class imported from another module and called that way
on a hot path costs an allocation per call. docs/architecture.md §9 has the
measured case (``TaskGroup.spawn``, 19,674 -> 19,178 instructions per task).
"""

from __future__ import annotations

import dis
import sys
import types

import pytest

from yieldio import _cancel, _kernel, _taskgroup
from yieldio.http import _respond
from yieldio.net import _socket_stream

HOT = [
    (_taskgroup, _taskgroup.TaskGroup.spawn),
    (_kernel, _kernel.Kernel._run),
    (_kernel, _kernel.Kernel._task_exited),
    (_kernel, _kernel.Kernel._look_outside),
    (_cancel, _cancel.CancelScope.__enter__),
    (_cancel, _cancel.CancelScope.__exit__),
    (_respond, _respond.send_response),
    (_socket_stream, _socket_stream.SocketStream.read),
    (_socket_stream, _socket_stream.SocketStream.write),
]


def _bound_method_loads(module: types.ModuleType, fn: types.FunctionType) -> list[str]:
    """``LOAD_GLOBAL (NULL + name)`` then ``LOAD_ATTR``, ``name`` an object, not a module.

    (A class is fine too: its plain functions are read without binding.)
    """
    found = []
    ins = list(dis.get_instructions(fn))
    for a, b in zip(ins, ins[1:], strict=False):
        if (a.opname == "LOAD_GLOBAL" and a.argrepr.startswith("NULL + ")
                and b.opname == "LOAD_ATTR"):
            name = a.argrepr[len("NULL + "):]
            if not isinstance(module.__dict__.get(name), (types.ModuleType, type)):
                found.append(f"{fn.__qualname__}: {name}.{b.argrepr}")
    return found


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the 3.11 compiler's pattern")
@pytest.mark.parametrize(("module", "fn"), HOT, ids=[f.__qualname__ for _, f in HOT])
def test_no_bound_method_built_per_call_on_an_imported_name(module, fn) -> None:
    assert _bound_method_loads(module, fn) == []


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the 3.11 compiler's pattern")
def test_the_guard_sees_the_pattern() -> None:
    # The check itself can fail: an imported dict's method called directly.
    namespace: dict[str, object] = {}
    exec("from os import environ as E\ndef f(k):\n    return E.get(k)\n", namespace)
    module = types.ModuleType("m")
    module.__dict__.update(namespace)
    assert _bound_method_loads(module, namespace["f"]) == ["f: E.get"]  # type: ignore[arg-type]


def test_hot_classes_keep_the_generic_attribute_lookup():
    # A __getattr__ (or __getattribute__) anywhere in a class's MRO gives its
    # instances a custom tp_getattro, and CPython then specializes none of
    # their attribute loads: a TaskGroup.__getattr__ that only raised a
    # friendlier AttributeError cost 15 % of the spawn benchmark.
    from yieldio import _task, queue, sync
    from yieldio.net import _tls

    hot = [_taskgroup.TaskGroup, _task.Task, _kernel.Kernel, _cancel.CancelScope,
           _socket_stream.SocketStream, _tls.TLSStream, sync.Event, sync.Lock, queue.Queue]
    for cls in hot:
        for klass in cls.__mro__:
            assert "__getattr__" not in vars(klass), f"{klass.__qualname__}.__getattr__"
            if klass is not object:
                assert "__getattribute__" not in vars(klass), \
                    f"{klass.__qualname__}.__getattribute__"
