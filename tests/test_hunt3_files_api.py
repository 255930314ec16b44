"""API gaps against trio's AsyncIOWrapper and pathlib: each checked against the stdlib itself.

AsyncFile forwards a method or optional attribute exactly when the wrapped
file has it; yieldio.Path offers what pathlib gained after 3.11 exactly when
the running Python's pathlib has it. Tests of 3.12+/3.13+ methods skip on
older Pythons, where the parity tests check that they are absent.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import pathlib
import sys

import pytest

import yieldio
from yieldio.files import AsyncFile, wrap_file

DATA = bytes(range(256)) * 40  # 10240 bytes: more than one buffer's worth is not needed

# Everything trio's AsyncIOWrapper forwards when the wrapped object has it.
TRIO_FORWARDED = sorted({
    "closed", "encoding", "errors", "fileno", "isatty", "newlines", "readable", "seekable",
    "writable", "buffer", "raw", "line_buffering", "closefd", "name", "mode", "getvalue",
    "getbuffer", "flush", "read", "read1", "readall", "readinto", "readinto1", "readline",
    "readlines", "seek", "tell", "truncate", "write", "writelines", "peek", "detach",
})
# yieldio keeps these three always present (None when the wrapped file lacks them).
ALWAYS = {"closed", "encoding", "errors", "newlines"}


def _data_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


# -- AsyncFile: what exists ------------------------------------------------------------
OPEN_MODES = [
    {"mode": "rb"}, {"mode": "rb", "buffering": 0}, {"mode": "r+b"}, {"mode": "wb"},
    {"mode": "ab", "buffering": 0}, {"mode": "r", "encoding": "latin-1"},
    {"mode": "w", "buffering": 1}, {"mode": "a+", "encoding": "utf-8"},
]


@pytest.mark.parametrize("kwargs", OPEN_MODES, ids=lambda kw: "-".join(map(str, kw.values())))
def test_async_file_has_exactly_what_the_open_file_has(tmp_path, kwargs):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, **kwargs) as f:
            with open(path, **kwargs) as plain:
                for name in TRIO_FORWARDED:
                    if name in ALWAYS:
                        assert hasattr(f, name)
                        continue
                    assert hasattr(f, name) == hasattr(plain, name), name
                    assert (name in dir(f)) == hasattr(plain, name), name

    yieldio.run(main)


@pytest.mark.parametrize("make", [lambda: io.BytesIO(DATA), lambda: io.StringIO("text"),
                                  lambda: io.BufferedReader(io.BytesIO(DATA))],
                         ids=["BytesIO", "StringIO", "BufferedReader-over-BytesIO"])
def test_wrapped_in_memory_files_have_exactly_what_they_have(make):
    async def main():
        obj = make()
        f = wrap_file(obj)
        for name in TRIO_FORWARDED:
            if name not in ALWAYS:
                assert hasattr(f, name) == hasattr(obj, name), name
                # dir() lists what can be read: a BufferedReader over a BytesIO
                # lists ``mode`` but reading it raises AttributeError.
                assert (name in dir(f)) == hasattr(obj, name), name
        await f.aclose()

    yieldio.run(main)


def test_a_missing_method_is_an_attribute_error_naming_the_wrapped_type(tmp_path):
    async def main():
        async with await yieldio.open_file(tmp_path / "t.txt", "w") as f:
            for name in ("peek", "read1", "readinto", "readinto1", "readall", "raw", "closefd",
                         "getvalue"):
                with pytest.raises(AttributeError, match=name):
                    getattr(f, name)
            assert getattr(f, "peek", None) is None
            with pytest.raises(AttributeError, match="'TextIOWrapper' object has no attribute"):
                f.peek  # noqa: B018

    yieldio.run(main)


def test_class_level_access_gives_the_documented_functions():
    for name in ("peek", "readall", "readinto1", "read1", "readinto", "detach", "read"):
        fn = getattr(AsyncFile, name)
        assert inspect.iscoroutinefunction(fn) and fn.__doc__, name
    for name in ("getvalue", "getbuffer", "fileno", "readable"):
        fn = getattr(AsyncFile, name)
        assert callable(fn) and not inspect.iscoroutinefunction(fn) and fn.__doc__, name


# -- AsyncFile: the new methods, against the stdlib's ------------------------------------
def test_peek_read1_readinto_readinto1_match_a_buffered_reader(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb", buffering=4096) as f:
            with open(path, "rb", buffering=4096) as plain:
                assert await f.peek() == plain.peek()
                assert await f.peek(3) == plain.peek(3)
                assert await f.tell() == plain.tell() == 0  # peek does not move
                assert await f.read1(10) == plain.read1(10)
                a, b = bytearray(5000), bytearray(5000)
                assert await f.readinto1(a) == plain.readinto1(b)
                assert a == b
                a, b = bytearray(7000), bytearray(7000)
                assert await f.readinto(a) == plain.readinto(b)
                assert a == b
                assert await f.tell() == plain.tell()
                assert await f.read1() == plain.read1()
                assert await f.peek() == plain.peek() == b""  # EOF

    yieldio.run(main)


def test_readall_and_closefd_match_an_unbuffered_file(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb", buffering=0) as f:
            with open(path, "rb", buffering=0) as plain:
                assert await f.read(100) == plain.read(100)
                assert await f.readall() == plain.readall() == DATA[100:]
                assert f.closefd is plain.closefd is True
        fd = os.open(path, os.O_RDONLY)
        try:
            async with await yieldio.open_file(fd, "rb", buffering=0, closefd=False) as f:
                with open(fd, "rb", buffering=0, closefd=False) as plain:
                    assert f.closefd is plain.closefd is False
            os.fstat(fd)  # still open
        finally:
            os.close(fd)

    yieldio.run(main)


def test_plain_attributes_are_the_wrapped_files_own(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb") as f:
            assert f.raw is f.wrapped.raw and isinstance(f.raw, io.FileIO)
        async with await yieldio.open_file(tmp_path / "t.txt", "w", buffering=1) as f:
            with open(tmp_path / "u.txt", "w", buffering=1) as plain:
                assert f.line_buffering is plain.line_buffering is True
                assert f.buffer is f.wrapped.buffer
                assert type(f.buffer) is type(plain.buffer)
        async with await yieldio.open_file(tmp_path / "t.txt") as f:
            assert f.line_buffering is False

    yieldio.run(main)


def test_getvalue_and_getbuffer_match_bytesio_and_stringio():
    async def main():
        b, plain_b = io.BytesIO(), io.BytesIO()
        f = wrap_file(b)
        await f.write(b"hello world")
        plain_b.write(b"hello world")
        assert f.getvalue() == plain_b.getvalue() == b"hello world"
        with f.getbuffer() as view, plain_b.getbuffer() as plain_view:
            assert bytes(view) == bytes(plain_view)
            view[0] = ord("J")
        assert f.getvalue() == b"Jello world"
        s, plain_s = io.StringIO(), io.StringIO()
        g = wrap_file(s)
        await g.write("texte")
        plain_s.write("texte")
        assert g.getvalue() == plain_s.getvalue()
        assert not hasattr(g, "getbuffer") and not hasattr(plain_s, "getbuffer")
        await f.aclose()
        await g.aclose()
        with pytest.raises(yieldio.ClosedResourceError):
            f.getvalue()

    yieldio.run(main)


def test_new_methods_on_a_closed_file_raise_closed_resource_error(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        f = await yieldio.open_file(path, "rb")
        await f.aclose()
        for op in (f.peek(), f.readinto1(bytearray(1)), f.detach()):
            with pytest.raises(yieldio.ClosedResourceError):
                await op
        g = await yieldio.open_file(path, "rb", buffering=0)
        await g.aclose()
        with pytest.raises(yieldio.ClosedResourceError):
            await g.readall()

    yieldio.run(main)


# -- AsyncFile.detach --------------------------------------------------------------------
def test_detach_a_text_file_gives_its_buffer_wrapped_and_flushes_like_the_stdlib(tmp_path):
    ours, theirs = tmp_path / "ours.txt", tmp_path / "theirs.txt"

    async def main():
        f = await yieldio.open_file(ours, "w", encoding="utf-8")
        await f.write("é pending")  # still in the text layer's buffer
        buf = await f.detach()
        plain = open(theirs, "w", encoding="utf-8")
        plain.write("é pending")
        plain_buf = plain.detach()
        assert isinstance(buf, AsyncFile) and type(buf.wrapped) is type(plain_buf)
        assert f.closed  # finished with: the new wrapper owns the file
        with pytest.raises(yieldio.ClosedResourceError):
            await f.write("more")
        await f.aclose()  # does nothing, where the stdlib's close() raises ValueError
        with pytest.raises(ValueError):
            plain.close()
        await buf.write(b"!")
        plain_buf.write(b"!")
        await buf.aclose()
        plain_buf.close()
        assert buf.closed

    yieldio.run(main)
    assert ours.read_bytes() == theirs.read_bytes() == "é pending!".encode()


def test_detach_a_buffered_reader_gives_its_raw_file(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb") as f:
            raw = await f.detach()  # the async with's aclose() then does nothing
        plain = open(path, "rb").detach()  # (a with-block would raise ValueError at exit)
        try:
            async with raw:
                assert type(raw.wrapped) is type(plain) is io.FileIO
                assert await raw.readall() == plain.readall() == DATA
        finally:
            plain.close()
        assert raw.closed and raw.wrapped.closed

    yieldio.run(main)


def test_a_detach_cancelled_before_it_starts_leaves_the_file_usable(tmp_path):
    path = _data_file(tmp_path)

    async def main():
        async with await yieldio.open_file(path, "rb") as f:
            with yieldio.move_on_after(0) as scope:
                await f.detach()
            assert scope.cancelled_caught and not f.closed
            assert await f.read(4) == DATA[:4]

    yieldio.run(main)


def test_unbuffered_and_in_memory_detach_match_the_stdlib(tmp_path):
    async def main():
        async with await yieldio.open_file(tmp_path / "x", "wb", buffering=0) as f:
            assert not hasattr(f, "detach")  # FileIO has none
        s = wrap_file(io.StringIO())
        with pytest.raises(io.UnsupportedOperation):
            io.StringIO().detach()
        with pytest.raises(io.UnsupportedOperation):
            await s.detach()
        await s.aclose()

    yieldio.run(main)


# -- yieldio.Path: what exists -----------------------------------------------------------
NEWER_PATHLIB = ["walk", "is_junction", "with_segments", "full_match", "from_uri", "parser"]


def test_newer_pathlib_members_exist_exactly_when_pathlib_has_them(tmp_path):
    p, plain = yieldio.Path(tmp_path), pathlib.Path(tmp_path)
    for name in NEWER_PATHLIB:
        assert hasattr(yieldio.Path, name) == hasattr(pathlib.Path, name), name
        assert hasattr(p, name) == hasattr(plain, name), name
        assert (name in dir(p)) == (name in dir(plain)), name
    if sys.version_info < (3, 12):
        with pytest.raises(AttributeError):
            p.walk  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14's copy/move/info are not offered")
def test_path_has_every_public_member_of_the_running_pathlib():
    missing = {n for n in dir(pathlib.Path) if not n.startswith("_")} - set(dir(yieldio.Path))
    assert missing <= {"link_to"}, missing


# -- yieldio.Path: newer keyword arguments, on every Python ------------------------------
def _outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except TypeError:
        return ("TypeError", None)


def test_newer_keyword_arguments_work_exactly_where_pathlibs_do(tmp_path):
    # On 3.11 each of these is a TypeError from pathlib; on 3.12/3.13 some or
    # all work. Either way yieldio.Path must do what pathlib does.
    (tmp_path / "File.TXT").write_bytes(b"a\r\nb\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "dirlink").symlink_to(tmp_path / "dir")
    base, plain = yieldio.Path(tmp_path), pathlib.Path(tmp_path)
    io_cases = [
        ("broken", "exists", {"follow_symlinks": False}),
        ("broken", "exists", {"follow_symlinks": True}),
        ("dirlink", "is_dir", {"follow_symlinks": False}),
        ("dirlink", "is_file", {"follow_symlinks": False}),
        ("dir", "owner", {"follow_symlinks": False}),
        ("dir", "group", {"follow_symlinks": False}),
        ("File.TXT", "read_text", {"newline": ""}),
        ("File.TXT", "read_text", {"newline": None}),
    ]

    async def main():
        for name, method, kw in io_cases:
            expected = _outcome(getattr(plain / name, method), **kw)
            with pytest.raises(TypeError) if expected[0] == "TypeError" else contextlib.nullcontext():
                got = await getattr(base / name, method)(**kw)
                assert got == expected[1], (name, method, kw)
        for method in ("glob", "rglob"):
            for kw in ({"case_sensitive": False}, {"case_sensitive": None},
                       {"recurse_symlinks": True}):
                expected = _outcome(_sorted_listing, getattr(plain, method), "*.txt", **kw)
                if expected[0] == "TypeError":
                    with pytest.raises(TypeError):  # at the call, as pathlib's
                        getattr(base, method)("*.txt", **kw)
                else:
                    got = sorted([p.wrapped async for p in getattr(base, method)("*.txt", **kw)])
                    assert got == expected[1], (method, kw)

    yieldio.run(main)
    for kw in ({"case_sensitive": False}, {"case_sensitive": True}):
        expected = _outcome(plain.joinpath("a/B.PY").match, "*.py", **kw)
        assert _outcome(base.joinpath("a/B.PY").match, "*.py", **kw) == expected
    expected = _outcome(pathlib.Path("/a/b").relative_to, "/a/c", walk_up=True)
    got = _outcome(yieldio.Path("/a/b").relative_to, "/a/c", walk_up=True)
    assert got[0] == expected[0] and (got[1] is None or got[1].wrapped == expected[1])


def test_leaving_newer_keywords_out_keeps_pathlibs_defaults(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"x\r\ny")
    base, plain = yieldio.Path(tmp_path), pathlib.Path(tmp_path)

    async def main():
        assert await (base / "f.txt").read_text() == (plain / "f.txt").read_text() == "x\ny"
        assert await base.exists() and await base.is_dir() and not await base.is_file()
        assert [p.wrapped async for p in base.glob("*.txt")] == list(plain.glob("*.txt"))
        assert await base.owner() == plain.owner()

    yieldio.run(main)


def test_unsupported_keyword_error_names_the_method():
    if "follow_symlinks" in _pathlib_keywords("exists"):
        pytest.skip("this pathlib takes exists(follow_symlinks=)")

    async def main():
        with pytest.raises(TypeError, match=r"exists\(\) got an unexpected keyword argument "
                                            r"'follow_symlinks'"):
            await yieldio.Path(".").exists(follow_symlinks=False)

    yieldio.run(main)


# -- yieldio.Path: 3.12+ ---------------------------------------------------------------
def _make_tree(root: pathlib.Path) -> None:
    for d in ("a/aa", "a/ab", "b", ".hidden/x"):
        (root / d).mkdir(parents=True)
    for f in ("top.txt", "a/one.txt", "a/aa/two.txt", "b/three.txt", ".hidden/x/four.txt"):
        (root / f).write_text(f)
    (root / "b" / "to_a").symlink_to(root / "a")


def _norm(walked):
    return sorted((str(top), sorted(dirs), sorted(files)) for top, dirs, files in walked)


needs_312 = pytest.mark.skipif(not hasattr(pathlib.Path, "walk"), reason="pathlib 3.12+")
needs_313 = pytest.mark.skipif(not hasattr(pathlib.Path, "full_match"), reason="pathlib 3.13+")


@needs_312
@pytest.mark.parametrize("top_down", [True, False])
@pytest.mark.parametrize("follow_symlinks", [False, True])
def test_walk_matches_pathlib(tmp_path, top_down, follow_symlinks):
    _make_tree(tmp_path)

    async def main():
        return [(top, dirs, files) async for top, dirs, files in yieldio.Path(tmp_path).walk(
            top_down=top_down, follow_symlinks=follow_symlinks)]

    ours = yieldio.run(main)
    assert all(isinstance(top, yieldio.Path) for top, _, _ in ours)
    expected = list(tmp_path.walk(top_down=top_down, follow_symlinks=follow_symlinks))
    assert [str(t) for t, _, _ in ours] == [str(t) for t, _, _ in expected]  # same order
    assert _norm(ours) == _norm(expected)


@needs_312
def test_walk_top_down_pruning_matches_pathlib(tmp_path):
    _make_tree(tmp_path)
    for i in range(300):  # more entries than a batch
        (tmp_path / ".hidden" / f"{i}.dat").touch()

    async def main():
        seen = []
        async for top, dirs, files in yieldio.Path(tmp_path).walk():
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "aa"]
            seen.append((top, dirs, files))
        return seen

    expected = []
    for top, dirs, files in tmp_path.walk():
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "aa"]
        expected.append((top, dirs, files))
    ours = yieldio.run(main)
    assert _norm(ours) == _norm(expected)
    assert not any(".hidden" in str(top) or str(top).endswith("aa") for top, _, _ in ours)


@needs_312
def test_walk_errors_go_to_on_error_as_in_pathlib(tmp_path):
    missing = tmp_path / "missing"

    async def main():
        errors: list[OSError] = []
        walked = [x async for x in yieldio.Path(missing).walk(on_error=errors.append)]
        return walked, errors

    walked, errors = yieldio.run(main)
    plain_errors: list[OSError] = []
    assert walked == list(missing.walk(on_error=plain_errors.append)) == []
    assert [type(e) for e in errors] == [type(e) for e in plain_errors] == [FileNotFoundError]


@needs_312
def test_walk_abandoned_early_closes_its_directories(tmp_path):
    _make_tree(tmp_path)

    async def main():
        async for _top, _dirs, _files in yieldio.Path(tmp_path).walk(top_down=False):
            break
        await yieldio.sleep(0.05)  # the generator's cleanup runs as a task

    yieldio.run(main)  # the suite's leak check counts descriptors


@needs_312
def test_is_junction_and_with_segments_match_pathlib(tmp_path):
    async def main():
        return await yieldio.Path(tmp_path).is_junction()

    assert yieldio.run(main) is tmp_path.is_junction()
    p = yieldio.Path(tmp_path / "x")
    made = p.with_segments("c", "d")
    assert isinstance(made, yieldio.Path)
    assert made.wrapped == (tmp_path / "x").with_segments("c", "d")


@needs_313
def test_full_match_from_uri_parser_match_pathlib(tmp_path):
    p, plain = yieldio.Path("src/pkg/mod.py"), pathlib.Path("src/pkg/mod.py")
    for pattern in ("src/**/*.py", "*.py", "src/*/mod.py", "**/*.PY"):
        for cs in (None, False, True):
            assert p.full_match(pattern, case_sensitive=cs) == plain.full_match(
                pattern, case_sensitive=cs), (pattern, cs)
    uri = (tmp_path / "a b").as_uri()
    from_uri = yieldio.Path.from_uri(uri)
    assert isinstance(from_uri, yieldio.Path) and from_uri.wrapped == pathlib.Path.from_uri(uri)
    with pytest.raises(ValueError):
        pathlib.Path.from_uri("http://x/y")
    with pytest.raises(ValueError):
        yieldio.Path.from_uri("http://x/y")
    assert p.parser is plain.parser


# -- helpers ---------------------------------------------------------------------------
def _sorted_listing(method, pattern, **kw):
    return sorted(method(pattern, **kw))


def _pathlib_keywords(method: str) -> set[str]:
    return set(inspect.signature(getattr(pathlib.Path, method)).parameters)
