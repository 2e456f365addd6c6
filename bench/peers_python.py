#!/usr/bin/env python3
"""Benchmark prismq_queue side by side with the Python SQLite queues users would pick instead.

Queues: ``prismq`` (one task per claim and complete), ``prismq-batch`` (``claim_many(64)`` +
``ack_many``, as the run loop does), ``sqlite3`` (the textbook lease-and-claim SQL of
``bench/bench_python.py``), ``litequeue`` (``put``/``pop``/``done``), ``persist-queue``
(``SQLiteAckQueue``: ``put``/``get``/``ack``) and ``huey`` (``SqliteHuey``: a task call,
``dequeue`` and ``execute``). One JSON object per measurement goes to stdout, progress to
stderr; ``bench/run_all.py`` runs this and writes ``BENCHMARKS.md``.

Every database uses WAL with ``synchronous=NORMAL`` and a 5 s busy timeout; a waiting worker
looks for work every 20 ms (our engine's cross-process wake poll). Usage::

    python bench/peers_python.py [--quick] [--queues prismq,huey] [--workloads e2e,latency]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from typing import Any

import bench_python as textbook
import huey.storage  # type: ignore[import-untyped]
import litequeue  # type: ignore[import-untyped]
import persistqueue
from huey import Huey

import prismq_queue
from prismq_queue import EnqueueRequest, Queue, WorkerConfig

PAYLOAD: dict[str, Any] = {"user": 42, "action": "resize", "path": "/img/a.png"}
TASK_TYPE = "bench"
POLL_S = 0.02
CLAIM_BATCH = 64
WARMUP = 200
# A measurement stops after this long even when it has not done all its operations
# (a queue whose claim scans the table would otherwise run for hours at 1M).
TIME_CAP_S = 15.0
CHILD_TIMEOUT_S = 300.0

QUEUES = ("prismq", "prismq-batch", "sqlite3", "litequeue", "persist-queue", "huey")
WORKLOADS = ("enqueue_single", "enqueue_batch", "claim_depth", "e2e", "latency", "idle", "disk")


@dataclass(frozen=True)
class Sizes:
    """How much work one run does."""

    reps: int
    enqueue_n: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    batch_total: int
    depths: tuple[int, ...]
    claim_ops: int
    e2e_tasks: int
    procs: tuple[int, ...]
    latency_samples: int
    idle_s: float
    disk_tasks: int


FULL = Sizes(
    3,
    (1_000, 5_000),
    (10, 100, 1_000),
    10_000,
    (1_000, 100_000, 1_000_000),
    3_000,
    5_000,
    (1, 2, 4, 8),
    200,
    5.0,
    10_000,
)
QUICK = Sizes(1, (1_000,), (100,), 5_000, (1_000, 100_000), 1_000, 2_000, (1, 4), 50, 2.0, 2_000)


class Unsupported(Exception):
    """The queue has no API for this workload; the message says what is missing."""


def log(msg: str) -> None:
    print(f"[py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(
    workload: str,
    queue: str,
    params: dict[str, int],
    rep: int = 0,
    *,
    metrics: dict[str, float] | None = None,
    unsupported: str = "",
    error: str = "",
) -> None:
    rec: dict[str, Any] = {
        "level": "python",
        "workload": workload,
        "queue": queue,
        "params": params,
        "rep": rep,
    }
    if metrics is not None:
        rec["metrics"] = metrics
    if unsupported:
        rec["unsupported"] = unsupported
    if error:
        rec["error"] = error
    print(json.dumps(rec), flush=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def clone_rows(db_file: str, table: str, key: str, n: int, overrides: dict[str, str] | None = None) -> None:
    """Insert n copies of the table's first row (written by the queue's own API) in one statement each
    100,000 rows: the fast bulk fill of the deep-queue workloads. ``overrides`` maps a column to an SQL
    expression of the row number ``x`` (for columns that must be unique)."""
    overrides = overrides or {}
    conn = sqlite3.connect(db_file, timeout=30.0, isolation_level=None)
    try:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in (key, "id")]
        select = ", ".join(overrides.get(c, c) for c in cols)
        while n > 0:
            k = min(n, 100_000)
            conn.execute(
                f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {k}) "
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table}, c "
                f"WHERE {table}.{key} = (SELECT min({key}) FROM {table})"
            )
            n -= k
    finally:
        conn.close()


def checkpoint_size(db_file: str) -> int:
    """Fold the WAL into the database file and return the bytes of the file and its WAL."""
    conn = sqlite3.connect(db_file, timeout=30.0)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(os.path.getsize(p) for p in (db_file, db_file + "-wal") if os.path.exists(p))


# --------------------------------------------------------------------------- adapters

Item = tuple[Any, dict[str, Any]]  # (what complete() needs, the task body)


class Adapter:
    """One queue, opened on one database, used as its documentation shows."""

    name = ""
    db_file = ""

    def enqueue(self, body: dict[str, Any]) -> None:
        raise NotImplementedError

    def enqueue_batch(self, bodies: list[dict[str, Any]]) -> None:
        raise Unsupported("no batch enqueue")

    def fill(self, n: int) -> None:
        """Add n tasks fast (setup, not measured)."""
        raise NotImplementedError

    def claim(self) -> list[Item]:
        """Claim what is due now (one task, or a batch); [] when none."""
        raise NotImplementedError

    def complete(self, items: list[Item]) -> None:
        raise NotImplementedError

    def poll(self) -> list[Item]:
        """Wait up to about POLL_S for work, the queue's own way."""
        items = self.claim()
        if not items:
            time.sleep(POLL_S)
        return items

    def close(self) -> None:
        raise NotImplementedError


