"""Properties of the core semantics, checked on random programs in virtual time.

1. Random trees of nested ``TaskGroup`` s and ``CancelScope`` s (some
   shielded, some with deadlines), whose leaves sleep, raise, or cancel an
   enclosing scope after a delay, are run under the autojump clock and
   compared with a small model of §4 and §6 of docs/architecture.md: which
   leaves finish (and when), which are cancelled (and when), what each
   scope's ``cancelled_caught`` says, what comes out of the run (in which
   ``ExceptionGroup`` structure) and the final virtual time. The same
   programs also run under seeded schedules, where the model must not
   depend on the order of tasks woken at the same instant.
2. ``tg.start()`` with a child that calls ``started()`` at a random time,
   while the caller has a timeout and the group may be cancelled.
3. Lock / Semaphore / Condition / Event / Queue under many tasks with random
   timeouts: mutual exclusion, FIFO hand-over, no lost wake-up, no leaked
   permit, no lost or duplicated item, and a broken Lock.

Every run must end without ``Deadlock``. All are deterministic
(``derandomize=True``, fixed seeds).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import yieldio
from yieldio.testing import VirtualClock

pytestmark = pytest.mark.timeout(120)

# YIELDIO_PROPERTY_EXAMPLES=2000 for a longer hunt.
SETTINGS = settings(max_examples=int(os.environ.get("YIELDIO_PROPERTY_EXAMPLES", "150")),
                    deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def vrun(fn: Any, *args: Any, seed: int | None = None) -> Any:
    return yieldio.run(fn, *args, clock=VirtualClock(autojump=True), seed=seed)


# ---------------------------------------------------------------------------
# 1. Trees of task groups and cancel scopes
# ---------------------------------------------------------------------------
# The program language (tuples, so that Hypothesis shows them readably):
#   ("sleep", d)                      await sleep(d), d a whole number >= 1
#   ("swallow", d)                    the same, but a Cancelled is caught and dropped
#                                     (cancellation is level-triggered: the next
#                                     checkpoint raises it again)
#   ("checkpoint",)                   await checkpoint()
#   ("raise", b)                      await sleep(b + eps); raise ValueError(id)
#   ("cancel", b, up)                 await sleep(b + eps); cancel the scope `up`
#                                     levels out (0: the innermost enclosing one;
#                                     a child task's own level is task.cancel())
#   ("scope", b | None, shield, body) with move_on_after(b + eps, shield=...)
#                                     (b == -1: move_on_after(0))
#   ("fail", b, shield, body)         with fail_after(b + eps, shield=...)
#   ("group", (child bodies), body)   async with TaskGroup(): spawn each child
#                                     body, then run the group's own body
# Every delay that can cancel something gets its own ``eps`` (a distinct power
# of two), so no sleep ever ends at the very instant a cancellation happens:
# an instant is shared only by the consequences of one event, whose order the
# model works out (or, where it cannot, rejects the example as ambiguous).


@st.composite
def bodies(draw: st.DrawFn, depth: int) -> tuple[Any, ...]:
    n = draw(st.integers(1, 3))
    return tuple(draw(nodes(depth)) for _ in range(n))


@st.composite
def nodes(draw: st.DrawFn, depth: int) -> Any:
    kinds = ["sleep", "sleep", "raise", "cancel", "cancel", "swallow", "checkpoint"]
    if depth < 3:
        kinds += ["scope", "scope", "group", "group"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("sleep", "swallow"):
        return (kind, draw(st.integers(1, 3)))
    if kind == "checkpoint":
        return ("checkpoint",)
    if kind == "raise":
        return ("raise", draw(st.integers(0, 3)))
    if kind == "cancel":
        return ("cancel", draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    if kind in ("scope", "fail"):
        rel = draw(st.none() | st.integers(-1, 4))  # -1: move_on_after(0)
        kind = draw(st.sampled_from(["scope", "scope", "fail"])) if rel is not None else "scope"
        return (kind, rel, draw(st.booleans()), draw(bodies(depth + 1)))
    children = tuple(draw(bodies(depth + 1)) for _ in range(draw(st.integers(0, 3))))
    return ("group", children, draw(bodies(depth + 1)))


programs = bodies(0).map(lambda body: ("scope", None, False, body))


@dataclass
class Node:
    kind: str
    id: int
    delay: Fraction = Fraction(0)        # sleep / raise / cancel; a scope's relative deadline
    up: int = 0
    shield: bool = False
    body: list[Node] = field(default_factory=list)
    children: list[tuple[int, list[Node]]] = field(default_factory=list)  # (task root id, body)
    has_deadline: bool = False
    fail: bool = False


def compile_program(prog: Any) -> tuple[Node, int]:
    """Number the nodes and give each cancelling delay its own eps."""
    counter = [0]
    eps_counter = [0]

    def eps() -> Fraction:
        eps_counter[0] += 1
        return Fraction(1, 2 ** (4 + eps_counter[0]))

    def comp(t: Any) -> Node:
        counter[0] += 1
        nid = counter[0]
        kind = t[0]
        if kind in ("sleep", "swallow"):
            return Node(kind, nid, Fraction(t[1]))
        if kind == "checkpoint":
            return Node(kind, nid)
        if kind == "raise":
            return Node("raise", nid, t[1] + eps())
        if kind == "cancel":
            return Node("cancel", nid, t[1] + eps(), up=t[2])
        if kind in ("scope", "fail"):
            has = t[1] is not None
            rel = Fraction(0) if not has or t[1] < 0 else t[1] + eps()
            return Node("scope", nid, rel, shield=t[2], body=[comp(x) for x in t[3]],
                        has_deadline=has, fail=kind == "fail")

        def child(body: Any) -> tuple[int, list[Node]]:
            counter[0] += 1
            return (counter[0], [comp(x) for x in body])

        return Node("group", nid, children=[child(ch) for ch in t[1]],
                    body=[comp(x) for x in t[2]])

    root = comp(prog)
    return root, eps_counter[0]


# -- the real run -------------------------------------------------------------

def run_real(root: Node, seed: int | None) -> dict[str, Any]:
    leaves: dict[int, tuple[str, float]] = {}
    caught: dict[int, bool] = {}

    async def run_body(body: list[Node], scopes: list[Any]) -> None:
        for node in body:
            await run_node(node, scopes)

    async def leaf_sleep(node: Node) -> None:
        try:
            await yieldio.sleep(float(node.delay))
        except yieldio.Cancelled:
            leaves[node.id] = ("cancelled", yieldio.current_time())
            raise

    async def run_node(node: Node, scopes: list[Any]) -> None:
        if node.kind == "sleep":
            await leaf_sleep(node)
            leaves[node.id] = ("done", yieldio.current_time())
        elif node.kind == "swallow":
            try:
                await leaf_sleep(node)
            except yieldio.Cancelled:
                return
            leaves[node.id] = ("done", yieldio.current_time())
        elif node.kind == "checkpoint":
            await yieldio.checkpoint()
        elif node.kind == "raise":
            await leaf_sleep(node)
            leaves[node.id] = ("raised", yieldio.current_time())
            raise ValueError(node.id)
        elif node.kind == "cancel":
            await leaf_sleep(node)
            leaves[node.id] = ("done", yieldio.current_time())
            scopes[-1 - node.up % len(scopes)].cancel()
        elif node.kind == "scope":
            rel = float(node.delay) if node.has_deadline else math.inf
            make = yieldio.fail_after if node.fail else yieldio.move_on_after
            scope = make(rel, shield=node.shield)
            try:
                with scope:
                    await run_body(node.body, scopes + [scope])
            finally:
                caught[node.id] = scope.cancelled_caught
        else:
            tg = yieldio.TaskGroup()
            try:
                async with tg:
                    inner = scopes + [tg.cancel_scope]
                    for _, child in node.children:
                        handle = TaskHandle()
                        handle.task = tg.spawn(run_body, child, inner + [handle])
                    await run_body(node.body, inner)
            finally:
                caught[node.id] = tg.cancel_scope.cancelled_caught

    async def main() -> float:
        await run_node(root, [])
        return yieldio.current_time()

    out: Any
    try:
        end = vrun(main, seed=seed)
        out = None
    except BaseException as exc:  # noqa: BLE001 - normalised below
        out = normalise(exc)
        end = None
    return {"leaves": leaves, "caught": caught, "out": out, "end": end}


class TaskHandle:
    """Stands for a child task's own root scope: its ``cancel()`` is ``task.cancel()``."""

    task: yieldio.Task[Any]

    def cancel(self) -> None:
        self.task.cancel()


