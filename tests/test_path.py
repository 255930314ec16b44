"""yieldio.Path on a real file system: pure operations, awaited I/O, listings, errors."""

from __future__ import annotations

import contextlib
import inspect
import os
import pathlib
import sys
import threading

import pytest

import yieldio
from yieldio.files import AsyncFile


def test_pure_operations_are_plain_and_match_pathlib():
    p = yieldio.Path("/srv/data", "archive.tar.gz")
    q = pathlib.Path("/srv/data/archive.tar.gz")
    assert isinstance(p / "x", yieldio.Path) and str(p / "x") == str(q / "x")
    assert isinstance("base" / yieldio.Path("rel"), yieldio.Path)
    assert str("base" / yieldio.Path("rel")) == "base/rel"
    assert (p.name, p.suffix, p.suffixes, p.stem) == (q.name, q.suffix, q.suffixes, q.stem)
    assert p.parent == yieldio.Path("/srv/data") and p.parent == q.parent
    assert [str(a) for a in p.parents] == [str(a) for a in q.parents]
    assert p.parts == q.parts and (p.anchor, p.drive, p.root) == ("/", "", "/")
    assert p.with_suffix(".zip") == yieldio.Path("/srv/data/archive.tar.zip")
    assert p.with_name("b").name == "b" and p.with_stem("c").name == "c.gz"
    assert p.relative_to("/srv") == yieldio.Path("data/archive.tar.gz")
    assert p.is_relative_to("/srv") and not p.is_relative_to("/etc")
    assert p.is_absolute() and p.match("*.gz") and p.as_posix() == str(q)
    assert p.as_uri() == q.as_uri()
    assert p.joinpath("a", "b") == yieldio.Path(q, "a", "b")
    assert os.fspath(p) == str(q) and bytes(p) == bytes(q)
    assert repr(p) == "yieldio.Path('/srv/data/archive.tar.gz')"
    assert p == q and hash(p) == hash(yieldio.Path(q)) and p != "not a path"
    assert sorted([yieldio.Path("b"), yieldio.Path("a")]) == [yieldio.Path("a"), yieldio.Path("b")]
    assert yieldio.Path("a") < pathlib.PurePath("b") and yieldio.Path("b") >= yieldio.Path("a")
    assert p.wrapped == q and isinstance(p.wrapped, pathlib.Path)
    with pytest.raises(ValueError):
        p.relative_to("/etc")
    with pytest.raises(TypeError):
        yieldio.Path(3)  # type: ignore[arg-type]


def test_io_runs_off_the_loop_thread_and_round_trips(tmp_path, monkeypatch):
    loop_thread = threading.get_ident()
    seen_threads = set()
    exists = pathlib.Path.exists

    def spying_exists(self):
        seen_threads.add(threading.get_ident())
        return exists(self)

    monkeypatch.setattr(pathlib.Path, "exists", spying_exists)

    async def main():
        base = yieldio.Path(tmp_path) / "a" / "b"
        await base.mkdir(parents=True)
        assert await base.is_dir() and not await base.is_file()
        f = base / "notes.txt"
        assert not await f.exists()
        assert await f.write_text("héllo\n", encoding="utf-8") == 6
        assert await f.read_text(encoding="utf-8") == "héllo\n"
        assert await f.write_bytes(b"\x00\x01") == 2
        assert await f.read_bytes() == b"\x00\x01"
        assert (await f.stat()).st_size == 2 and await f.is_file()
        await f.chmod(0o600)
        assert (await f.stat()).st_mode & 0o777 == 0o600
        assert await f.samefile(str(f)) and await f.owner() and await f.group()
        link = base / "link"
        await link.symlink_to(f)
        assert await link.is_symlink() and await link.readlink() == f
        assert (await link.lstat()).st_size != 2 or await link.is_symlink()
        hard = base / "hard"
        await hard.hardlink_to(f)
        assert (await hard.stat()).st_nlink == 2
        moved = await f.rename(base / "moved.txt")
        assert isinstance(moved, yieldio.Path) and await moved.exists()
        replaced = await moved.replace(base / "final.txt")
        assert await replaced.read_bytes() == b"\x00\x01"
        resolved = await (base / ".." / "b" / "final.txt").resolve(strict=True)
        assert resolved == yieldio.Path(os.path.realpath(tmp_path), "a", "b", "final.txt")
        touched = base / "empty"
        await touched.touch()
        assert (await touched.stat()).st_size == 0
        for name in ("empty", "final.txt", "link", "hard"):
            await (base / name).unlink()
        await (base / "gone").unlink(missing_ok=True)
        await base.rmdir()
        assert not await base.exists()
        # pathlib's work happened on worker threads, not the loop's
        assert await yieldio.Path(tmp_path).exists()

    yieldio.run(main)
    assert seen_threads and loop_thread not in seen_threads