class PrismqAdapter(Adapter):
    def __init__(self, path: str, batch: int) -> None:
        self.name = "prismq" if batch == 1 else "prismq-batch"
        self.db_file = path
        self.batch = batch
        self.q = Queue(path)
        self.w = self.q.worker(WorkerConfig(worker_id=f"bench-{os.getpid()}-{id(self)}"))

    def enqueue(self, body: dict[str, Any]) -> None:
        self.q.enqueue(TASK_TYPE, body)

    def enqueue_batch(self, bodies: list[dict[str, Any]]) -> None:
        self.q.enqueue_many([EnqueueRequest(TASK_TYPE, b) for b in bodies])

    def fill(self, n: int) -> None:
        self.enqueue(PAYLOAD)
        clone_rows(self.db_file, "tasks", "id", n - 1)

    def claim(self) -> list[Item]:
        return [(t, t.payload) for t in self.w.claim_many(self.batch, 0)]

    def poll(self) -> list[Item]:
        # Blocks in the engine (GIL released); woken by the cross-process wake poll.
        return [(t, t.payload) for t in self.w.claim_many(self.batch, 0.1)]

    def complete(self, items: list[Item]) -> None:
        if len(items) == 1:
            self.w.complete(items[0][0])
            return
        for r in self.w.ack_many([{"task": t, "op": "complete"} for t, _ in items]):
            if r.error is not None:
                raise r.error

    def close(self) -> None:
        self.w.close()
        self.q.close()


class TextbookAdapter(Adapter):
    name = "sqlite3"

    def __init__(self, path: str) -> None:
        self.db_file = path
        if not os.path.exists(path):
            textbook.textbook_create(path)
        self.conn = textbook.textbook_connect(path, autocommit=False)
        self.worker = textbook.TextbookWorker(path, f"bench-{os.getpid()}")

    def _row(self, body: dict[str, Any]) -> tuple[Any, ...]:
        now = textbook.now_ms()
        return (TASK_TYPE, json.dumps(body), 100, now, now, now)

    def enqueue(self, body: dict[str, Any]) -> None:
        self.conn.execute(textbook.TEXTBOOK_INSERT, self._row(body))
        self.conn.commit()

    def enqueue_batch(self, bodies: list[dict[str, Any]]) -> None:
        self.conn.executemany(textbook.TEXTBOOK_INSERT, [self._row(b) for b in bodies])
        self.conn.commit()

    def fill(self, n: int) -> None:
        self.enqueue(PAYLOAD)
        clone_rows(self.db_file, "tasks", "id", n - 1)

    def claim(self) -> list[Item]:
        row = self.worker.claim()
        return [] if row is None else [(row[0], json.loads(row[2]))]

    def complete(self, items: list[Item]) -> None:
        for task_id, _ in items:
            self.worker.complete(task_id)

    def close(self) -> None:
        self.worker.close()
        self.conn.close()