def normalise(exc: BaseException) -> Any:
    if isinstance(exc, BaseExceptionGroup):
        return ("EG", type(exc).__name__,
                tuple(sorted((normalise(e) for e in exc.exceptions), key=repr)))
    if type(exc) is ValueError:
        return exc.args[0]
    if type(exc) is TimeoutError:
        return "TimeoutError"
    return (type(exc).__name__, str(exc))


# -- the model ----------------------------------------------------------------

class Ambiguous(Exception):
    """The outcome depends on the order of tasks run at the same instant."""


@dataclass(frozen=True)
class P:
    """A point in the run: virtual time, batch within that instant, task, step in the task.

    Points of different tasks in the same batch are unordered (Ambiguous);
    a task's own steps are ordered.
    """

    t: Fraction
    k: int
    tid: tuple[int, ...] = ()
    seq: int = 0

    def before(self, other: P) -> bool:
        """self < other; Ambiguous if they are in the same batch of different tasks."""
        if (self.t, self.k) != (other.t, other.k):
            if self.t == other.t and self.tid != other.tid:
                _TIES[0] = True
            return (self.t, self.k) < (other.t, other.k)
        if self.tid != other.tid:
            raise Ambiguous(f"{self} vs {other}")
        return self.seq < other.seq

    def key(self) -> tuple[Any, ...]:
        return (self.t, self.k, self.tid, self.seq)