def test_where_we_are():
    async def main():
        assert await yieldio.Path.cwd() == yieldio.Path(os.getcwd())
        assert await yieldio.Path.home() == yieldio.Path(pathlib.Path.home())
        assert await yieldio.Path("~").expanduser() == yieldio.Path(pathlib.Path.home())
        rel = yieldio.Path("x")
        assert await rel.absolute() == yieldio.Path(os.getcwd(), "x")
        assert (await yieldio.Path("/dev/null").is_char_device())
        assert not await yieldio.Path("/dev/null").is_block_device()
        assert not await yieldio.Path("/dev/null").is_fifo()
        assert not await yieldio.Path("/dev/null").is_socket()
        assert await yieldio.Path("/").is_mount()

    yieldio.run(main)


def test_listing_iterdir_glob_rglob(tmp_path):
    for i in range(600):  # more than one batch of entries
        (tmp_path / f"f{i:03}.txt").touch()
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "x.py").touch()
    (tmp_path / "sub" / "y.py").touch()

    async def main():
        base = yieldio.Path(tmp_path)
        entries = [p async for p in base.iterdir()]
        assert all(isinstance(p, yieldio.Path) for p in entries)
        assert len(entries) == 601
        txt = sorted([p.name async for p in base.glob("*.txt")])
        assert txt == [f"f{i:03}.txt" for i in range(600)]
        py = sorted([str(p.relative_to(base)) async for p in base.rglob("*.py")])
        return py

    assert yieldio.run(main) == ["sub/deeper/x.py", "sub/y.py"]


def test_listing_abandoned_early_closes_its_directory(tmp_path):
    # glob keeps a directory open while it walks it; leaving the loop early
    # must close it (this test suite's leak check counts descriptors).
    for d in range(3):
        (tmp_path / f"d{d}").mkdir()
        for i in range(300):
            (tmp_path / f"d{d}" / f"{i}.dat").touch()

    async def main():
        async for p in yieldio.Path(tmp_path).rglob("*.dat"):
            assert p.suffix == ".dat"
            break
        await yieldio.sleep(0.05)  # the generator's cleanup runs as a task

    yieldio.run(main)


def test_errors_are_pathlibs(tmp_path):
    async def main():
        missing = yieldio.Path(tmp_path) / "missing"
        with pytest.raises(FileNotFoundError):
            await missing.read_text()
        with pytest.raises(FileNotFoundError):
            async for _ in missing.iterdir():
                pass
        with pytest.raises(FileNotFoundError):
            await missing.resolve(strict=True)
        await missing.mkdir()
        with pytest.raises(FileExistsError):
            await missing.mkdir()
        with pytest.raises(TypeError, match="needs bytes"):
            await missing.write_bytes("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="needs str"):
            await missing.write_text(b"bytes")  # type: ignore[arg-type]
        with pytest.raises(IsADirectoryError):
            await missing.read_bytes()

    yieldio.run(main)


def test_open_gives_an_async_file_and_paths_work_with_open_file(tmp_path):
    async def main():
        p = yieldio.Path(tmp_path) / "log.txt"
        async with await p.open("w") as f:
            assert isinstance(f, AsyncFile)
            await f.write("one\n")
        async with await yieldio.open_file(p, "a") as f:  # os.PathLike
            await f.write("two\n")
        with open(p) as sync:  # noqa: ASYNC230 -- the builtin accepts it too
            assert sync.read() == "one\ntwo\n"
        return await p.read_text()

    assert yieldio.run(main) == "one\ntwo\n"


def test_a_cancelled_call_never_starts_and_a_started_one_completes(tmp_path):
    target = yieldio.Path(tmp_path) / "made"

    async def main():
        with yieldio.move_on_after(0) as scope:
            await target.mkdir()  # cancelled at its checkpoint, before the thread
        assert scope.cancelled_caught and not target.wrapped.exists()
        await target.mkdir()
        return await target.is_dir()

    assert yieldio.run(main) is True


def test_path_ordering_with_paths_and_pathlib():
    a, b = yieldio.Path("a"), yieldio.Path("b")
    assert a <= a and a <= b and not b <= a
    assert b >= b and b >= a and not a >= b
    assert a <= pathlib.PurePath("a") and b >= pathlib.PurePath("a")


def test_dividing_by_a_non_path_names_yieldio_path_in_the_error():
    with pytest.raises(TypeError, match="'Path' and 'int'"):
        yieldio.Path("a") / 5
    with pytest.raises(TypeError, match="'int' and 'Path'"):
        5 / yieldio.Path("a")
    assert yieldio.Path("a") / "b" == yieldio.Path("a/b")
    assert "a" / yieldio.Path("b") == yieldio.Path("a/b")


# -- what pathlib gained after 3.11, each checked against pathlib itself ----------------
# yieldio.Path offers what pathlib gained after 3.11 exactly when the running
# Python's pathlib has it. Tests of 3.12+/3.13+ methods skip on older
# Pythons, where the parity test checks that they are absent.
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


# -- newer keyword arguments, on every Python ------------------------------------------
def _outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except TypeError:
        return ("TypeError", None)


def _sorted_listing(method, pattern, **kw):
    return sorted(method(pattern, **kw))


def _pathlib_keywords(method: str) -> set[str]:
    return set(inspect.signature(getattr(pathlib.Path, method)).parameters)


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


# -- 3.12+: walk, is_junction, with_segments; 3.13+: full_match, from_uri, parser -------
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
