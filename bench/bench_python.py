#!/usr/bin/env python3
"""Benchmark prismq_queue against a textbook stdlib ``sqlite3`` queue, side by side in one run.

Measured on temporary databases, each measurement repeated (default 3 times, PrismQ and the
baseline alternating) and reported as the median with the min..max spread:

a. enqueue latency: single-threaded ``Queue.enqueue`` calls vs one ``INSERT`` + ``commit``
   per task (WAL, ``synchronous=NORMAL``), same payload;
b. claim latency at depth: ``Worker.claim(timeout=0)`` then ``complete`` with 100,000 tasks
   queued vs the textbook ``BEGIN IMMEDIATE`` + ``UPDATE ... WHERE id = (SELECT ... LIMIT 1)
   RETURNING`` claim (over a partial index in claim order) and a fenced ``UPDATE`` to complete;
c. end-to-end throughput: the parent enqueues N tasks one call at a time, then 1, 2 and 4
   worker processes (``spawn``) drain the queue: PrismQ with ``claim_many(64)`` + ``ack_many``
   (as the run loop does), the baseline one task per ``BEGIN IMMEDIATE`` claim.

The Markdown report goes to stdout and to ``bench/results_python.md`` (overwritten); progress
goes to stderr. Usage::

    python bench/bench_python.py                          # full run, about 3 minutes on 2 cores
    python bench/bench_python.py --quick                  # a smaller run (smoke test)
    PYTHONPATH=python python bench/bench_python.py        # the source tree, after `make build`
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import platform
import queue as queue_mod
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any, TypeVar

import prismq_queue
from prismq_queue import EnqueueRequest, Queue, Worker, WorkerConfig

PAYLOAD: dict[str, Any] = {"user": 42, "action": "resize", "path": "/img/a.png"}
TASK_TYPE = "bench"
CLAIM_BATCH = 64
WARMUP_CALLS = 200
LEASE_MS = 60_000
FILL_CHUNK = 10_000
CHILD_TIMEOUT_S = 300.0

T = TypeVar("T")

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results_python.md"


@dataclass(frozen=True)
class Sizes:
    """How much work one run does."""

    enqueue_calls: int
    claim_depth: int
    claim_calls: int
    e2e_tasks: int
    procs: tuple[int, ...]


FULL = Sizes(enqueue_calls=20_000, claim_depth=100_000, claim_calls=20_000, e2e_tasks=20_000, procs=(1, 2, 4))
QUICK = Sizes(enqueue_calls=2_000, claim_depth=10_000, claim_calls=2_000, e2e_tasks=2_000, procs=(1, 2, 4))


def log(msg: str) -> None:
    """Progress line on stderr (stdout carries only the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..1)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Latency:
    """p50 and p99 of one run, in microseconds, and the calls per second of the loop."""

    p50_us: float
    p99_us: float
    per_s: float

    @classmethod
    def from_ns(cls, samples_ns: list[int], loop_seconds: float) -> Latency:
        s = sorted(samples_ns)
        return cls(percentile(s, 0.50) / 1000, percentile(s, 0.99) / 1000, len(s) / loop_seconds)


# --------------------------------------------------------------------------- textbook sqlite3

TEXTBOOK_SCHEMA = """
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY,
    type             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 100,
    status           TEXT    NOT NULL DEFAULT 'queued',
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 5,
    run_after        INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
-- The claim reads the first entry of this index: only queued rows, in claim order
-- (claimed rows leave it, so it does not grow with history).
CREATE INDEX tasks_claim ON tasks (priority, id) WHERE status = 'queued';
"""

TEXTBOOK_INSERT = (
    "INSERT INTO tasks (type, payload, priority, status, attempts, max_attempts, run_after,"
    " created_at, updated_at) VALUES (?, ?, ?, 'queued', 0, 5, ?, ?, ?)"
)

TEXTBOOK_CLAIM = """
UPDATE tasks
   SET status = 'leased', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
 WHERE id = (SELECT id FROM tasks
              WHERE status = 'queued' AND run_after <= ?
              ORDER BY priority, id
              LIMIT 1)
RETURNING id, type, payload, attempts
"""

TEXTBOOK_COMPLETE = (
    "UPDATE tasks SET status = 'completed', finished_at = ?, updated_at = ?,"
    " lease_owner = NULL, lease_expires_at = NULL"
    " WHERE id = ? AND status = 'leased' AND lease_owner = ?"
)