_TIES = [False]  # did the model order two points of one instant?
NEVER = P(Fraction(10 ** 9), 0)


class Task:
    def __init__(self, tid: tuple[int, ...], t: Fraction, k: int) -> None:
        self.tid = tid
        self.t = t
        self.k = k
        self.seq = 0

    def now(self) -> P:
        self.seq += 1
        return P(self.t, self.k, self.tid, self.seq)

    def resume(self, p: P) -> None:
        """The task runs next in the batch after ``p``."""
        self.t, self.k, self.seq = p.t, p.k + 1, 0


Chain = tuple[tuple[int, bool], ...]  # (scope id, shield), innermost last


class Model:
    def __init__(self, root: Node, cancels: dict[int, tuple[P, str]]) -> None:
        self.root = root
        self.C = {sid: p for sid, (p, _) in cancels.items()}
        self.source = {sid: src for sid, (_, src) in cancels.items()}
        self.requests: dict[int, tuple[P, str]] = {}
        self.leaves: dict[int, tuple[str, float]] = {}
        self.caught: dict[int, bool] = {}

    def request(self, sid: int, p: P, source: str = "cancel") -> None:
        old = self.requests.get(sid)
        if old is None or p.key() < old[0].key():
            self.requests[sid] = (p, source)

    def ec(self, chain: Chain) -> P:
        """When the code at ``chain`` is (effectively) cancelled: its nearest cancel to a shield."""
        best = NEVER
        for sid, shield in reversed(chain):
            c = self.C.get(sid)
            if c is not None and c.key() < best.key():
                best = c
            if shield:
                break
        return best

    def cancelled_at(self, chain: Chain, p: P) -> bool:
        c = self.ec(chain)
        return c is not NEVER and c.before(p)

    # Outcomes: None, "cancel", or ("err", normalised exception)
    def body(self, body: list[Node], chain: Chain, task: Task) -> Any:
        for node in body:
            out = self.node(node, chain, task)
            if out is not None:
                return out
        return None

    def sleep(self, node: Node, chain: Chain, task: Task) -> bool:
        start = task.now()
        if self.cancelled_at(chain, start):
            self.leaves[node.id] = ("cancelled", float(start.t))
            return False
        wake = P(task.t + node.delay, 1, task.tid, 0)
        c = self.ec(chain)
        if c is not NEVER and c.before(wake):
            task.resume(c)
            self.leaves[node.id] = ("cancelled", float(c.t))
            return False
        task.t, task.k, task.seq = wake.t, wake.k, 0
        return True

    def node(self, node: Node, chain: Chain, task: Task) -> Any:
        if node.kind == "checkpoint":
            start = task.now()
            if self.cancelled_at(chain, start):
                return "cancel"
            task.resume(start)
            return None
        if node.kind in ("sleep", "raise", "cancel", "swallow"):
            if not self.sleep(node, chain, task):
                return None if node.kind == "swallow" else "cancel"
            if node.kind == "raise":
                self.leaves[node.id] = ("raised", float(task.t))
                return ("err", node.id)
            self.leaves[node.id] = ("done", float(task.t))
            if node.kind == "cancel":
                sid = chain[-1 - node.up % len(chain)][0]
                self.request(sid, task.now())
            return None
        if node.kind == "scope":
            entered = task.now()
            if node.has_deadline:
                # move_on_after(0) cancels the scope as it is entered
                deadline = entered if node.delay == 0 else P(entered.t + node.delay, 0)
            inner = chain + ((node.id, node.shield),)
            out = self.body(node.body, inner, task)
            here = task.now()
            if node.has_deadline and deadline.before(here):
                self.request(node.id, deadline, "deadline")
            caught = False
            if out == "cancel":
                eff = self.cancelled_at(inner, here)
                assert eff, "a Cancelled with no cancelled scope"
                if node.shield or not self.cancelled_at(chain, here):
                    caught = True
                    out = None
                    if node.fail and self.source.get(node.id) == "deadline":
                        out = ("err", "TimeoutError")
            self.caught[node.id] = caught
            return out
        return self.group(node, chain, task)

    def group(self, node: Node, chain: Chain, task: Task) -> Any:
        inner = chain + ((node.id, False),)
        spawn = task.now()
        ends: list[tuple[P, Any]] = []
        for root_id, child in node.children:
            ct = Task(task.tid + (root_id,), spawn.t, spawn.k + 1)
            out = self.body(child, inner + ((root_id, False),), ct)
            end = ct.now()
            if isinstance(out, tuple):
                self.request(node.id, end)
            if out == "cancel" and self.cancelled_at(((root_id, True),), end) \
                    and not self.cancelled_at(inner, end):
                out = "own-cancel"  # only its task.cancel(): not the group's concern
            ends.append((end, out))
        out = self.body(node.body, inner, task)
        body_end = task.now()
        if isinstance(out, tuple):
            self.request(node.id, body_end)
        late = [e for e, _ in ends if body_end.before(e)]
        if late:
            task.resume(max(late, key=P.key))
        here = task.now()
        outer = self.cancelled_at(chain, here)
        own = isinstance(out, tuple) or self.cancelled_at(((node.id, True),), here)
        child_cancelled = any(o == "cancel" for _, o in ends)
        self.caught[node.id] = bool((child_cancelled or out == "cancel") and own and not outer)
        failures = ([out[1]] if isinstance(out, tuple) else [])
        failures += [o[1] for e, o in sorted(ends, key=lambda eo: eo[0].key())
                     if isinstance(o, tuple)]
        if failures:
            return ("err", ("EG", "ExceptionGroup", tuple(sorted(failures, key=repr))))
        if out == "cancel":
            return "cancel" if outer else None
        if outer and child_cancelled:
            return "cancel"
        return None

    def run(self) -> dict[str, Any]:
        task = Task((), Fraction(0), 1)
        out = self.node(self.root, (), task)
        assert out != "cancel"
        return {"leaves": self.leaves, "caught": self.caught,
                "out": out[1] if isinstance(out, tuple) else None,
                "end": None if isinstance(out, tuple) else float(task.t)}