class LitequeueAdapter(Adapter):
    """litequeue sets WAL and synchronous=NORMAL itself; its connection's busy timeout is 5 s."""

    name = "litequeue"

    def __init__(self, path: str) -> None:
        self.db_file = path
        self.q = litequeue.LiteQueue(path)

    def enqueue(self, body: dict[str, Any]) -> None:
        self.q.put(json.dumps(body))

    def fill(self, n: int) -> None:
        self.enqueue(PAYLOAD)
        # message_id orders the queue and identifies a message: keep it unique and ascending.
        clone_rows(self.db_file, "Queue", "rowid", n - 1, {"message_id": "message_id || printf('-%08d', x)"})

    def claim(self) -> list[Item]:
        m = self.q.pop()
        return [] if m is None else [(m.message_id, json.loads(m.data))]

    def complete(self, items: list[Item]) -> None:
        for message_id, _ in items:
            self.q.done(message_id)

    def close(self) -> None:
        self.q.conn.close()


class PersistQueueAdapter(Adapter):
    """persist-queue sets only WAL; synchronous=NORMAL is set here on its two connections."""

    name = "persist-queue"

    def __init__(self, path: str) -> None:
        self.q = persistqueue.SQLiteAckQueue(path, multithreading=True)
        self.db_file = os.path.join(path, "data.db")
        conns: list[sqlite3.Connection] = [self.q._getter, self.q._putter]  # type: ignore[list-item]
        for conn in {id(c): c for c in conns}.values():
            conn.execute("PRAGMA synchronous=NORMAL")

    def enqueue(self, body: dict[str, Any]) -> None:
        self.q.put(body)

    def fill(self, n: int) -> None:
        self.enqueue(PAYLOAD)
        clone_rows(self.db_file, "ack_queue_default", "_id", n - 1)
        self.q.total = self.q._count()

    def claim(self) -> list[Item]:
        try:
            item = self.q.get(block=False, raw=True)
        except persistqueue.Empty:
            return []
        return [(item["pqid"], item["data"])]

    def complete(self, items: list[Item]) -> None:
        for pqid, _ in items:
            self.q.ack(id=pqid)

    def close(self) -> None:
        self.q.close()


class _NormalSyncSqliteStorage(huey.storage.SqliteStorage):  # type: ignore[misc]
    """huey's SQLite storage with synchronous=NORMAL (its ``fsync`` option offers only FULL or OFF)."""

    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def _huey_noop(body: dict[str, Any]) -> None:
    """The benchmark's huey task: does nothing."""


# huey names a task after its function's module; spawned children import this file as
# __mp_main__, so give the function a name that is the same in every process.
_huey_noop.__module__ = "prismq_bench"


class HueyAdapter(Adapter):
    name = "huey"

    def __init__(self, path: str) -> None:
        self.db_file = path
        self.huey = Huey("bench", results=False, storage_class=_NormalSyncSqliteStorage, filename=path)
        self.task = self.huey.task()(_huey_noop)

    def enqueue(self, body: dict[str, Any]) -> None:
        self.task(body)

    def fill(self, n: int) -> None:
        self.enqueue(PAYLOAD)
        clone_rows(self.db_file, "task", "id", n - 1)

    def claim(self) -> list[Item]:
        task = self.huey.dequeue()  # deletes the row: no lease, no completion step
        return [] if task is None else [(task, task.args[0])]

    def complete(self, items: list[Item]) -> None:
        for task, _ in items:
            self.huey.execute(task)

    def close(self) -> None:
        self.huey.storage.close()


def open_adapter(name: str, path: str) -> Adapter:
    if name == "prismq":
        return PrismqAdapter(path, 1)
    if name == "prismq-batch":
        return PrismqAdapter(path, CLAIM_BATCH)
    if name == "sqlite3":
        return TextbookAdapter(path)
    if name == "litequeue":
        return LitequeueAdapter(path)
    if name == "persist-queue":
        return PersistQueueAdapter(path)
    if name == "huey":
        return HueyAdapter(path)
    raise ValueError(f"unknown queue {name!r}")


MULTIPROCESS_UNSAFE = {
    "persist-queue": "not multi-process safe: get() selects then updates outside one transaction under a "
    "thread lock, so two processes can receive the same item, and opening a queue (auto_resume) "
    "re-queues every unacknowledged item, including other processes' running ones",
}


# --------------------------------------------------------------------------- worker processes


