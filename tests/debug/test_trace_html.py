"""The HTML timeline: self-contained, and really drawn (checked in headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

import yieldio
from yieldio._cli_debug import cmd_trace
from yieldio.debug._trace_html import build_model, load_trace, render_html

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")


async def worker(i, q):
    for _ in range(3):
        await yieldio.sleep(0.001 * (i % 5 + 1))
        await q.put(i)


async def collector(q, n):
    for _ in range(n):
        await q.get()


async def program(n_workers):
    q = yieldio.Queue(2)
    async with yieldio.TaskGroup() as tg:
        tg.spawn(collector, q, 3 * n_workers, name="collector")
        for i in range(n_workers):
            tg.spawn(worker, i, q, name=f"worker-{i}")


def make_trace(tmp_path, n_workers=4, name="trace.json"):
    path = tmp_path / name
    yieldio.run(program, n_workers, trace=str(path))
    return path


def strict_json(text: str):
    """json.loads as a browser's JSON.parse reads: NaN and Infinity are errors."""
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1200,800", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return proc


def body_attrs(dom):
    m = re.search(r"<body([^>]*)>", dom)
    assert m, dom[:2000]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))


def png_pixels(path):
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes): rows of tuples."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return rows


# -- the page itself -------------------------------------------------------------------
def test_page_is_self_contained(tmp_path):
    page = render_html(load_trace(str(make_trace(tmp_path))))
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"\b(src|href)\s*=", page), "no external resources"
    assert "http://" not in page and "https://" not in page
    assert "<canvas" in page and 'addEventListener("wheel"' in page
    assert 'data-tasks="6"' in page  # main, collector and 4 workers


def test_names_cannot_break_out_of_the_page():
    trace = [{"ph": "M", "pid": 1, "tid": 5, "name": "thread_name",
              "args": {"name": "</script><script>alert(1)</script>"}},
             {"ph": "X", "pid": 1, "tid": 5, "ts": 0, "dur": 10, "name": "<!-- x", "cat": "step"}]
    page = render_html(trace, title="<b>t</b>")
    assert "</script><script>alert(1)" not in page and "<!-- x" not in page
    assert "<title>&lt;b&gt;t&lt;/b&gt;</title>" in page
    data = page.split('type="application/json">')[1].split("</script>")[0]
    model = json.loads(data)
    assert model["tracks"][0]["name"] == "</script><script>alert(1)</script>"