def model(root: Node) -> tuple[dict[str, Any], bool]:
    """The expected outcome, and whether it relied on the order within one instant.

    The cancellation times are a fixed point: each round runs the model with
    the cancellations known so far and adopts the earliest new one (nothing
    before it can have been different).
    """
    _TIES[0] = False
    cancels: dict[int, tuple[P, str]] = {}
    for _ in range(200):
        _TIES[0] = False
        m = Model(root, cancels)
        result = m.run()
        new = [(p.key(), sid, (p, src)) for sid, (p, src) in m.requests.items()
               if sid not in cancels or p.key() < cancels[sid][0].key()]
        if not new:
            assert m.requests == cancels, "the model's fixed point is inconsistent"
            return result, _TIES[0]
        _, sid, req = min(new, key=lambda x: (x[0], x[1]))
        cancels = {**cancels, sid: req}
    raise AssertionError("model did not settle")


def check_tree(prog: Any, seeds: tuple[int | None, ...]) -> None:
    root, _ = compile_program(prog)
    try:
        expected, ties = model(root)
    except Ambiguous:
        assume(False)
        return
    # Seeded runs may hold a task back a batch: compare them only when the
    # model did not order two tasks' steps within one instant by batch.
    for seed in seeds if not ties else seeds[:1]:
        got = run_real(root, seed)
        assert got == expected, f"seed={seed}\n{root}"