def textbook_connect(path: str, *, autocommit: bool) -> sqlite3.Connection:
    """Open a connection the way the textbook does: WAL, synchronous=NORMAL, busy_timeout=5000.

    :param autocommit: ``isolation_level=None`` (explicit BEGIN/COMMIT); otherwise the
        module's default implicit transactions, committed with ``commit()``.
    """
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None if autocommit else "DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def textbook_create(path: str) -> None:
    conn = textbook_connect(path, autocommit=True)
    try:
        conn.executescript(TEXTBOOK_SCHEMA)
    finally:
        conn.close()


def textbook_claim_plan(path: str) -> str:
    """EXPLAIN QUERY PLAN of the claim's subquery (shows that the index is used, with no sort)."""
    conn = textbook_connect(path, autocommit=True)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + TEXTBOOK_CLAIM, ("w", 0, 0, 0)).fetchall()
    finally:
        conn.close()
    return "; ".join(str(r[-1]) for r in rows)


def textbook_enqueue(conn: sqlite3.Connection, priority: int = 100) -> None:
    now = now_ms()
    conn.execute(TEXTBOOK_INSERT, (TASK_TYPE, json.dumps(PAYLOAD), priority, now, now, now))
    conn.commit()


def is_locked(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (Python 3.10 has no ``sqlite_errorcode``: fall back to the text)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (int(code) & 0xFF) in (5, 6)
    text = str(exc)
    return "locked" in text or "busy" in text


class TextbookWorker:
    """The textbook lease-and-claim loop on one connection; counts busy retries."""

    def __init__(self, path: str, owner: str) -> None:
        self.conn = textbook_connect(path, autocommit=True)
        self.owner = owner
        self.busy_retries = 0

    def close(self) -> None:
        self.conn.close()

    def claim(self) -> tuple[Any, ...] | None:
        """Lease the next queued task in one ``BEGIN IMMEDIATE`` transaction; None when empty."""
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                self.busy_retries += 1
                continue
            try:
                now = now_ms()
                rows = self.conn.execute(TEXTBOOK_CLAIM, (self.owner, now + LEASE_MS, now, now)).fetchall()
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if not is_locked(exc):
                    raise
                self.busy_retries += 1
                continue
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            return tuple(rows[0]) if rows else None

    def complete(self, task_id: int) -> None:
        """Mark a leased task completed (fenced by the lease owner); one autocommit UPDATE."""
        while True:
            try:
                now = now_ms()
                cur = self.conn.execute(TEXTBOOK_COMPLETE, (now, now, task_id, self.owner))
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                self.busy_retries += 1
                continue
            if cur.rowcount != 1:
                raise RuntimeError(f"textbook complete of task {task_id} changed {cur.rowcount} rows")
            return


# --------------------------------------------------------------------------- measurements


def timed_loop(n: int, call: Callable[[], object]) -> tuple[list[int], float]:
    """Run ``call`` n times; return per-call nanoseconds and the loop's wall seconds."""
    samples = [0] * n
    clock = time.perf_counter_ns
    start = clock()
    for i in range(n):
        t0 = clock()
        call()
        samples[i] = clock() - t0
    return samples, (clock() - start) / 1e9


def enqueue_prismq(workdir: str, n: int) -> Latency:
    with Queue(os.path.join(workdir, "enqueue.db")) as q:
        for _ in range(WARMUP_CALLS):
            q.enqueue(TASK_TYPE, PAYLOAD)
        samples, secs = timed_loop(n, lambda: q.enqueue(TASK_TYPE, PAYLOAD))
        return Latency.from_ns(samples, secs)


def enqueue_textbook(workdir: str, n: int) -> Latency:
    path = os.path.join(workdir, "enqueue.db")
    textbook_create(path)
    conn = textbook_connect(path, autocommit=False)
    try:
        for _ in range(WARMUP_CALLS):
            textbook_enqueue(conn)
        samples, secs = timed_loop(n, lambda: textbook_enqueue(conn))
        return Latency.from_ns(samples, secs)
    finally:
        conn.close()


@dataclass
class ClaimRun:
    claim: Latency
    complete: Latency
    pairs_per_s: float


def claim_prismq(workdir: str, depth: int, n: int) -> ClaimRun:
    with Queue(os.path.join(workdir, "claim.db")) as q:
        for lo in range(0, depth + WARMUP_CALLS, FILL_CHUNK):
            hi = min(lo + FILL_CHUNK, depth + WARMUP_CALLS)
            q.enqueue_many([EnqueueRequest(TASK_TYPE, PAYLOAD, priority=i % 10) for i in range(lo, hi)])
        with Worker(q, WorkerConfig(worker_id="bench-claim")) as w:
            for _ in range(WARMUP_CALLS):
                t = w.claim(timeout=0)
                if t is None:
                    raise RuntimeError("prismq warm-up claim found no task")
                w.complete(t)
            claim_ns = [0] * n
            complete_ns = [0] * n
            clock = time.perf_counter_ns
            start = clock()
            for i in range(n):
                t0 = clock()
                task = w.claim(timeout=0)
                t1 = clock()
                if task is None:
                    raise RuntimeError(f"prismq claim {i} found no task")
                w.complete(task)
                complete_ns[i] = clock() - t1
                claim_ns[i] = t1 - t0
            secs = (clock() - start) / 1e9
    return ClaimRun(Latency.from_ns(claim_ns, secs), Latency.from_ns(complete_ns, secs), n / secs)


def claim_textbook(workdir: str, depth: int, n: int) -> ClaimRun:
    path = os.path.join(workdir, "claim.db")
    textbook_create(path)
    conn = textbook_connect(path, autocommit=False)
    try:
        now = now_ms()
        body = json.dumps(PAYLOAD)
        rows = ((TASK_TYPE, body, i % 10, now, now, now) for i in range(depth + WARMUP_CALLS))
        conn.executemany(TEXTBOOK_INSERT, rows)
        conn.commit()
    finally:
        conn.close()
    w = TextbookWorker(path, "bench-claim")
    try:
        for _ in range(WARMUP_CALLS):
            row = w.claim()
            if row is None:
                raise RuntimeError("textbook warm-up claim found no task")
            w.complete(int(row[0]))
        claim_ns = [0] * n
        complete_ns = [0] * n
        clock = time.perf_counter_ns
        start = clock()
        for i in range(n):
            t0 = clock()
            row = w.claim()
            t1 = clock()
            if row is None:
                raise RuntimeError(f"textbook claim {i} found no task")
            w.complete(int(row[0]))
            complete_ns[i] = clock() - t1
            claim_ns[i] = t1 - t0
        secs = (clock() - start) / 1e9
    finally:
        w.close()
    return ClaimRun(Latency.from_ns(claim_ns, secs), Latency.from_ns(complete_ns, secs), n / secs)


# --------------------------------------------------------------------------- worker processes


def drain_prismq(path: str, index: int) -> tuple[Callable[[], tuple[int, int]], Callable[[], None]]:
    """Open a queue and worker; return (drain, close). drain claims 64 at a time and acks them."""
    q = Queue(path)
    try:
        w = Worker(q, WorkerConfig(worker_id=f"bench-{index}"))
    except BaseException:
        q.close()
        raise

    def drain() -> tuple[int, int]:
        done = 0
        while True:
            tasks = w.claim_many(CLAIM_BATCH, timeout=0)
            if not tasks:
                return done, 0
            results = w.ack_many([{"task": t, "op": "complete"} for t in tasks])
            for r in results:
                if r.error is not None:
                    raise RuntimeError(f"ack of task {r.id} failed: {r.error!r}")
            done += len(tasks)

    def close() -> None:
        w.close()
        q.close()

    return drain, close


def drain_textbook(path: str, index: int) -> tuple[Callable[[], tuple[int, int]], Callable[[], None]]:
    """Open a connection; return (drain, close). drain claims and completes one task at a time."""
    w = TextbookWorker(path, f"bench-{index}")

    def drain() -> tuple[int, int]:
        done = 0
        while True:
            row = w.claim()
            if row is None:
                return done, w.busy_retries
            w.complete(int(row[0]))
            done += 1

    return drain, w.close


DRAINERS = {"prismq": drain_prismq, "textbook": drain_textbook}


def child_main(impl: str, path: str, index: int, go: Any, results: Any) -> None:
    """Entry point of one worker process: open, report ready, wait for go, drain, report."""
    try:
        drain, close = DRAINERS[impl](path, index)
        try:
            results.put(("ready", index, None))
            if not go.wait(CHILD_TIMEOUT_S):
                raise TimeoutError("no go signal from the parent")
            done, busy = drain()
            results.put(("done", index, (done, busy)))
        finally:
            close()
    except BaseException:
        results.put(("error", index, traceback.format_exc()))
        sys.exit(1)


def collect(
    results: Any, kind: str, count: int, children: list[SpawnProcess]
) -> tuple[list[tuple[int, Any]], float]:
    """Wait for ``count`` messages of ``kind``; return them and the arrival time of the last one.

    :raises RuntimeError: when a child reports an error or dies, or on timeout.
    """
    got: list[tuple[int, Any]] = []
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    last = 0.0
    while len(got) < count:
        try:
            msg_kind, index, data = results.get(timeout=0.2)
        except queue_mod.Empty:
            dead = [c for c in children if c.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"worker process exited with status {dead[0].exitcode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {kind} from worker processes") from None
            continue
        if msg_kind == "error":
            raise RuntimeError(f"worker process {index} failed:\n{data}")
        if msg_kind != kind:
            raise RuntimeError(f"unexpected message {msg_kind!r} from worker {index}")
        last = time.perf_counter()
        got.append((index, data))
    return got, last


@dataclass
class E2ERun:
    enqueue_s: float
    drain_s: float
    tasks: int
    busy_retries: int

    @property
    def e2e_per_s(self) -> float:
        return self.tasks / (self.enqueue_s + self.drain_s)

    @property
    def drain_per_s(self) -> float:
        return self.tasks / self.drain_s


def end_to_end(workdir: str, ctx: SpawnContext, impl: str, n: int, procs: int) -> E2ERun:
    """Start ``procs`` workers (untimed), enqueue n tasks one call each, then let the workers drain."""
    path = os.path.join(workdir, "e2e.db")
    pq: Queue | None = None
    conn: sqlite3.Connection | None = None
    enqueue: Callable[[], object]
    if impl == "prismq":
        pq = Queue(path)
        q_ = pq

        def enqueue_pq() -> object:
            return q_.enqueue(TASK_TYPE, PAYLOAD)

        enqueue = enqueue_pq
    else:
        textbook_create(path)
        conn = textbook_connect(path, autocommit=False)
        c_ = conn

        def enqueue_tb() -> object:
            textbook_enqueue(c_)
            return None

        enqueue = enqueue_tb
    go = ctx.Event()
    results = ctx.Queue()
    children = [
        ctx.Process(target=child_main, args=(impl, path, i, go, results), daemon=True) for i in range(procs)
    ]
    try:
        for c in children:
            c.start()
        collect(results, "ready", procs, children)
        t0 = time.perf_counter()
        for _ in range(n):
            enqueue()
        t1 = time.perf_counter()
        go.set()
        done, t2 = collect(results, "done", procs, children)
        for c in children:
            c.join(CHILD_TIMEOUT_S)
            if c.exitcode != 0:
                raise RuntimeError(f"worker process exited with status {c.exitcode}")
        total = sum(d[0] for _, d in done)
        if total != n:
            raise RuntimeError(f"{impl}: workers completed {total} tasks, want {n}")
        verify_all_completed(impl, path, pq, n)
        return E2ERun(t1 - t0, t2 - t1, n, sum(d[1] for _, d in done))
    finally:
        go.set()
        for c in children:
            if c.is_alive():
                c.terminate()
            c.join(5)
        results.close()
        if pq is not None:
            pq.close()
        if conn is not None:
            conn.close()


def verify_all_completed(impl: str, path: str, pq: Queue | None, n: int) -> None:
    if pq is not None:
        stats = pq.stats()
        completed = stats.by_status.get("completed", 0)
    else:
        conn = textbook_connect(path, autocommit=True)
        try:
            completed = conn.execute("SELECT count(*) FROM tasks WHERE status = 'completed'").fetchone()[0]
        finally:
            conn.close()
    if completed != n:
        raise RuntimeError(f"{impl}: {completed} tasks completed in the database, want {n}")


# --------------------------------------------------------------------------- running and reporting


@dataclass
class Results:
    enqueue: dict[str, list[Latency]] = field(default_factory=lambda: {"prismq": [], "textbook": []})
    claim: dict[str, list[ClaimRun]] = field(default_factory=lambda: {"prismq": [], "textbook": []})
    e2e: dict[tuple[str, int], list[E2ERun]] = field(default_factory=dict)


def in_tempdir(base: str | None, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(directory, *args)`` in a fresh temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="prismq-bench-", dir=base) as d:
        gc.collect()
        return fn(d, *args)


def order(rep: int) -> tuple[str, str]:
    """Alternate which implementation runs first, so that drift in machine load hits both."""
    return ("prismq", "textbook") if rep % 2 == 0 else ("textbook", "prismq")


def run_all(sizes: Sizes, repeats: int, tmp: str | None) -> Results:
    res = Results()
    ctx = multiprocessing.get_context("spawn")
    for rep in range(repeats):
        tag = f"run {rep + 1}/{repeats}"
        for impl in order(rep):
            log(f"{tag}: enqueue latency, {impl}, {sizes.enqueue_calls} calls")
            fn_e = enqueue_prismq if impl == "prismq" else enqueue_textbook
            res.enqueue[impl].append(in_tempdir(tmp, fn_e, sizes.enqueue_calls))
        for impl in order(rep):
            log(f"{tag}: claim latency, {impl}, depth {sizes.claim_depth}, {sizes.claim_calls} claims")
            fn_c = claim_prismq if impl == "prismq" else claim_textbook
            res.claim[impl].append(in_tempdir(tmp, fn_c, sizes.claim_depth, sizes.claim_calls))
        for procs in sizes.procs:
            for impl in order(rep):
                log(f"{tag}: end-to-end, {impl}, {procs} process(es), {sizes.e2e_tasks} tasks")
                run = in_tempdir(tmp, end_to_end, ctx, impl, sizes.e2e_tasks, procs)
                res.e2e.setdefault((impl, procs), []).append(run)
    return res


def spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    """Median with [min-max]."""
    med = statistics.median(values)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def ratio(num: Sequence[float], den: Sequence[float]) -> float:
    return statistics.median(num) / statistics.median(den)


def machine_facts(tmp: str | None, load_start: str) -> list[str]:
    try:
        affinity = len(os.sched_getaffinity(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 0
    lib_path = ""
    try:
        from prismq_queue import _lib

        candidates = _lib.library_path_candidates()
        lib_path = next((str(p) for p in candidates if p.exists()), "")
    except (ImportError, AttributeError):
        pass
    return [
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {platform.platform()}, {platform.machine()}; CPUs (nproc): {affinity}"
        f" (os.cpu_count {os.cpu_count()})",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); "
        f"stdlib sqlite3 with SQLite {sqlite3.sqlite_version}",
        f"- prismq_queue {prismq_queue.__version__} from {Path(prismq_queue.__file__).parent}; "
        f"native library version {prismq_queue.version()}" + (f" ({lib_path})" if lib_path else ""),
        f"- Temporary databases in {tmp or tempfile.gettempdir()}",
        f"- Load average (1, 5, 15 min): {load_start} at start, {load_average()} at end",
    ]


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def report(res: Results, sizes: Sizes, repeats: int, facts: list[str], plan: str, secs: float) -> str:
    out: list[str] = ["# PrismQ Task Queue: Python benchmark vs textbook sqlite3", ""]
    out += facts
    out += [
        f"- Repeats: {repeats}; each cell is the median [min-max] of the runs. Wall time {secs:.0f} s.",
        "- Speed-up: textbook time / PrismQ time (or PrismQ rate / textbook rate); above 1 PrismQ is faster.",
        "",
        f"## a. Enqueue latency (one thread, {sizes.enqueue_calls:,} calls, one task per call)",
        "",
        "| implementation | p50 (us) | p99 (us) | enqueues/s |",
        "|---|---|---|---|",
    ]
    names = {
        "prismq": "prismq_queue `Queue.enqueue`",
        "textbook": "textbook sqlite3 (INSERT + commit)",
    }
    for impl in ("prismq", "textbook"):
        runs = res.enqueue[impl]
        out.append(
            f"| {names[impl]} | {spread([r.p50_us for r in runs])} | {spread([r.p99_us for r in runs])} "
            f"| {spread([r.per_s for r in runs], '{:,.0f}')} |"
        )
    pe, te = res.enqueue["prismq"], res.enqueue["textbook"]
    out.append(
        f"| speed-up | {ratio([r.p50_us for r in te], [r.p50_us for r in pe]):.2f}x "
        f"| {ratio([r.p99_us for r in te], [r.p99_us for r in pe]):.2f}x "
        f"| {ratio([r.per_s for r in pe], [r.per_s for r in te]):.2f}x |"
    )
    out += [
        "",
        f"## b. Claim latency ({sizes.claim_depth:,} tasks queued, {sizes.claim_calls:,} claim + complete,"
        " one thread)",
        "",
        "| implementation | claim p50 (us) | claim p99 (us) | complete p50 (us) | complete p99 (us)"
        " | claim+complete/s |",
        "|---|---|---|---|---|---|",
    ]
    cnames = {
        "prismq": "prismq_queue `Worker.claim(timeout=0)` + `complete`",
        "textbook": "textbook sqlite3 (BEGIN IMMEDIATE; UPDATE ... RETURNING; COMMIT) + UPDATE",
    }
    for impl in ("prismq", "textbook"):
        runs_c = res.claim[impl]
        out.append(
            f"| {cnames[impl]} | {spread([r.claim.p50_us for r in runs_c])} "
            f"| {spread([r.claim.p99_us for r in runs_c])} | {spread([r.complete.p50_us for r in runs_c])} "
            f"| {spread([r.complete.p99_us for r in runs_c])} "
            f"| {spread([r.pairs_per_s for r in runs_c], '{:,.0f}')} |"
        )
    pc, tc = res.claim["prismq"], res.claim["textbook"]
    out.append(
        f"| speed-up | {ratio([r.claim.p50_us for r in tc], [r.claim.p50_us for r in pc]):.2f}x "
        f"| {ratio([r.claim.p99_us for r in tc], [r.claim.p99_us for r in pc]):.2f}x "
        f"| {ratio([r.complete.p50_us for r in tc], [r.complete.p50_us for r in pc]):.2f}x "
        f"| {ratio([r.complete.p99_us for r in tc], [r.complete.p99_us for r in pc]):.2f}x "
        f"| {ratio([r.pairs_per_s for r in pc], [r.pairs_per_s for r in tc]):.2f}x |"
    )
    out += [
        "",
        f"Textbook claim plan: `{plan}`",
        "",
        f"## c. End-to-end throughput ({sizes.e2e_tasks:,} tasks: enqueue one per call, then worker"
        " processes claim + complete all)",
        "",
        "PrismQ workers: `claim_many(64)` + `ack_many`. Textbook workers: one task per"
        " `BEGIN IMMEDIATE` claim, then a complete UPDATE (busy_timeout=5000, `database is locked` retried)."
        " Worker processes (spawn) are started and open their database before the clock starts.",
        "",
        "| procs | PrismQ end-to-end tasks/s | textbook end-to-end tasks/s | speed-up"
        " | PrismQ drain tasks/s | textbook drain tasks/s | drain speed-up | textbook busy retries |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for procs in sizes.procs:
        pr, tr = res.e2e[("prismq", procs)], res.e2e[("textbook", procs)]
        out.append(
            f"| {procs} | {spread([r.e2e_per_s for r in pr], '{:,.0f}')} "
            f"| {spread([r.e2e_per_s for r in tr], '{:,.0f}')} "
            f"| {ratio([r.e2e_per_s for r in pr], [r.e2e_per_s for r in tr]):.2f}x "
            f"| {spread([r.drain_per_s for r in pr], '{:,.0f}')} "
            f"| {spread([r.drain_per_s for r in tr], '{:,.0f}')} "
            f"| {ratio([r.drain_per_s for r in pr], [r.drain_per_s for r in tr]):.2f}x "
            f"| {statistics.median([r.busy_retries for r in tr]):.0f} |"
        )
    p50 = statistics.median([r.p50_us for r in pe])
    worst = min(
        ratio([r.e2e_per_s for r in res.e2e[("prismq", p)]], [r.e2e_per_s for r in res.e2e[("textbook", p)]])
        for p in sizes.procs
    )
    out += [
        "",
        "## Targets (SPEC.md, Performance targets)",
        "",
        f"- Enqueue p50 under 30 us: {p50:.1f} us, {'met' if p50 < 30 else 'NOT met'}.",
        f"- End-to-end at least 1.5x the textbook loop: lowest speed-up {worst:.2f}x,"
        f" {'met' if worst >= 1.5 else 'NOT met'}.",
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smaller run (a tenth of the work)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; default 3")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown report file")
    parser.add_argument("--tmpdir", default=None, help="where the temporary databases go")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if sqlite3.sqlite_version_info < (3, 35, 0):
        parser.error(
            f"the textbook baseline needs SQLite 3.35+ (RETURNING); this is {sqlite3.sqlite_version}"
        )
    sizes = QUICK if args.quick else FULL
    load_start = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prismq-bench-", dir=args.tmpdir) as d:
        path = os.path.join(d, "plan.db")
        textbook_create(path)
        plan = textbook_claim_plan(path)
    res = run_all(sizes, args.repeats, args.tmpdir)
    text = report(
        res, sizes, args.repeats, machine_facts(args.tmpdir, load_start), plan, time.perf_counter() - started
    )
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    log(f"report written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
