"""Render a Chrome trace as one self-contained HTML page: a zoomable timeline.

``python -m yieldio trace view trace.json -o trace.html`` calls
:func:`render_html`. The page needs no network (no CDN, no fonts, no
images): the trace is embedded as JSON and drawn on a ``<canvas>`` by a
small inline script. One row per task (plus the kernel's row and a row per
counter); the mouse wheel zooms around the pointer, dragging pans (both
ways), Shift+wheel scrolls the rows, ``f`` fits the whole run, and hovering
a slice shows its name, times and args.

When the script has drawn the first frame it sets ``data-tasks-drawn`` (the
number of task rows) and ``data-slices-drawn`` on ``<body>``, so a headless
browser can check that the page works::

    html = render_html(json.load(open("trace.json")))
    open("trace.html", "w").write(html)
"""

from __future__ import annotations

import html as _html
import json
from math import isfinite
from typing import Any

__all__ = ["render_html", "load_trace", "build_model"]


def load_trace(path: str) -> dict[str, Any]:
    """Read a trace file; raise ``ValueError`` with a clear message if it is not one.

    A bare JSON list of events is accepted too::

        trace = load_trace("trace.json")
        print(len(trace["traceEvents"]))
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.end == len(raw) and exc.reason == "unexpected end of data":
            # Cut in the middle of a non-ASCII character (a task named
            # "работник"): a truncated trace, not a binary file.
            raise ValueError(f"{path}: the file ends in the middle of a character; "
                             "is it a complete trace file?") from None
        raise ValueError(f"{path}: not a text file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); is it a complete trace file?") from None
    except RecursionError:
        # "[[[[..." nested deeper than the recursion limit: the decoder
        # recurses, and the CLI printed its traceback.
        raise ValueError(f"{path}: not a Chrome trace (JSON nested too deeply)") from None
    if isinstance(data, list):
        data = {"traceEvents": data}
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise ValueError(f"{path}: not a Chrome trace (expected a JSON list of events or an "
                         "object with a 'traceEvents' list)")
    return data


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def __call__(self, s: Any) -> int:
        s = str(s)
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.items)
            self.items.append(s)
        return i


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:  # an int too big for a float
        return None
    # json.load accepts NaN and Infinity (and 1e400 reads as inf): kept,
    # they would be written into the page as NaN/Infinity, which the
    # browser's JSON.parse refuses -- a blank page instead of a timeline.
    return f if isfinite(f) else None


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def build_model(trace: dict[str, Any]) -> dict[str, Any]:
    """Turn trace events into the compact model the page draws.

    Tracks are keyed by (pid, tid); slices are ``X`` events and ``B``/``E``
    pairs; ``i``/``I`` are instants, ``s``/``f`` flows, ``C`` counters.
    Times are µs from the first event::

        model = build_model(load_trace("trace.json"))
        print([t["name"] for t in model["tracks"]])
    """
    events = trace.get("traceEvents", [])
    strings = _Strings()
    args_table: list[Any] = []
    names: dict[tuple[Any, Any], str] = {}
    sort_index: dict[tuple[Any, Any], float] = {}
    tracks: dict[tuple[Any, Any], dict[str, Any]] = {}
    open_b: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    flow_starts: dict[tuple[Any, Any], tuple[float, tuple[Any, Any]]] = {}
    flows: list[tuple[float, tuple[Any, Any], float, tuple[Any, Any], int]] = []
    counters: dict[str, list[tuple[float, float]]] = {}

    def track(key: tuple[Any, Any]) -> dict[str, Any]:
        t = tracks.get(key)
        if t is None:
            t = tracks[key] = {"slices": [], "instants": []}
        return t

    def add_args(a: Any) -> int:
        if not a:
            return -1
        args_table.append(a)
        return len(args_table) - 1

    t_min = float("inf")
    t_max = 0.0
    for ev in events:
        if not isinstance(ev, dict):
            continue
        ph = ev.get("ph")
        key = (ev.get("pid", 0), ev.get("tid", 0))
        # A hand-edited or foreign file may hold any JSON here: an event whose
        # ids cannot be keys (a list "tid") or whose args are not an object is
        # skipped, not a traceback from 'trace view'.
        args: Any = ev.get("args")
        if not _hashable(key):
            continue
        if ph in ("s", "f", "t") and not _hashable((ev.get("cat"), ev.get("id"))):
            continue
        if ph in ("M", "C") and not isinstance(args, dict):
            continue
        if ph == "M":
            if ev.get("name") == "thread_name" and "name" in args:
                names[key] = str(args["name"])
            elif ev.get("name") == "thread_sort_index" and _num(args.get("sort_index")) is not None:
                sort_index[key] = float(args["sort_index"])
            continue
        ts = _num(ev.get("ts"))
        if ts is None:
            continue
        t_min = min(t_min, ts)
        if ph == "X":
            dur = max(0.0, _num(ev.get("dur")) or 0.0)
            track(key)["slices"].append([ts, dur, strings(ev.get("name", "")),
                                         strings(ev.get("cat", "")), add_args(ev.get("args"))])
            t_max = max(t_max, ts + dur)
        elif ph == "B":
            open_b.setdefault(key, []).append(ev)
            track(key)
        elif ph == "E":
            stack = open_b.get(key)
            if stack:
                b = stack.pop()
                bts = float(b["ts"])
                track(key)["slices"].append([bts, max(0.0, ts - bts), strings(b.get("name", "")),
                                             strings(b.get("cat", "")), add_args(b.get("args"))])
            t_max = max(t_max, ts)
        elif ph in ("i", "I", "n"):
            track(key)["instants"].append([ts, strings(ev.get("name", "")),
                                           add_args(ev.get("args"))])
            t_max = max(t_max, ts)
        elif ph == "s":
            flow_starts[(ev.get("cat"), ev.get("id"))] = (ts, key)
            track(key)
        elif ph in ("f", "t"):
            start = flow_starts.pop((ev.get("cat"), ev.get("id")), None)
            if start is not None:
                flows.append((start[0], start[1], ts, key, strings(ev.get("cat") or "flow")))
            track(key)
        elif ph == "C":
            for k, v in args.items():
                value = _num(v)
                if value is not None:
                    series = str(ev.get("name", "")) if k == "value" else f"{ev.get('name')}.{k}"
                    counters.setdefault(series, []).append((ts, value))
            t_max = max(t_max, ts)
    if t_min == float("inf"):
        t_min = 0.0
    for key in names:
        track(key)

    def order(key: tuple[Any, Any]) -> tuple[float, str]:
        tid = key[1]
        return (sort_index.get(key, tid if isinstance(tid, (int, float)) else 1e18), str(key))

    keys = sorted(tracks, key=order)
    index = {k: i for i, k in enumerate(keys)}
    out_tracks = []
    for key in keys:
        t = tracks[key]
        slices = sorted(t["slices"], key=lambda s: s[0])
        for s in slices:
            s[0] = round(s[0] - t_min, 3)
        instants = sorted(t["instants"], key=lambda s: s[0])
        for s in instants:
            s[0] = round(s[0] - t_min, 3)
        name = names.get(key, f"tid {key[1]}")
        kernel = key[1] == 0 and name == "kernel"
        out_tracks.append({"name": name, "kind": "kernel" if kernel else "task",
                           "slices": slices, "instants": instants,
                           "maxDur": max((s[1] for s in slices), default=0.0)})
    out_flows = [[round(a - t_min, 3), index[ka], round(b - t_min, 3), index[kb], c]
                 for a, ka, b, kb, c in flows]
    out_counters = []
    for name, points in counters.items():
        points.sort()
        out_counters.append({"name": name,
                             "points": [[round(t - t_min, 3), v] for t, v in points],
                             "max": max(v for _, v in points), "min": min(v for _, v in points)})
    return {"end": round(max(t_max - t_min, 1.0), 3), "strings": strings.items,
            "args": args_table, "tracks": out_tracks, "flows": out_flows,
            "counters": out_counters, "meta": trace.get("otherData") or {}}


def render_html(trace: dict[str, Any] | list[Any], *, title: str = "yieldio trace") -> str:
    """The page for ``trace`` (a loaded Chrome trace: an object or an event list).

    ::

        html = render_html(load_trace("trace.json"), title="my run")
    """
    if isinstance(trace, list):
        trace = {"traceEvents": trace}
    model = build_model(trace)
    data = json.dumps(model, separators=(",", ":"))
    # Inside <script>, "</script>" or "<!--" would end or confuse the element.
    # "<" only occurs inside JSON strings, where "\u003c" means the same.
    data = data.replace("<", "\\u003c")
    tasks = sum(1 for t in model["tracks"] if t["kind"] == "task")
    return (_TEMPLATE.replace("@@TITLE@@", _html.escape(title))
            .replace("@@TASKS@@", str(tasks))
            .replace("@@DATA@@", data, 1))


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@@TITLE@@</title>
<style>
  html, body { margin: 0; padding: 0; height: 100%; overflow: hidden;
               font: 12px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2733; }
  header { padding: 6px 10px; background: #1d2733; color: #e8eef5; display: flex;
           gap: 18px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 14px; margin: 0; font-weight: 600; }
  header .help { color: #9fb0c3; }
  header button { font: inherit; background: #34465a; color: #e8eef5; border: 0;
                  border-radius: 3px; padding: 1px 8px; cursor: pointer; }
  canvas { display: block; cursor: grab; }
  canvas.dragging { cursor: grabbing; }
  #tip { position: fixed; pointer-events: none; background: #fffef5; border: 1px solid #9a8f5a;
         border-radius: 3px; padding: 4px 7px; max-width: 520px; white-space: pre-wrap;
         box-shadow: 0 2px 6px rgba(0,0,0,.25); display: none; font-size: 12px; }
  #tip b { font-weight: 600; }
</style>
</head>
<body data-tasks="@@TASKS@@">
<header id="header">
  <h1>@@TITLE@@</h1>
  <span id="summary"></span>
  <span class="help">wheel: zoom &middot; drag: pan &middot; shift+wheel: scroll rows
    &middot; f: fit &middot; hover: details</span>
  <button id="fit" type="button">fit</button>
</header>
<canvas id="view"></canvas>
<div id="tip"></div>
<script id="trace-data" type="application/json">@@DATA@@</script>
<script>
(function () {
  "use strict";
  var M = JSON.parse(document.getElementById("trace-data").textContent);
  var S = M.strings, A = M.args;
  var header = document.getElementById("header");
  var canvas = document.getElementById("view");
  var ctx = canvas.getContext("2d");
  var tip = document.getElementById("tip");
  var GUTTER = 230, AXIS = 22, ROW = 18, CROW = 34;

  // Layout: counter rows first, then one row per track (kernel, tasks).
  var rows = [], y = 0, tasksInLayout = 0, nSlices = 0;
  M.counters.forEach(function (c) { rows.push({kind: "counter", c: c, y: y, h: CROW}); y += CROW; });
  M.tracks.forEach(function (t) {
    rows.push({kind: "track", t: t, y: y, h: ROW}); y += ROW;
    if (t.kind === "task") tasksInLayout++;
    nSlices += t.slices.length;
  });
  var contentH = y;

  function fmtTime(us) {
    var a = Math.abs(us);
    if (a >= 1e6) return (us / 1e6).toFixed(3) + " s";
    if (a >= 1e3) return (us / 1e3).toFixed(3) + " ms";
    return us.toFixed(1) + " µs";
  }
  document.getElementById("summary").textContent =
    tasksInLayout + " tasks · " + nSlices + " slices · " + M.flows.length + " flows · " +
    fmtTime(M.end) + (M.meta.events_dropped ? " · " + M.meta.events_dropped +
    " oldest events dropped (ring buffer)" : "");

  var PAD = M.end * 0.01, vs = -PAD, ve = M.end + PAD, scrollY = 0, W = 0, H = 0;
  var dpr = window.devicePixelRatio || 1;

  function xOf(t) { return GUTTER + (t - vs) * (W - GUTTER) / (ve - vs); }
  function tOf(x) { return vs + (x - GUTTER) * (ve - vs) / (W - GUTTER); }
  function hue(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return Math.abs(h) % 360;
  }
  var colorCache = {};
  function sliceColor(name, cat) {
    if (cat === "wait") return "#dfe4ea";
    if (cat === "io") return "#b9c6d8";
    var key = cat + "\u0000" + name, c = colorCache[key];
    if (!c) c = colorCache[key] = "hsl(" + hue(name) + ",55%,58%)";
    return c;
  }
  var flowColor = {spawn: "#2e9d5b", join: "#7a4fc4", wakeup: "#e08a1e"};
  // First slice that may overlap t0: slices are sorted by start.
  function firstIndex(arr, t0) {
    var lo = 0, hi = arr.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (arr[mid][0] < t0) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function clampView() {
    var span = ve - vs, minSpan = 0.5;
    if (span < minSpan) { var c = (vs + ve) / 2; vs = c - minSpan / 2; ve = c + minSpan / 2; }
    var maxScroll = Math.max(0, contentH - (H - AXIS));
    scrollY = Math.min(Math.max(0, scrollY), maxScroll);
  }

  function fmtTick(us, step) {
    var unit = step >= 1e5 ? 1e6 : step >= 100 ? 1e3 : 1, name = unit === 1e6 ? " s" : unit === 1e3 ? " ms" : " µs";
    var dec = Math.max(0, Math.ceil(-Math.log10(step / unit) - 1e-9));
    return us === 0 ? "0" : (us / unit).toFixed(Math.min(dec, 6)) + name;
  }
  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  var stats = {slices: 0, rows: 0};
  function drawTrack(r, top) {
    var t = r.t, sl = t.slices, n = sl.length;
    var i = firstIndex(sl, vs - t.maxDur);
    var lastX1 = -1, lastColor = null, pendX0 = 0, pendX1 = -1;
    function flush() {
      if (pendX1 >= pendX0 && lastColor) {
        ctx.fillStyle = lastColor;
        ctx.fillRect(pendX0, top + 2, Math.max(1, pendX1 - pendX0), ROW - 4);
      }
    }
    for (; i < n; i++) {
      var s = sl[i];
      if (s[0] > ve) break;
      if (s[0] + s[1] < vs) continue;
      var x0 = Math.max(GUTTER, xOf(s[0])), x1 = Math.min(W, xOf(s[0] + s[1]));
      var name = S[s[2]], cat = S[s[3]], color = sliceColor(name, cat);
      stats.slices++;
      if (x1 - x0 < 3) {
        // Too thin to read: merge neighbours of one colour into one rect.
        if (color === lastColor && x0 <= pendX1 + 1) { pendX1 = Math.max(pendX1, x1); continue; }
        flush(); lastColor = color; pendX0 = x0; pendX1 = Math.max(x1, x0 + 1); continue;
      }
      flush(); lastColor = null; pendX1 = -1;
      ctx.fillStyle = color;
      ctx.fillRect(x0, top + 2, x1 - x0, ROW - 4);
      if (cat === "wait") { ctx.strokeStyle = "#aab4c0"; ctx.strokeRect(x0 + .5, top + 2.5, x1 - x0 - 1, ROW - 5); }
      if (x1 - x0 > 30) {
        ctx.save(); ctx.beginPath(); ctx.rect(x0 + 2, top, x1 - x0 - 4, ROW); ctx.clip();
        ctx.fillStyle = cat === "wait" || cat === "io" ? "#4a5664" : "#10161d";
        ctx.fillText(name, x0 + 3, top + ROW / 2 + 4);
        ctx.restore();
      }
      lastX1 = x1;
    }
    flush();
    var ins = t.instants;
    ctx.fillStyle = "#c23b3b";
    for (var j = firstIndex(ins, vs); j < ins.length && ins[j][0] <= ve; j++) {
      var xi = xOf(ins[j][0]);
      ctx.beginPath(); ctx.moveTo(xi, top + ROW - 3); ctx.lineTo(xi - 4, top + ROW + 1);
      ctx.lineTo(xi + 4, top + ROW + 1); ctx.fill();
    }
    return lastX1;
  }

  function drawCounter(r, top) {
    var c = r.c, p = c.points, span = (c.max - Math.min(0, c.min)) || 1, base = Math.min(0, c.min);
    var i = Math.max(0, firstIndex(p, vs) - 1);
    ctx.beginPath();
    var first = true, lastY = top + CROW - 3;
    for (; i < p.length; i++) {
      var x = Math.max(GUTTER, xOf(p[i][0]));
      var yv = top + CROW - 3 - (p[i][1] - base) / span * (CROW - 8);
      if (first) { ctx.moveTo(x, yv); first = false; } else { ctx.lineTo(x, lastY); ctx.lineTo(x, yv); }
      lastY = yv;
      if (p[i][0] > ve) break;
    }
    if (!first) {
      ctx.lineTo(W, lastY); ctx.strokeStyle = "#2f6db5"; ctx.lineWidth = 1.5; ctx.stroke(); ctx.lineWidth = 1;
      ctx.lineTo(W, top + CROW - 3); ctx.lineTo(GUTTER, top + CROW - 3); ctx.closePath();
      ctx.fillStyle = "rgba(47,109,181,0.12)"; ctx.fill();
    }
  }

  function draw() {
    stats.slices = 0; stats.rows = 0;
    ctx.clearRect(0, 0, W, H);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "alphabetic";
    // Rows.
    var yTop = AXIS - scrollY;
    for (var k = 0; k < rows.length; k++) {
      var r = rows[k], top = yTop + r.y;
      if (top + r.h < AXIS || top > H) continue;
      stats.rows++;
      ctx.fillStyle = k % 2 ? "#f6f8fa" : "#ffffff";
      ctx.fillRect(GUTTER, top, W - GUTTER, r.h);
      if (r.kind === "track") drawTrack(r, top); else drawCounter(r, top);
    }
    // Flows between rows (only those with an end in view).
    var drawn = 0;
    for (var f = 0; f < M.flows.length && drawn < 3000; f++) {
      var fl = M.flows[f];
      if (fl[2] < vs || fl[0] > ve) continue;
      var ra = rows[M.counters.length + fl[1]], rb = rows[M.counters.length + fl[3]];
      var ya = yTop + ra.y + ROW / 2, yb = yTop + rb.y + ROW / 2;
      if ((ya < AXIS && yb < AXIS) || (ya > H && yb > H)) continue;
      var xa = xOf(fl[0]), xb = xOf(fl[2]);
      ctx.strokeStyle = flowColor[S[fl[4]]] || "#666";
      ctx.beginPath(); ctx.moveTo(xa, ya);
      ctx.bezierCurveTo(xa + 12, ya, xb - 12, yb, xb, yb); ctx.stroke();
      ctx.beginPath(); ctx.arc(xb, yb, 2, 0, 6.3); ctx.fillStyle = ctx.strokeStyle; ctx.fill();
      drawn++;
    }
    // Gutter with row names, drawn over anything that spilled left.
    ctx.fillStyle = "#eef1f5"; ctx.fillRect(0, AXIS, GUTTER, H - AXIS);
    for (var g = 0; g < rows.length; g++) {
      var rr = rows[g], tt = yTop + rr.y;
      if (tt + rr.h < AXIS || tt > H) continue;
      var label = rr.kind === "track" ? rr.t.name : rr.c.name + " (max " + rr.c.max + ")";
      ctx.fillStyle = rr.kind === "track" && rr.t.kind === "kernel" ? "#6b4b16" :
                      rr.kind === "counter" ? "#2f6db5" : "#1d2733";
      ctx.save(); ctx.beginPath(); ctx.rect(0, tt, GUTTER - 6, rr.h); ctx.clip();
      ctx.fillText(label, 6, tt + Math.min(rr.h, ROW) / 2 + 4);
      ctx.restore();
      ctx.fillStyle = "#dde2e8"; ctx.fillRect(0, tt + rr.h - 1, W, 1);
    }
    ctx.fillStyle = "#c9d1db"; ctx.fillRect(GUTTER - 1, AXIS, 1, H - AXIS);
    // Time axis.
    ctx.fillStyle = "#f0f3f7"; ctx.fillRect(0, 0, W, AXIS);
    ctx.fillStyle = "#1d2733"; ctx.fillText("time from start", 6, 15);
    var step = niceStep((ve - vs) / Math.max(1, (W - GUTTER) / 110));
    ctx.strokeStyle = "#c9d1db";
    for (var tk = Math.ceil(vs / step) * step; tk <= ve; tk += step) {
      var xt = xOf(tk);
      ctx.beginPath(); ctx.moveTo(xt + .5, AXIS - 6); ctx.lineTo(xt + .5, AXIS); ctx.stroke();
      ctx.fillText(fmtTick(tk, step), xt + 3, 14);
    }
    ctx.fillStyle = "#c9d1db"; ctx.fillRect(0, AXIS - 1, W, 1);
  }

  function resize() {
    W = window.innerWidth; H = Math.max(100, window.innerHeight - header.offsetHeight);
    canvas.style.width = W + "px"; canvas.style.height = H + "px";
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    clampView(); draw();
  }

  // -- interaction --------------------------------------------------------------
  function fit() { vs = -PAD; ve = M.end + PAD; clampView(); draw(); }
  function zoomAt(x, factor) {
    var t = x > GUTTER ? tOf(x) : (vs + ve) / 2;
    vs = t - (t - vs) * factor; ve = t + (ve - t) * factor; clampView(); draw();
  }
  function pan(dx) { var dt = dx * (ve - vs) / (W - GUTTER); vs -= dt; ve -= dt; draw(); }
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault(); hideTip();
    if (e.shiftKey) { scrollY += e.deltaY || e.deltaX; clampView(); draw(); return; }
    if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) { pan(-e.deltaX); return; }
    zoomAt(e.offsetX, Math.exp(e.deltaY * 0.0025));
  }, {passive: false});
  var drag = null;
  canvas.addEventListener("mousedown", function (e) {
    drag = {x: e.clientX, y: e.clientY}; canvas.classList.add("dragging"); hideTip();
  });
  window.addEventListener("mouseup", function () { drag = null; canvas.classList.remove("dragging"); });
  window.addEventListener("mousemove", function (e) {
    if (drag) {
      pan(e.clientX - drag.x); scrollY -= e.clientY - drag.y; clampView(); draw();
      drag = {x: e.clientX, y: e.clientY}; return;
    }
    if (e.target === canvas) hover(e); else hideTip();
  });
  canvas.addEventListener("mouseleave", hideTip);
  window.addEventListener("keydown", function (e) {
    var k = e.key;
    if (k === "f" || k === "0") fit();
    else if (k === "+" || k === "=" || k === "w") zoomAt(W / 2 + GUTTER / 2, 0.7);
    else if (k === "-" || k === "s") zoomAt(W / 2 + GUTTER / 2, 1 / 0.7);
    else if (k === "ArrowLeft" || k === "a") pan(100);
    else if (k === "ArrowRight" || k === "d") pan(-100);
    else if (k === "ArrowUp") { scrollY -= ROW * 3; clampView(); draw(); }
    else if (k === "ArrowDown") { scrollY += ROW * 3; clampView(); draw(); }
  });
  document.getElementById("fit").addEventListener("click", fit);
  window.addEventListener("resize", resize);

  function hideTip() { tip.style.display = "none"; }
  function esc(s) { return String(s).replace(/[&<>]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c]; }); }
  function hover(e) {
    var x = e.offsetX, yy = e.offsetY + scrollY - AXIS;
    if (x < GUTTER || e.offsetY < AXIS) { hideTip(); return; }
    var row = null;
    for (var k = 0; k < rows.length; k++) if (yy >= rows[k].y && yy < rows[k].y + rows[k].h) { row = rows[k]; break; }
    if (!row) { hideTip(); return; }
    var t = tOf(x), tol = 3 * (ve - vs) / (W - GUTTER), html = null;
    if (row.kind === "counter") {
      var p = row.c.points, i = firstIndex(p, t + 1e-9) - 1;
      if (i >= 0) html = "<b>" + esc(row.c.name) + "</b> = " + p[i][1] + "\nat " + fmtTime(p[i][0]);
    } else {
      var sl = row.t.slices, best = null;
      for (var j = firstIndex(sl, t - tol - row.t.maxDur); j < sl.length && sl[j][0] <= t + tol; j++) {
        var s = sl[j];
        if (s[0] + s[1] >= t - tol && (!best || s[1] < best[1])) best = s;
      }
      var ins = row.t.instants, near = null;
      for (var m = firstIndex(ins, t - tol); m < ins.length && ins[m][0] <= t + tol; m++) near = ins[m];
      if (near) {
        html = "<b>" + esc(S[near[1]]) + "</b> (" + esc(row.t.name) + ")\nat " + fmtTime(near[0]);
        if (near[2] >= 0) html += "\n" + esc(JSON.stringify(A[near[2]]));
      } else if (best) {
        var cat = S[best[3]];
        html = "<b>" + esc(S[best[2]]) + "</b>\n" + (cat === "wait" ? "waiting" : cat === "io" ?
               "kernel blocked in epoll_wait" : "step of " + esc(row.t.name)) +
               "\nstart " + fmtTime(best[0]) + ", duration " + fmtTime(best[1]);
        if (best[4] >= 0) html += "\n" + esc(JSON.stringify(A[best[4]]));
      }
    }
    if (!html) { hideTip(); return; }
    tip.innerHTML = html; tip.style.display = "block";
    var tx = e.clientX + 14, ty = e.clientY + 14;
    if (tx + tip.offsetWidth > window.innerWidth) tx = e.clientX - tip.offsetWidth - 8;
    if (ty + tip.offsetHeight > window.innerHeight) ty = e.clientY - tip.offsetHeight - 8;
    tip.style.left = tx + "px"; tip.style.top = ty + "px";
  }

  resize();
  document.body.setAttribute("data-tasks-drawn", String(tasksInLayout));
  document.body.setAttribute("data-rows-drawn", String(stats.rows));
  document.body.setAttribute("data-slices-drawn", String(stats.slices));
})();
</script>
</body>
</html>
"""