@pytest.mark.timeout(60)
@SETTINGS
@given(programs)
def test_tree_matches_model(prog: Any) -> None:
    check_tree(prog, (None, 1, 2))


# ---------------------------------------------------------------------------
# 2. tg.start(): the child runs under the caller's scopes until started()
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StartCase:
    timeout: Fraction | None      # the caller's move_on_after around start()
    group_cancel: Fraction | None  # a sibling cancels the group then
    started_at: Fraction           # the child calls started() (or fails) then
    after: int                     # and then runs this long
    mode: str                      # "started", "raise" before started(), "return" without it
    inside: bool                   # the caller is the group's body (else a task outside it)


start_cases = st.builds(
    StartCase,
    timeout=st.none() | st.integers(0, 4).map(lambda n: n + Fraction(1, 8)),
    group_cancel=st.none() | st.integers(0, 6).map(lambda n: n + Fraction(1, 16)),
    started_at=st.integers(0, 4).map(lambda n: n + Fraction(1, 32)),
    after=st.integers(1, 4),
    mode=st.sampled_from(["started", "started", "raise", "return"]),
    inside=st.booleans(),
)


def start_real(c: StartCase, seed: int | None) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    now = yieldio.current_time

    async def child(task_status: yieldio.TaskStatus) -> None:
        try:
            await yieldio.sleep(float(c.started_at))
        except yieldio.Cancelled:
            rec["pre"] = ("cancelled", now())
            raise
        if c.mode == "raise":
            raise ValueError("before started()")
        if c.mode == "return":
            return
        task_status.started("v")
        rec["pre"] = ("started", now())
        try:
            await yieldio.sleep(c.after)
        except yieldio.Cancelled:
            rec["post"] = ("cancelled", now())
            raise
        rec["post"] = ("done", now())

    async def caller(tg: yieldio.TaskGroup, opened: yieldio.Event) -> None:
        timeout = float(c.timeout) if c.timeout is not None else math.inf
        with yieldio.move_on_after(timeout) as cs:
            opened.set()
            try:
                v = await tg.start(child)
                rec["caller"] = ("value", v, now())
            except yieldio.Cancelled:
                rec["caller"] = ("cancelled", now())
                raise
            except Exception as e:
                rec["caller"] = (type(e).__name__, now())
        rec["cs"] = cs.cancelled_caught

    async def canceller(tg: yieldio.TaskGroup) -> None:
        assert c.group_cancel is not None
        await yieldio.sleep(float(c.group_cancel))
        tg.cancel_scope.cancel()

    async def main() -> float:
        opened = yieldio.Event()
        if c.inside:
            async with yieldio.TaskGroup() as tg:
                if c.group_cancel is not None:
                    tg.spawn(canceller, tg)
                await caller(tg, opened)
        else:
            async with yieldio.TaskGroup() as outer:
                async with yieldio.TaskGroup() as tg:
                    if c.group_cancel is not None:
                        tg.spawn(canceller, tg)
                    outer.spawn(caller, tg, opened)
                    await opened.wait()  # start() has spawned the child, which is not tg's yet
        rec["tg"] = tg.cancel_scope.cancelled_caught
        return now()

    rec["end"] = vrun(main, seed=seed)
    return rec


