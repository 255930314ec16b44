"""The ``yieldio`` package namespace: what ``import yieldio`` gives you."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import yieldio

pytestmark = pytest.mark.timeout(60)


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_no_module_getattr() -> None:
    # CPython 3.11 will not specialise ``yieldio.sleep`` in user code if the
    # package module defines __getattr__; every access would be a generic lookup.
    assert "__getattr__" not in vars(yieldio)
    assert type(yieldio) is type(sys)


def test_every_public_name_is_there() -> None:
    missing = [name for name in yieldio.__all__ if not hasattr(yieldio, name)]
    assert missing == []
    assert yieldio.serve_tcp is yieldio.net.serve_tcp
    assert yieldio.open_file is yieldio.files.open_file


def test_heavy_submodules_load_on_first_use() -> None:
    out = _run("""
        import sys, yieldio
        print(type(sys.modules["yieldio.http"]).__name__)
        print("h11" in sys.modules)
        server = yieldio.http.serve          # first touch loads the module
        print(type(yieldio.http).__name__, "h11" in sys.modules)
        print(yieldio.debug.task_tree.__name__)
    """)
    assert out.splitlines() == ["_LazyModule", "False", "module True", "task_tree"]


def test_submodules_import_normally() -> None:
    out = _run("""
        import yieldio
        from yieldio.testing import VirtualClock
        import yieldio.aio as aio
        print(VirtualClock.__name__, aio is yieldio.aio, callable(aio.run_asyncio))
    """)
    assert out == "VirtualClock True True"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        yieldio.no_such_name  # noqa: B018


def test_the_package_says_it_is_typed() -> None:
    # PEP 561: without py.typed a user's mypy ignores yieldio's type hints.
    import importlib.resources

    assert importlib.resources.files("yieldio").joinpath("py.typed").is_file()


def test_package_namespaces_hold_no_stray_typing_names():
    # dir(yieldio) is what a user browses; `annotations` (the __future__
    # import) and typing helpers there looked like part of the API.
    import importlib

    for name in ("yieldio", "yieldio.http", "yieldio.net", "yieldio.testing", "yieldio.debug"):
        module = importlib.import_module(name)
        stray = {"annotations", "TYPE_CHECKING", "Any"} & set(dir(module))
        assert not stray, (name, stray)


def test_importing_a_private_submodule_first_does_not_run_it_twice() -> None:
    # importlib.util.LazyLoader ran the package's __init__ while Python was
    # importing the submodule (it reads __path__ after checking sys.modules),
    # and the submodule then ran a second time: two HTTPException classes,
    # and an `except` for one missed the other.
    out = _run("""
        import yieldio.http._errors as errors
        import yieldio.testing._clock as clock
        import yieldio.debug._tree as tree
        import yieldio.http._respond as respond
        import yieldio
        from yieldio.http import _connection
        print(errors.HTTPException is yieldio.http.HTTPException,
              clock.VirtualClock is yieldio.testing.VirtualClock,
              tree.snapshot is yieldio.debug.snapshot,
              _connection.ServerConnection._send is respond.send_response)
    """)
    assert out == "True True True True"


def test_threads_touching_a_lazy_module_first_all_see_it_whole() -> None:
    # The loser of the race used to find the module half-built (its code
    # still running in the winner's thread): AttributeError / ImportError.
    out = _run("""
        import threading, yieldio
        barrier = threading.Barrier(8)
        out = []
        def touch():
            barrier.wait()
            try:
                yieldio.http.Client
                from yieldio.debug import format_task_tree
                out.append("ok")
            except BaseException as e:
                out.append(repr(e))
        threads = [threading.Thread(target=touch) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(sorted(set(out)))
    """)
    assert out == "['ok']"


def test_public_exceptions_are_named_where_users_import_them():
    # Tracebacks and pytest summaries said "yieldio._exceptions.Deadlock".
    import pickle

    import yieldio.http
    import yieldio.testing

    assert f"{yieldio.Deadlock.__module__}.{yieldio.Deadlock.__qualname__}" == "yieldio.Deadlock"
    assert yieldio.BrokenStreamError.__module__ == "yieldio"
    assert yieldio.http.ProtocolError.__module__ == "yieldio.http"
    assert yieldio.testing.ExploreFailure.__module__ == "yieldio.testing"
    for exc in (yieldio.Deadlock("x"), yieldio.http.HTTPException(404), yieldio.Cancelled()):
        assert type(pickle.loads(pickle.dumps(exc))) is type(exc)