def test_model_handles_begin_end_pairs_instants_flows_and_counters():
    events = [
        {"ph": "B", "pid": 1, "tid": 2, "ts": 100, "name": "outer"},
        {"ph": "E", "pid": 1, "tid": 2, "ts": 150},
        {"ph": "i", "pid": 1, "tid": 2, "ts": 120, "name": "mark", "args": {"k": 1}},
        {"ph": "s", "pid": 1, "tid": 2, "ts": 110, "id": 9, "cat": "spawn", "name": "spawn"},
        {"ph": "f", "pid": 1, "tid": 3, "ts": 130, "id": 9, "cat": "spawn", "name": "spawn",
         "bp": "e"},
        {"ph": "X", "pid": 1, "tid": 3, "ts": 130, "dur": 5, "name": "step", "cat": "step"},
        {"ph": "C", "pid": 1, "ts": 140, "name": "bytes", "args": {"value": 4}},
        {"ph": "C", "pid": 1, "ts": 100, "name": "bytes", "args": {"value": 1}},
        "garbage", {"ph": "X", "ts": "not a number"},
    ]
    m = build_model({"traceEvents": events})
    assert m["end"] == 50
    t2, t3 = m["tracks"]
    assert t2["slices"] == [[0.0, 50.0, 0, 1, -1]] and m["strings"][0] == "outer"
    assert t2["instants"][0][0] == 20.0 and m["args"][t2["instants"][0][2]] == {"k": 1}
    assert m["flows"] == [[10.0, 0, 30.0, 1, m["strings"].index("spawn")]]
    assert m["counters"] == [{"name": "bytes", "points": [[0.0, 1.0], [40.0, 4.0]],
                              "max": 4.0, "min": 1.0}]
    assert t3["name"] == "tid 3"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"events": []}', "not a Chrome trace"),
    ("42", "not a Chrome trace"),
    # Nested deeper than the recursion limit: was a RecursionError traceback.
    ("[" * 100_000, "nested too deeply"),
])
def test_bad_trace_files_are_clear_errors(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert cmd_trace(["view", str(bad), "-o", str(tmp_path / "out.html")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.html").exists()


def test_a_trace_cut_inside_a_non_ascii_name_is_called_incomplete(tmp_path, capsys):
    # Cut mid-character, the file failed to decode and was called "not a
    # text file"; it is a truncated trace, like one cut anywhere else.
    whole = '{"traceEvents":[{"ph":"X","name":"работник","ts":0,"dur":1,"tid":1}]}'
    data = whole.encode()
    bad = tmp_path / "cut.json"
    bad.write_bytes(data[: data.index("работник".encode()) + 3])
    assert cmd_trace(["view", str(bad), "-o", str(tmp_path / "out.html")]) == 2
    err = capsys.readouterr().err
    assert "middle of a character" in err and "complete trace file" in err
    assert "not a text file" not in err
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00x")
    assert cmd_trace(["view", str(binary), "-o", str(tmp_path / "out.html")]) == 2
    assert "not a text file" in capsys.readouterr().err


def test_trace_view_command(tmp_path, capsys):
    src = make_trace(tmp_path)
    assert cmd_trace(["view", str(src)]) == 0  # default: next to the trace
    assert (tmp_path / "trace.html").read_text().startswith("<!DOCTYPE html>")
    assert "wrote" in capsys.readouterr().out
    assert cmd_trace(["view", str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cmd_trace(["view", str(src), "-o", str(src)]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cmd_trace(["--help"])
    assert exit_info.value.code == 0
    assert "view" in capsys.readouterr().out


def test_trace_view_unwritable_output_names_the_output_not_a_temp_file(tmp_path, capsys):
    out = tmp_path / "no" / "dir.html"
    assert cmd_trace(["view", str(make_trace(tmp_path)), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {str(out)!r}: No such file or directory" in err
    assert ".tmp" not in err


def test_trace_view_drops_numbers_a_browser_cannot_parse(tmp_path):
    # json.load accepts NaN, Infinity and 1e400; the page's JSON.parse does
    # not: one such number made the whole page blank.
    src = tmp_path / "foreign.json"
    src.write_text('[{"ph":"X","ts":1,"dur":2,"tid":1,"name":"ok"},'
                   '{"ph":"X","ts":NaN,"dur":1,"tid":1,"name":"a"},'
                   '{"ph":"X","ts":1e400,"dur":1,"tid":1,"name":"b"},'
                   '{"ph":"X","ts":2,"dur":Infinity,"tid":1,"name":"c"},'
                   f'{{"ph":"X","ts":{10 ** 400},"dur":1,"tid":1,"name":"d"}},'
                   '{"ph":"C","ts":3,"name":"n","args":{"value":-Infinity}}]')
    out = tmp_path / "page.html"
    proc = subprocess.run([sys.executable, "-m", "yieldio", "trace", "view", str(src),
                           "-o", str(out)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    data = re.search(r'<script id="trace-data" type="application/json">(.*?)</script>',
                     page, re.S)
    assert data is not None
    model = strict_json(data.group(1))
    assert model["end"] == 2.0  # 'c' keeps its start; its infinite duration counts as 0
    assert sum(len(t["slices"]) for t in model["tracks"]) == 2


# -- in a real browser ---------------------------------------------------------------------
@needs_chromium
def test_headless_chromium_draws_one_row_per_task(tmp_path):
    html = tmp_path / "trace.html"
    assert cmd_trace(["view", str(make_trace(tmp_path)), "-o", str(html)]) == 0
    proc = chromium(tmp_path, "--dump-dom", html.as_uri())
    attrs = body_attrs(proc.stdout)
    assert attrs.get("data-tasks-drawn") == "6", proc.stderr[-2000:]
    assert int(attrs["data-slices-drawn"]) > 20
    assert int(attrs["data-rows-drawn"]) >= 6

    shot = tmp_path / "trace-view.png"  # the test's artifact: look at it
    chromium(tmp_path, f"--screenshot={shot}", html.as_uri())
    rows = png_pixels(shot)
    assert len(rows) == 800 and len(rows[0]) == 1200
    colors = {px for row in rows[::4] for px in row[240::4]}
    # The timeline area holds the step colours (saturated hues), not only
    # greys and white: it really drew slices.
    saturated = [c for c in colors if max(c) - min(c) > 60]
    assert len(saturated) > 10, f"screenshot looks empty: {shot}"
    print(f"screenshot: {shot}")


@needs_chromium
def test_the_trace_of_a_1000_task_run_loads_in_chromium(tmp_path):
    html = tmp_path / "big.html"
    src = make_trace(tmp_path, n_workers=999, name="big.json")
    assert cmd_trace(["view", str(src), "-o", str(html)]) == 0
    proc = chromium(tmp_path, "--dump-dom", html.as_uri())
    attrs = body_attrs(proc.stdout)
    assert attrs.get("data-tasks-drawn") == "1001", proc.stderr[-2000:]
    assert int(attrs["data-slices-drawn"]) > 100