def start_model(c: StartCase) -> dict[str, Any]:
    inf = Fraction(10 ** 9)
    T = c.timeout if c.timeout is not None else inf
    G = c.group_cancel if c.group_cancel is not None else inf
    S = c.started_at
    rec: dict[str, Any] = {}
    pre_cancel = min(T, G) if c.inside else T  # the caller's scopes
    tg_caught = False
    if pre_cancel < S:
        rec["pre"] = ("cancelled", float(pre_cancel))
        rec["caller"] = ("cancelled", float(pre_cancel))
        if T == pre_cancel:
            rec["cs"] = True  # else the Cancelled is the group's, and leaves the with block
        child_end = pre_cancel
        # The caller's Cancelled reaches the group (its body) only when the
        # group's scope is the one cancelled; a child cancelled by the caller's
        # timeout before started() was never the group's (as in trio, where it
        # runs in a nursery of start()'s own).
        tg_caught = c.inside and G < T
    else:
        rec["cs"] = False
        child_end = S
        if c.mode == "raise":
            rec["caller"] = ("ValueError", float(S))
        elif c.mode == "return":
            rec["caller"] = ("RuntimeError", float(S))
        elif not c.inside and (G if G != inf else 0) < S:
            # The group closed (its body and the canceller are done) before
            # the child outside it started: started() raises, as in trio.
            rec["caller"] = ("RuntimeError", float(S))
        else:
            rec["pre"] = ("started", float(S))
            rec["caller"] = ("value", "v", float(S))
            if G < S:
                rec["post"] = ("cancelled", float(S))
                child_end = S
                tg_caught = True
            elif G < S + c.after:
                rec["post"] = ("cancelled", float(G))
                child_end = G
                tg_caught = True
            else:
                rec["post"] = ("done", float(S + c.after))
                child_end = S + c.after
    rec["tg"] = tg_caught
    rec["end"] = float(max(child_end, G if G != inf else 0))
    return rec


@pytest.mark.timeout(60)
@SETTINGS
@given(start_cases)
def test_start_matches_model(c: StartCase) -> None:
    expected = start_model(c)
    for seed in (None, 1, 2):
        assert start_real(c, seed) == expected, f"seed={seed}"


# ---------------------------------------------------------------------------
# 3. Synchronisation primitives and queues under random timeouts
# ---------------------------------------------------------------------------
# Each task's plan is a list of (delay before, timeout | None, hold time):
# whole-number delays and holds, timeouts with an odd 1/8 (so that no timeout
# expires at the very instant a holder releases).

plans = st.lists(
    st.lists(st.tuples(st.integers(0, 3),
                       st.none() | st.integers(0, 3).map(lambda n: n + 0.125),
                       st.integers(0, 2)), min_size=1, max_size=4),
    min_size=1, max_size=6)
seeds = st.sampled_from([None, 1, 2, 3])


def run_checked(main: Any, seed: int | None) -> Any:
    try:
        return vrun(main, seed=seed)
    except yieldio.Deadlock as exc:  # pragma: no cover - the property fails
        raise AssertionError(f"unexpected Deadlock: {exc}") from None


@pytest.mark.parametrize("capacity", [1, 2, 3])
@SETTINGS
@given(plans=plans, seed=seeds)
def test_lock_and_semaphore_exclusion_fifo_no_leaked_permit(
        capacity: int, plans: list[Any], seed: int | None) -> None:
    prim: Any = yieldio.Lock() if capacity == 1 else yieldio.Semaphore(capacity)
    log: list[tuple[str, int, int]] = []
    holders: set[tuple[int, int]] = set()
    peak = [0]
    request_no: dict[Any, int] = {}  # task -> the number of its latest request

    async def worker(i: int, plan: list[Any]) -> None:
        for j, (delay, timeout, hold) in enumerate(plan):
            await yieldio.sleep(delay)
            with yieldio.move_on_after(math.inf if timeout is None else timeout):
                me = yieldio.current_task()
                request_no[me] = n = len(log)
                log.append(("req", i, j))  # no checkpoint before acquire() enqueues us
                await prim.acquire()
                log.append(("got", i, j))
                # FIFO, seen from the winner: nobody who asked earlier still waits.
                assert all(request_no[w] > n for w in prim._waiters), "a later request won"
                holders.add((i, j))
                peak[0] = max(peak[0], len(holders))
                try:
                    await yieldio.sleep(hold)
                finally:
                    holders.discard((i, j))
                    prim.release()

    async def main() -> None:
        async with yieldio.TaskGroup() as tg:
            for i, plan in enumerate(plans):
                tg.spawn(worker, i, plan)

    run_checked(main, seed)
    assert peak[0] <= capacity
    got = [(i, j) for kind, i, j in log if kind == "got"]
    requested = [(i, j) for kind, i, j in log if kind == "req"]
    # FIFO: the acquisitions come in the order of the requests that were not
    # given up (a cancelled waiter never jumps the queue, nobody barges in).
    # What is logged is when a task runs on after acquire(), not when it was
    # granted: with several permits, a waiter granted a permit may run on
    # after a task that took the next one on the fast path in the same batch,
    # so this order is checked for the Lock only (the Semaphore's FIFO is
    # checked by the winner's look at the waiters above).
    if capacity == 1:
        assert got == [r for r in requested if r in set(got)]
    if capacity == 1:
        assert not prim.locked()
    else:
        assert prim.value == capacity  # no permit leaked by a cancelled waiter