@dataclass
class Shared:
    """What a worker process shares with the parent."""

    stop: EventType
    msgs: multiprocessing.Queue[tuple[Any, ...]]
    done: Synchronized[int]
    last: Synchronized[float]


def child_main(queue_name: str, path: str, kind: str, idle_s: float, sh: Shared) -> None:
    """A worker process: claim and complete until told to stop (kind "work" or "latency"), or
    wait on an empty queue for idle_s and report the CPU time used (kind "idle")."""
    try:
        a = open_adapter(queue_name, path)
    except BaseException as exc:
        sh.msgs.put(("error", repr(exc)))
        return
    try:
        sh.msgs.put(("ready",))
        if kind == "idle":
            t0, c0 = time.perf_counter(), time.process_time()
            while time.perf_counter() - t0 < idle_s:
                if a.poll():
                    raise RuntimeError("idle queue returned a task")
            sh.msgs.put(("cpu", time.process_time() - c0, time.perf_counter() - t0))
            sh.stop.wait(CHILD_TIMEOUT_S)
            return
        while not sh.stop.is_set():
            items = a.poll()
            if not items:
                continue
            if kind == "latency":
                now = time.time_ns()
                for _, body in items:
                    sh.msgs.put(("lat", (now - int(body["t"])) / 1e6))
            a.complete(items)
            with sh.done.get_lock():
                sh.done.value += len(items)
                sh.last.value = max(sh.last.value, time.time())
    except BaseException as exc:
        sh.msgs.put(("error", repr(exc)))
    finally:
        a.close()