@SETTINGS
@given(plans=plans, leak_at=st.integers(0, 4), seed=seeds)
def test_lock_broken_by_an_owner_that_ends_holding_it(
        plans: list[Any], leak_at: int, seed: int | None) -> None:
    lock = yieldio.Lock()
    outcome: dict[tuple[int, int], tuple[str, float]] = {}
    leaked = [math.inf]

    async def leaker() -> None:
        await yieldio.sleep(leak_at + 0.5)
        await lock.acquire()
        leaked[0] = yieldio.current_time()
        # ends holding the lock

    async def worker(i: int, plan: list[Any]) -> None:
        for j, (delay, timeout, hold) in enumerate(plan):
            await yieldio.sleep(delay)
            start = yieldio.current_time()
            with yieldio.move_on_after(math.inf if timeout is None else timeout):
                try:
                    await lock.acquire()
                except yieldio.BrokenResourceError:
                    outcome[i, j] = ("broken", start)
                    return
                try:
                    outcome[i, j] = ("got", start)
                    await yieldio.sleep(hold)
                finally:
                    lock.release()
                continue
            outcome[i, j] = ("timeout", start)

    async def main() -> None:
        async with yieldio.TaskGroup() as tg:
            tg.spawn(leaker)
            for i, plan in enumerate(plans):
                tg.spawn(worker, i, plan)

    run_checked(main, seed)  # never a Deadlock: the waiters are told
    for (kind, start) in outcome.values():
        if kind == "got":
            assert start < leaked[0] or leaked[0] == math.inf
        if kind == "broken":
            assert leaked[0] != math.inf
    if leaked[0] != math.inf:
        # Everyone who asked after the lock broke was told so, at once.
        late = [v for v in outcome.values() if v[1] > leaked[0]]
        assert all(kind == "broken" for kind, _ in late), late


@SETTINGS
@given(maxsize=st.integers(0, 3),
       producers=st.lists(st.lists(st.tuples(st.integers(0, 2), st.none() | st.integers(0, 2).map(
           lambda n: n + 0.125)), min_size=1, max_size=5), min_size=1, max_size=3),
       consumers=st.lists(st.lists(st.tuples(st.integers(0, 2), st.none() | st.integers(0, 3).map(
           lambda n: n + 0.25)), min_size=1, max_size=5), min_size=1, max_size=3),
       close=st.none() | st.integers(1, 8).map(lambda n: n + 0.75),
       seed=seeds)
def test_queue_items_neither_lost_nor_duplicated(
        maxsize: int, producers: list[Any], consumers: list[Any], close: float | None,
        seed: int | None) -> None:
    q: yieldio.Queue[tuple[int, int]] = yieldio.Queue(maxsize)
    put_ok: list[tuple[int, int]] = []
    got: list[tuple[int, int]] = []

    async def producer(i: int, plan: list[Any]) -> None:
        for j, (delay, timeout) in enumerate(plan):
            await yieldio.sleep(delay)
            with yieldio.move_on_after(math.inf if timeout is None else timeout):
                try:
                    await q.put((i, j))
                except yieldio.QueueClosed:
                    return
                put_ok.append((i, j))

    async def consumer(plan: list[Any]) -> None:
        for delay, timeout in plan:
            await yieldio.sleep(delay)
            with yieldio.move_on_after(math.inf if timeout is None else timeout):
                try:
                    item = await q.get()
                except yieldio.QueueClosed:
                    return
                got.append(item)

    async def closer(at: float) -> None:
        await yieldio.sleep(at)
        q.close()

    async def main() -> None:
        async with yieldio.TaskGroup() as tg:
            for plan in consumers:
                tg.spawn(consumer, plan)
            if close is not None:
                tg.spawn(closer, close)
            tg.spawn(closer, 40.0)  # ends the wait of a producer left blocked on a full queue
            async with yieldio.TaskGroup() as ptg:
                for i, plan in enumerate(producers):
                    ptg.spawn(producer, i, plan)
            q.close()  # the consumers drain what is left, then stop

    run_checked(main, seed)
    left = list(q._items)
    assert sorted(got + left) == sorted(put_ok)  # nothing lost, nothing duplicated
    assert len(set(got + left)) == len(got) + len(left)
    for i in range(len(producers)):
        # one producer's items come out in the order it put them
        mine = [j for (p, j) in got + left if p == i]
        if len(consumers) == 1:
            assert mine == sorted(mine)
    assert q._unfinished == len(put_ok)
    assert not q._getters and not q._putters


@SETTINGS
@given(waiters=st.lists(st.tuples(st.integers(0, 3), st.none() | st.integers(0, 4).map(
           lambda n: n + 0.25)), min_size=1, max_size=8),
       set_at=st.lists(st.integers(0, 6).map(lambda n: n + 0.5), max_size=3),
       clear=st.booleans(), seed=seeds)
def test_event_no_lost_wakeup(waiters: list[Any], set_at: list[float], clear: bool,
                              seed: int | None) -> None:
    ev = yieldio.Event()
    result: dict[int, tuple[str, float]] = {}
    sets: list[float] = []

    async def waiter(i: int, delay: int, timeout: float | None) -> None:
        await yieldio.sleep(delay)
        with yieldio.move_on_after(math.inf if timeout is None else timeout):
            await ev.wait()
            result[i] = ("woken", yieldio.current_time())
            return
        result[i] = ("timeout", yieldio.current_time())

    async def setter() -> None:
        for t in sorted(set(set_at)) + [50.0]:  # the last one ends every wait
            await yieldio.sleep_until(t)
            ev.set()
            sets.append(t)
            if clear:
                ev.clear()

    async def main() -> None:
        async with yieldio.TaskGroup() as tg:
            for i, (delay, timeout) in enumerate(waiters):
                tg.spawn(waiter, i, delay, timeout)
            tg.spawn(setter)

    run_checked(main, seed)
    for i, (delay, timeout) in enumerate(waiters):
        deadline = delay + (math.inf if timeout is None else timeout)
        # the first set() at or after it started waiting (or still set then)
        first = min((t for t in sets if t >= delay), default=math.inf)
        if not clear and sets and sets[0] <= delay:
            first = delay
        if first < deadline:
            assert result[i] == ("woken", first), (i, result[i], first)
        else:
            assert result[i] == ("timeout", deadline)


@SETTINGS
@given(plans=plans, notify_at=st.lists(st.tuples(st.integers(0, 8).map(lambda n: n + 1 / 64),
                                                 st.integers(1, 3)), max_size=6),
       seed=seeds)
def test_condition_wakeups_and_lock(plans: list[Any], notify_at: list[Any],
                                    seed: int | None) -> None:
    cond = yieldio.Condition()
    tokens = [0]
    took: list[float] = []
    gave_up: list[float] = []
    done = [False]

    async def consumer(plan: list[Any]) -> None:
        for delay, timeout, _ in plan:
            await yieldio.sleep(delay)
            with yieldio.move_on_after(math.inf if timeout is None else timeout) as cs:
                async with cond:
                    await cond.wait_for(lambda: tokens[0] > 0 or done[0])
                    assert cond.lock.owner is yieldio.current_task()
                    if not tokens[0]:
                        return
                    tokens[0] -= 1
                    took.append(yieldio.current_time())
            if cs.cancelled_caught:
                gave_up.append(yieldio.current_time())
                # No lost wake-up: nobody gives up while a token waits for it.
                assert tokens[0] == 0

    async def producer() -> None:
        for t, n in sorted(notify_at):
            await yieldio.sleep_until(t)
            async with cond:
                assert cond.lock.owner is yieldio.current_task()
                tokens[0] += n
                cond.notify(n)
        async with cond:
            done[0] = True
            cond.notify_all()

    async def main() -> None:
        async with yieldio.TaskGroup() as tg:
            for plan in plans:
                tg.spawn(consumer, plan)
            tg.spawn(producer)

    run_checked(main, seed)
    assert not cond.locked()
    assert len(took) + tokens[0] == sum(n for _, n in notify_at)