@contextmanager
def workers(queue_name: str, path: str, n: int, kind: str = "work", idle_s: float = 0.0) -> Iterator[Shared]:
    ctx = multiprocessing.get_context("spawn")
    sh = Shared(ctx.Event(), ctx.Queue(), ctx.Value("q", 0), ctx.Value("d", 0.0))
    procs = [
        ctx.Process(target=child_main, args=(queue_name, path, kind, idle_s, sh), daemon=True)
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            msg = sh.msgs.get(timeout=120)
            if msg[0] != "ready":
                raise RuntimeError(f"worker failed to start: {msg}")
        yield sh
    finally:
        sh.stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()


def check_errors(sh: Shared) -> None:
    while not sh.msgs.empty():
        msg = sh.msgs.get_nowait()
        if msg[0] == "error":
            raise RuntimeError(f"worker: {msg[1]}")


# --------------------------------------------------------------------------- workloads


@dataclass
class Bench:
    sizes: Sizes
    queues: tuple[str, ...]
    workdir: str
    seq: int = field(default=0)
    # The repetitions the current call runs (see run).
    reps: range = field(default=range(0))

    def path(self, queue: str) -> str:
        self.seq += 1
        suffix = "" if queue == "persist-queue" else ".db"  # persist-queue takes a directory
        return os.path.join(self.workdir, f"{self.seq:03d}-{queue}{suffix}")

    def cleanup(self, path: str) -> None:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)

    def run(self, workload: str) -> None:
        """Run one workload for every queue. Cheap workloads run their repetitions round-robin over
        the queues (rep 1 of every queue, then rep 2, ...) so that a change of the machine's load hits
        every queue alike; the others run queue by queue."""
        fn: Callable[[str], None] = getattr(self, workload)
        rounds = [range(self.sizes.reps)]
        if workload in ("enqueue_single", "enqueue_batch", "e2e"):
            rounds = [range(r, r + 1) for r in range(self.sizes.reps)]
        unsupported: set[str] = set()
        for i, reps in enumerate(rounds):
            self.reps = reps
            for q in self.queues:
                if (q == "prismq-batch" and workload != "e2e") or q in unsupported:
                    continue  # prismq-batch differs only in how it claims; claim_depth runs both
                log(f"{workload} {q} (round {i + 1}/{len(rounds)})")
                try:
                    fn(q)
                except Unsupported as exc:
                    unsupported.add(q)
                    emit(workload, q, {}, unsupported=str(exc))
                except Exception as exc:
                    log(f"  failed: {exc!r}")
                    emit(workload, q, {}, error=repr(exc))

    def enqueue_single(self, q: str) -> None:
        for n in self.sizes.enqueue_n:
            for rep in self.reps:
                path = self.path(q)
                a = open_adapter(q, path)
                try:
                    for _ in range(WARMUP):
                        a.enqueue(PAYLOAD)
                    lat = [0.0] * n
                    clock = time.perf_counter
                    start = clock()
                    for i in range(n):
                        t = clock()
                        a.enqueue(PAYLOAD)
                        lat[i] = clock() - t
                    secs = clock() - start
                finally:
                    a.close()
                    self.cleanup(path)
                emit(
                    "enqueue_single",
                    q,
                    {"n": n},
                    rep,
                    metrics={
                        "tasks_per_s": n / secs,
                        "p50_us": pct(lat, 0.5) * 1e6,
                        "p99_us": pct(lat, 0.99) * 1e6,
                    },
                )

    def enqueue_batch(self, q: str) -> None:
        for size in self.sizes.batch_sizes:
            params = {"batch": size, "tasks": self.sizes.batch_total}
            bodies = [PAYLOAD] * size
            for rep in self.reps:
                path = self.path(q)
                a = open_adapter(q, path)
                try:
                    a.enqueue_batch(bodies)  # warm-up; raises Unsupported
                    calls = self.sizes.batch_total // size
                    lat = [0.0] * calls
                    start = time.perf_counter()
                    for i in range(calls):
                        t = time.perf_counter()
                        a.enqueue_batch(bodies)
                        lat[i] = time.perf_counter() - t
                    secs = time.perf_counter() - start
                finally:
                    a.close()
                    self.cleanup(path)
                emit(
                    "enqueue_batch",
                    q,
                    params,
                    rep,
                    metrics={"tasks_per_s": calls * size / secs, "call_p50_us": pct(lat, 0.5) * 1e6},
                )

    def claim_depth(self, q: str) -> None:
        """Fill a queue to each depth (plus what the repetitions consume), then claim and complete
        tasks one call after the other. Our two claim variants (one task per call, batches of 64) run
        one after the other on the same database."""
        ops = self.sizes.claim_ops
        for depth in self.sizes.depths:
            params = {"depth": depth, "ops": ops}
            path = self.path(q)
            a = open_adapter(q, path)
            try:
                t = time.perf_counter()
                variants = 2 if isinstance(a, PrismqAdapter) else 1
                a.fill(depth + variants * ((self.sizes.reps + 1) * (ops + WARMUP) + CLAIM_BATCH))
                log(f"  filled {depth:,} in {time.perf_counter() - t:.1f} s")
                self.claim_loop(a, q, params)
                if isinstance(a, PrismqAdapter):
                    a.batch = CLAIM_BATCH
                    self.claim_loop(a, "prismq-batch", params)
            finally:
                a.close()
                self.cleanup(path)

    def claim_loop(self, a: Adapter, q: str, params: dict[str, int]) -> None:
        """Warm up with 200 tasks, then time the repetitions (each stopped after TIME_CAP_S)."""
        ops = params["ops"]
        for rep in range(-1, self.sizes.reps):  # rep -1 is the warm-up
            lat: list[float] = []
            done = 0
            target, cap = (WARMUP, TIME_CAP_S / 5) if rep < 0 else (ops, TIME_CAP_S)
            start = time.perf_counter()
            while done < target and time.perf_counter() - start < cap:
                t = time.perf_counter()
                items = a.claim()
                if not items:
                    raise RuntimeError("queue ran empty")
                a.complete(items)
                lat.append(time.perf_counter() - t)
                done += len(items)
            secs = time.perf_counter() - start
            if rep >= 0:
                m = {
                    "tasks_per_s": done / secs,
                    "call_p50_us": pct(lat, 0.5) * 1e6,
                    "call_p99_us": pct(lat, 0.99) * 1e6,
                }
                if done < ops:
                    m["capped_ops"] = float(done)
                emit("claim_depth", q, params, rep, metrics=m)
                if done < ops:
                    return  # one capped repetition says enough

    def e2e(self, q: str) -> None:
        n = self.sizes.e2e_tasks
        for procs in self.sizes.procs:
            params = {"procs": procs, "tasks": n}
            if procs > 1 and q in MULTIPROCESS_UNSAFE:
                emit("e2e", q, params, unsupported=MULTIPROCESS_UNSAFE[q])
                continue
            for rep in self.reps:
                emit("e2e", q, params, rep, metrics=self.e2e_once(q, procs, n))

    def e2e_once(self, q: str, procs: int, n: int) -> dict[str, float]:
        """P worker processes wait on an empty queue; the parent enqueues n tasks in batches of 100
        (one call per task for a queue without a batch call) while they work. The clock runs from
        the first enqueue to the last completion."""
        path = self.path(q)
        a = open_adapter(q, path)
        try:
            with workers(q, path, procs) as sh:
                batch = [PAYLOAD] * 100
                start = time.time()
                for lo in range(0, n, len(batch)):
                    chunk = batch[: min(len(batch), n - lo)]
                    try:
                        a.enqueue_batch(chunk)
                    except Unsupported:
                        for body in chunk:
                            a.enqueue(body)
                produced = time.time() - start
                while sh.done.value < n:
                    check_errors(sh)
                    if time.time() - start > CHILD_TIMEOUT_S:
                        raise RuntimeError(f"timed out with {sh.done.value} of {n} done")
                    time.sleep(0.002)
                return {
                    "tasks_per_s": n / (sh.last.value - start),
                    "enqueue_s": produced,
                    "completed": float(sh.done.value),
                }
        finally:
            a.close()
            self.cleanup(path)

    def latency(self, q: str) -> None:
        """One worker process waits; the parent enqueues one task at a time, 5-15 ms apart, carrying
        its enqueue time; the worker reports when it got it."""
        samples = self.sizes.latency_samples
        path = self.path(q)
        a = open_adapter(q, path)
        try:
            with workers(q, path, 1, "latency") as sh:
                lat: list[float] = []
                for i in range(samples + 10):
                    time.sleep(0.005 + (i % 11) / 1000)
                    a.enqueue({"t": time.time_ns()})
                    msg = sh.msgs.get(timeout=30)
                    if msg[0] != "lat":
                        raise RuntimeError(f"worker: {msg}")
                    if i >= 10:
                        lat.append(float(msg[1]))
        finally:
            a.close()
            self.cleanup(path)
        emit("latency", q, {"samples": samples}, metrics={"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)})

    def idle(self, q: str) -> None:
        secs = self.sizes.idle_s
        path = self.path(q)
        a = open_adapter(q, path)
        try:
            with workers(q, path, 1, "idle", secs) as sh:
                msg = sh.msgs.get(timeout=secs + 60)
                if msg[0] != "cpu":
                    raise RuntimeError(f"worker: {msg}")
        finally:
            a.close()
            self.cleanup(path)
        emit(
            "idle",
            q,
            {"seconds": int(secs)},
            metrics={"cpu_percent": 100 * msg[1] / msg[2], "cpu_ms_per_s": 1000 * msg[1] / msg[2]},
        )

    def disk(self, q: str) -> None:
        """Enqueue n tasks (batches of 100 where the queue has a batch call), checkpoint, measure;
        complete them all, checkpoint, measure again."""
        n = self.sizes.disk_tasks
        path = self.path(q)
        try:
            a = open_adapter(q, path)
            try:
                for lo in range(0, n, 100):
                    try:
                        a.enqueue_batch([PAYLOAD] * 100)
                    except Unsupported:
                        for _ in range(100):
                            a.enqueue(PAYLOAD)
                    del lo
            finally:
                a.close()
            queued = checkpoint_size(a.db_file)
            a = open_adapter(q, path)
            try:
                done = 0
                while done < n:
                    items = a.claim()
                    if not items:
                        raise RuntimeError(f"queue ran empty after {done} of {n}")
                    a.complete(items)
                    done += len(items)
            finally:
                a.close()
            finished = checkpoint_size(a.db_file)
        finally:
            self.cleanup(path)
        emit(
            "disk",
            q,
            {"tasks": n},
            metrics={"queued_bytes_per_task": queued / n, "done_bytes_per_task": finished / n},
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default 3, quick 1)")
    ap.add_argument("--queues", default=",".join(QUEUES))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.reps > 0:
        sizes = replace(sizes, reps=args.reps)
    log(f"prismq_queue {prismq_queue.__version__} from {os.path.dirname(prismq_queue.__file__)}")
    with tempfile.TemporaryDirectory(prefix="prismq-peers-py-") as workdir:
        b = Bench(sizes, tuple(args.queues.split(",")), workdir)
        for w in args.workloads.split(","):
            if w not in WORKLOADS:
                ap.error(f"unknown workload {w!r}")
            b.run(w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
