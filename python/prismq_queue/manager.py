"""A drop-in replacement of the app's in-memory ``BackgroundTaskManager``, backed by the queue.

The app starts background runs with ``manager.start_task(run, coro)`` and tracks them in a
``RunRegistry``. :func:`create_task_manager` returns one of three managers with that API, chosen
by ``backend=`` or ``PRISMQ_TASK_BACKEND``:

``memory``
    :class:`InMemoryTaskManager`, the original behaviour (for comparison and rollback).
``queue``
    :class:`QueuedTaskManager`: the same transitions, also recorded in the queue database
    (one task per run: type = module id, idempotency key = run id, the run's fields in the
    payload, its final record in the result, the error text of a failure). Runs survive a restart,
    can be limited to ``max_concurrent`` at once (the scheduling strategy picks the next one) and
    can be handed to worker processes (:meth:`QueuedTaskManager.register_handler`).
``shadow``
    :class:`ShadowTaskManager`: the in-memory manager stays in charge and every transition is
    mirrored into the queue database; :meth:`ShadowTaskManager.verify` reports any divergence.

Example::

    from prismq_queue import create_task_manager

    manager = create_task_manager(registry)           # PRISMQ_TASK_BACKEND=memory|queue|shadow
    run_id = manager.start_task(run, execute(run))    # inside a running event loop
    await manager.wait_all()

How a run is stored: a run started with a coroutine is owned by the manager that runs it (its
task carries the requirement ``{"prismq.owner": <manager id>}``, which only that manager's worker
offers, so no other process claims it); a run started without a coroutine carries no requirement
and any worker with a handler for its module may run it. Database writes happen on one
background thread per manager, in batches, so ``start_task`` only appends to a list.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import dataclasses
import functools
import inspect
import logging
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Union

from . import _lib
from ._errors import (
    InvalidArgumentError,
    InvalidStateError,
    LeaseLostError,
    QueueClosedError,
    QueueError,
    TaskNotFoundError,
    error_from_code,
)
from .config import WorkerConfig
from .models import AckResult, SchedulingStrategy, Task, TaskStatus, _dumps
from .queue import Queue
from .runner import HandlerRegistry, TaskContext
from .runs import QueueRunRegistry, RunRecord, record_to_run, run_to_record, snapshot_run
from .worker import Worker

__all__ = [
    "BACKENDS",
    "Divergence",
    "InMemoryTaskManager",
    "QueuedTaskManager",
    "RecoveredRun",
    "RunHandler",
    "ShadowTaskManager",
    "TaskManager",
    "create_task_manager",
    "run_handler",
]

logger = logging.getLogger("prismq_queue.manager")

RunHandler = Callable[[Any], Awaitable[Any]]
"""``async def handler(run)``: executes a run (the app's ``Run`` object, or a :class:`RunRecord`)."""

BACKENDS = ("memory", "queue", "shadow")
"""Values of ``backend=`` / ``PRISMQ_TASK_BACKEND``."""

OWNER_KEY = "prismq.owner"
"""Requirement key that pins a run to the manager that executes its coroutine."""

_WORKER_PREFIX = "prismq-tm:"
_RUN_STATUS = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.LEASED: "running",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}
_TERMINAL = ("completed", "failed", "cancelled")
_ENQUEUE_CHUNK = 500
_CLAIM_BATCH = 500
_BATCH_TARGET = 256  # commands that wake the writer at once
_BATCH_LINGER = 0.002  # seconds the writer waits for a burst to gather


# ---- helpers shared by the managers ----------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _status_value(run: Any) -> str:
    status = getattr(run, "status", None)
    if isinstance(status, Enum):
        status = status.value
    return str(status) if status is not None else ""


def _set_status(run: Any, value: str) -> None:
    """Set ``run.status`` to the member of the run's own ``RunStatus`` enum (or the plain value)."""
    current = getattr(run, "status", None)
    if isinstance(current, Enum):
        try:
            run.status = type(current)(value)
            return
        except ValueError:
            pass
    run.status = value


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _mark_started(run: Any) -> None:
    run.started_at = _now()
    if hasattr(run, "completed_at"):
        run.completed_at = None
    if hasattr(run, "duration_seconds"):
        run.duration_seconds = None


def _mark_finished(run: Any) -> None:
    end = _now()
    run.completed_at = end
    started = _aware(getattr(run, "started_at", None))
    if started is not None:
        run.duration_seconds = max(0.0, (end - started).total_seconds())


def _close_coro(coro: Any) -> None:
    close = getattr(coro, "close", None)
    if callable(close):
        try:
            close()
        except RuntimeError:  # already running
            pass


def _pid_alive(pid: int) -> bool:
    """Tell whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        kernel32 = getattr(ctypes, "windll").kernel32  # noqa: B009 - windll exists only on Windows
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


TaskManager = Union["InMemoryTaskManager", "QueuedTaskManager", "ShadowTaskManager"]
"""Any of the three managers; they share the ``BackgroundTaskManager`` API."""


# ---- the original behaviour --------------------------------------------------------------------------


class _ActiveRuns:
    """The ``BackgroundTaskManager`` queries over ``tasks`` (run_id -> asyncio.Task), for every manager."""

    tasks: dict[str, asyncio.Task[None]]

    def get_active_task_count(self) -> int:
        """Return the number of active runs (running or waiting)."""
        return len(self.tasks)

    def get_active_task_ids(self) -> list[str]:
        """Return the ids of the active runs."""
        return list(self.tasks.keys())

    def is_task_active(self, run_id: str) -> bool:
        """Tell whether a run is active in this manager."""
        return run_id in self.tasks


class InMemoryTaskManager(_ActiveRuns):
    """The app's ``BackgroundTaskManager``: runs tracked in memory only.

    ``start_task`` (inside a running loop) schedules the coroutine and returns ``run.run_id``; the
    run becomes RUNNING, then COMPLETED with ``exit_code = 0``, FAILED with ``error_message``, or
    CANCELLED (the ``CancelledError`` is re-raised); each change is written with
    ``registry.update_run(run)``. Two fixes over the original: a run cancelled before its first
    step still leaves ``tasks`` (and ends CANCELLED), and a finished run never removes a newer
    run that reused its id from ``tasks``.

    :param registry: the app's ``RunRegistry`` (or a :class:`QueueRunRegistry`).
    """

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._started: set[asyncio.Task[None]] = set()

    async def _execute_task(self, run: Any, coro: Awaitable[Any]) -> None:
        current = asyncio.current_task()
        if current is not None:
            self._started.add(current)
        try:
            _set_status(run, "running")
            self.registry.update_run(run)
            logger.info("task %s started", run.run_id)
            await coro
            _set_status(run, "completed")
            run.exit_code = 0
            self.registry.update_run(run)
            logger.info("task %s completed successfully", run.run_id)
        except asyncio.CancelledError:
            _set_status(run, "cancelled")
            self.registry.update_run(run)
            logger.warning("task %s was cancelled", run.run_id)
            raise
        except Exception as e:
            _set_status(run, "failed")
            run.error_message = str(e)
            self.registry.update_run(run)
            logger.exception("task %s failed: %s", run.run_id, e)

    def _done(self, run: Any, coro: Awaitable[Any], task: asyncio.Task[None]) -> None:
        if self.tasks.get(run.run_id) is task:
            del self.tasks[run.run_id]
        if task in self._started:
            self._started.discard(task)
            return
        # Cancelled before its first step: the wrapper never ran.
        _close_coro(coro)
        _set_status(run, "cancelled")
        try:
            self.registry.update_run(run)
        except Exception:  # noqa: BLE001 - a done callback must not raise
            logger.exception("task %s: registry update failed", run.run_id)

    def start_task(self, run: Any, coro: Awaitable[Any]) -> str:
        """Schedule ``coro`` for ``run`` in the running event loop and return ``run.run_id`` at once.

        :raises RuntimeError: when no event loop is running.
        """
        task = asyncio.get_running_loop().create_task(self._execute_task(run, coro))
        self.tasks[run.run_id] = task
        task.add_done_callback(functools.partial(self._done, run, coro))
        logger.info("started background task %s (%d active tasks)", run.run_id, len(self.tasks))
        return str(run.run_id)

    async def cancel_task(self, run_id: str) -> bool:
        """Cancel a run and wait for it to stop; False when it is unknown or already done."""
        task = self.tasks.get(run_id)
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return True

    async def wait_all(self) -> None:
        """Wait for every active run; their exceptions are swallowed."""
        if self.tasks:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def close(self) -> None:
        """Nothing to release (for symmetry with the queue-backed managers)."""


# ---- the database side: one writer thread per manager ----------------------------------------------


@dataclasses.dataclass(eq=False)
class _Entry:
    """One run known to a manager. Fields after ``loop_task`` belong to the writer thread."""

    run: Any
    run_id: str
    module_id: str
    owned: bool  # a local coroutine run, pinned to this manager
    priority: int = 100
    coro: Any = None
    handler: RunHandler | None = None
    grant: asyncio.Future[None] | None = None
    loop_task: asyncio.Task[None] | None = None
    started: bool = False
    task_id: int | None = None
    token: int | None = None
    worker: Worker | None = None
    db_status: str = "queued"


@dataclasses.dataclass(frozen=True)
class RecoveredRun:
    """What restart recovery did with one run a dead process left behind.

    ``action`` is ``"rerun"`` (a handler for its module runs it again here), ``"failed"`` (no
    handler: marked FAILED with ``reason``) or ``"requeued"`` (a run for any worker, given back
    to the queue).
    """

    run_id: str
    module_id: str
    task_id: int
    action: str
    reason: str


class _Host:
    """What the writer thread needs from its manager (called on the writer thread)."""

    def on_claimed(self, entry: _Entry) -> None:  # a waiting run got its slot
        raise NotImplementedError

    def on_foreign(self, task: Task, worker: Worker) -> bool:  # True: the manager runs it
        return False

    def ready(self) -> bool:  # can execute claimed runs (its event loop is known)
        return False

    def on_remote(self, entry: _Entry, task: Task) -> None:  # a watched run changed in the db
        pass

    def on_cancel_request(self, task_id: int) -> None:
        pass


class _Store:
    """Owns the manager's workers and writes every run transition on one background thread."""

    def __init__(
        self,
        queue: Queue,
        host: _Host,
        *,
        owner: str,
        strategy: SchedulingStrategy,
        max_concurrent: int | None,
        lease_seconds: float,
        poll_interval: float,
    ) -> None:
        self.queue = queue
        self.owner = owner
        self._host = host
        self._strategy = strategy
        self._limit = max_concurrent
        self._lease = lease_seconds
        self._poll = poll_interval
        self._cv = threading.Condition()
        self._cmds: collections.deque[tuple[Any, ...]] = collections.deque()
        self._stopping = False
        self._busy = False
        self._error: BaseException | None = None
        # Writer-thread state.
        self._workers: list[Worker] = []
        self._types: frozenset[str] = frozenset()
        self.handler_types: frozenset[str] = frozenset()
        self._by_task: dict[int, _Entry] = {}
        self.task_ids: dict[str, int] = {}  # run id -> its newest task (written by this thread)
        self._unleased: dict[int, _Entry] = {}  # owned runs running here, their claim pending
        self._waiting = 0  # owned runs waiting for a slot (limited mode)
        self._running = 0  # leases held for runs executing here
        self._finishes: list[tuple[_Entry, str, str | None, dict[str, Any]]] = []
        self._watched: dict[int, _Entry] = {}
        self._next_heartbeat = time.monotonic() + self._lease / 3
        self._next_poll = 0.0
        self._thread = threading.Thread(target=self._serve, name=f"prismq-runs-{owner}", daemon=True)
        self._thread.start()

    # ---- called from any thread ------------------------------------------------------------------

    def post(self, *cmd: Any) -> None:
        with self._cv:
            if self._stopping:
                raise QueueClosedError("task manager is closed")
            was_empty = not self._cmds
            self._cmds.append(cmd)
            if was_empty or len(self._cmds) >= _BATCH_TARGET:
                self._cv.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every command posted so far is written; False on timeout."""
        done = threading.Event()
        with self._cv:
            if self._stopping and not self._thread.is_alive():
                return True
            self._cmds.append(("sync", done))
            self._cv.notify()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout)
        for w in self._workers:
            try:
                w.close()
            except QueueError:
                pass

    # ---- writer thread -----------------------------------------------------------------------------

    def worker(self, types: set[str] | frozenset[str]) -> Worker:
        """The current worker, re-opened under a new id when it must take more types.

        Older workers stay open (their leases are renewed by heartbeats) until close.
        """
        if self._workers and types <= self._types:
            return self._workers[-1]
        self._types = self._types | frozenset(types)
        config = WorkerConfig(
            worker_id=f"{_WORKER_PREFIX}{self.owner}:{len(self._workers)}",
            capabilities={OWNER_KEY: self.owner},
            scheduling_strategy=self._strategy,
            lease_duration_seconds=self._lease,
            types=sorted(self._types),
        )
        w = Worker(self.queue, config)
        self._workers.append(w)
        return w

    def adopt_worker(self, dead_owner: str, types: set[str]) -> Worker:
        config = WorkerConfig(
            worker_id=f"{_WORKER_PREFIX}{self.owner}:adopt:{dead_owner}:{len(self._workers)}",
            capabilities={OWNER_KEY: dead_owner},
            lease_duration_seconds=self._lease,
            types=sorted(types),
        )
        w = Worker(self.queue, config)
        self._workers.append(w)
        return w

    def _serve(self) -> None:
        while True:
            with self._cv:
                if not self._cmds and not self._stopping:
                    self._cv.wait(self._wait_time())
                if 0 < len(self._cmds) < _BATCH_TARGET and not self._stopping:
                    # Let a burst of transitions gather: one transaction per burst, not per run.
                    self._cv.wait(_BATCH_LINGER)
                batch = list(self._cmds)
                self._cmds.clear()
                stopping = self._stopping
            syncs = [c[1] for c in batch if c[0] == "sync"]
            try:
                self._process([c for c in batch if c[0] != "sync"])
            except QueueClosedError as exc:
                self._error = exc
                for ev in syncs:
                    ev.set()
                return
            except Exception as exc:  # noqa: BLE001 - the writer must survive; the app keeps running
                logger.exception("task manager: writing run state failed: %s", exc)
                time.sleep(0.05)
            for ev in syncs:
                ev.set()
            if stopping:
                with self._cv:
                    if not self._cmds:
                        return

    def _wait_time(self) -> float:
        now = time.monotonic()
        wait = self._next_heartbeat - now
        if self._watched or self.handler_types or self._unleased or self._finishes or self._waiting:
            wait = min(wait, self._next_poll - now)
        return max(0.0, min(wait, 1.0))

    def _process(self, batch: list[tuple[Any, ...]]) -> None:
        news = [c for c in batch if c[0] == "new"]
        if news:
            self._enqueue([(c[1], c[2]) for c in news])
        for cmd in batch:
            kind = cmd[0]
            if kind == "finish":
                self._finishes.append((cmd[1], cmd[2], cmd[3], cmd[4]))
            elif kind == "cancel":
                self._cancel(cmd[1])
            elif kind == "watch":
                entry = cmd[1]
                if entry.task_id is not None:
                    self._watched[entry.task_id] = entry
            elif kind == "handlers":
                self.handler_types = frozenset(cmd[1])
            elif kind == "call":
                cmd[1]()
        self._settle_finishes()
        now = time.monotonic()
        if self._unleased or (self._limit is not None and self._waiting) or now >= self._next_poll:
            self._claim()
        self._settle_finishes()
        now = time.monotonic()
        if now >= self._next_poll:
            self._poll_watched()
            self._next_poll = now + self._poll
        if now >= self._next_heartbeat:
            self._heartbeat()
            self._next_heartbeat = time.monotonic() + self._lease / 3

    def _enqueue(self, items: list[tuple[_Entry, Any]]) -> None:
        fn = _lib.FUNCTIONS["pq_enqueue_many"]
        for start in range(0, len(items), _ENQUEUE_CHUNK):
            chunk = []
            for entry, snap in items[start : start + _ENQUEUE_CHUNK]:
                try:
                    chunk.append((entry, run_to_record(snap)))
                except InvalidArgumentError as exc:
                    logger.error("run %s not recorded in the queue: %s", entry.run_id, exc)
            if not chunk:
                continue
            body = [self._native(e, rec, e.run_id) for e, rec in chunk]
            out = _lib.call_json(fn, self.queue._h(), _dumps(body, "runs"))
            for (entry, rec), res in zip(chunk, out, strict=True):
                task_id = int(res["task"]["id"])
                if not res["created"]:
                    task_id = self._enqueue_again(entry, rec)
                self._track(entry, task_id)

    def _native(self, entry: _Entry, record: dict[str, Any], key: str) -> dict[str, Any]:
        """The ``pq_enqueue`` object of a run (values already valid: no per-field checks)."""
        obj: dict[str, Any] = {
            "type": entry.module_id,
            "payload": {"run": record},
            "priority": entry.priority,
            "max_attempts": 1,
            "idempotency_key": key,
        }
        if entry.owned:
            obj["requirements"] = {OWNER_KEY: self.owner}
        return obj

    def _enqueue_again(self, entry: _Entry, record: dict[str, Any]) -> int:
        """The run id was used before: keep the old run's record and store this one as ``id~N``."""
        fn = _lib.FUNCTIONS["pq_enqueue"]
        n = 2
        while True:
            obj = self._native(entry, record, f"{entry.run_id}~{n}")
            out = _lib.call_json(fn, self.queue._h(), _dumps(obj, "run"))
            if out["created"]:
                return int(out["task"]["id"])
            n += 1

    def _track(self, entry: _Entry, task_id: int) -> None:
        entry.task_id = task_id
        self.task_ids[entry.run_id] = task_id
        self._by_task[task_id] = entry
        if not entry.owned:
            self._watched[task_id] = entry
        elif self._limit is None:
            self._unleased[task_id] = entry
        else:
            self._waiting += 1

    def _cancel(self, entry: _Entry) -> None:
        """Cancel a run that is not executing here: queued ones now, leased ones by request."""
        if entry.task_id is None:
            return
        try:
            task = self.queue.cancel(entry.task_id)
        except InvalidStateError:
            return
        except TaskNotFoundError:
            return
        if task.status is TaskStatus.CANCELLED and entry.owned and self._limit is not None:
            self._waiting = max(0, self._waiting - 1)

    def _claim(self) -> None:
        handler_types = self.handler_types if self._host.ready() else frozenset()
        types = {e.module_id for e in self._unleased.values()} | set(handler_types)
        if self._limit is not None:
            types |= {e.module_id for e in self._by_task.values() if e.owned}
        if not types:
            return
        worker = self.worker(types)
        held: list[Task] = []
        try:
            while True:
                if self._limit is not None:
                    want = self._limit - self._running
                elif self._unleased:
                    want = min(len(self._unleased) + (64 if handler_types else 0), _CLAIM_BATCH)
                else:
                    want = 64 if handler_types else 0
                if want <= 0:
                    return
                raw = _lib.call_json(_lib.FUNCTIONS["pq_claim"], worker._h(), want, 0)["tasks"]
                if not raw:
                    return
                for item in raw:
                    entry = self._by_task.get(item["id"])
                    if entry is not None and entry.owned:
                        self._leased(entry, int(item["lease_token"]), worker)
                        continue
                    t = Task.from_json(item)
                    if not self._claimed(t, worker):
                        held.append(t)
                if self._limit is None and not self._unleased:
                    return
        finally:
            if held:
                # Someone else's tasks of our types: give them back untouched.
                worker.ack_many([{"task": t, "op": "release"} for t in held])

    def _leased(self, entry: _Entry, token: int, worker: Worker) -> None:
        """One of our own runs was claimed (leased) under ``token``."""
        entry.token = token
        entry.worker = worker
        entry.db_status = "running"
        self._running += 1
        if self._limit is None:
            assert entry.task_id is not None  # claimed: it was enqueued
            self._unleased.pop(entry.task_id, None)
        else:
            self._waiting = max(0, self._waiting - 1)
            self._host.on_claimed(entry)

    def _claimed(self, task: Task, worker: Worker) -> bool:
        entry = self._by_task.get(task.id)
        if entry is not None and entry.owned:
            self._leased(entry, task.lease_token, worker)
            return True
        if task.type in self.handler_types and OWNER_KEY not in task.requirements:
            if self._host.on_foreign(task, worker):
                self._running += 1
                if entry is not None:
                    self._watched.pop(task.id, None)
                return True
        return False

    def lease_for(self, entry: _Entry, task: Task, worker: Worker) -> None:
        """Record that ``entry`` runs here under ``task``'s lease (writer thread)."""
        entry.task_id = task.id
        entry.token = task.lease_token
        entry.worker = worker
        entry.db_status = "running"
        self._by_task[task.id] = entry
        self.task_ids[entry.run_id] = task.id
        self._watched.pop(task.id, None)

    def _settle_finishes(self) -> None:
        if not self._finishes:
            return
        acks: list[dict[str, Any]] = []
        settled: list[_Entry] = []
        keep: list[tuple[_Entry, str, str | None, dict[str, Any]]] = []
        for item in self._finishes:
            entry, outcome, error, record = item
            if entry.task_id is None:
                keep.append(item)  # not enqueued yet (a failed write is retried)
                continue
            if entry.token is None:
                if entry.owned and self._limit is None and entry.task_id in self._unleased:
                    keep.append(item)  # claim first, then settle
                    continue
                if entry.db_status == "queued":
                    # Never started (cancelled while it waited for a slot).
                    self._unleased.pop(entry.task_id, None)
                    self._cancel(entry)
                    self._forget(entry)
                continue
            ack: dict[str, Any] = {"id": entry.task_id, "token": entry.token}
            if outcome == "completed":
                try:
                    ack.update(op="complete", result={"run": run_to_record(record)})
                except InvalidArgumentError as exc:
                    ack.update(op="fail", error=f"run record not JSON-able: {exc}", retryable=False)
            elif outcome == "failed":
                ack.update(op="fail", error=error or "failed", retryable=False)
            else:
                ack["op"] = "cancel"
            acks.append(ack)
            settled.append(entry)
        self._finishes = keep
        if not acks:
            return
        worker = self._workers[-1]
        out = _lib.call_json(_lib.FUNCTIONS["pq_ack_many"], worker._h(), _dumps(acks, "acks"))
        results = [
            AckResult(r["id"], error_from_code(r["status"], r.get("error") or "") if r["status"] else None)
            for r in out["results"]
        ]
        for entry, res in zip(settled, results, strict=True):
            if res.error is not None and not isinstance(res.error, LeaseLostError):
                logger.warning("run %s: final state not recorded: %s", entry.run_id, res.error)
            elif isinstance(res.error, LeaseLostError):
                logger.warning("run %s: lease lost before the final state was recorded", entry.run_id)
            self._running = max(0, self._running - 1)
            self._forget(entry)

    def _forget(self, entry: _Entry) -> None:
        if entry.task_id is not None:
            self._by_task.pop(entry.task_id, None)
            self._watched.pop(entry.task_id, None)
        entry.token = None
        entry.db_status = "done"

    def _poll_watched(self) -> None:
        for task_id, entry in list(self._watched.items()):
            try:
                task = self.queue.get(task_id)
            except TaskNotFoundError:
                self._watched.pop(task_id, None)
                continue
            status = _RUN_STATUS[task.status]
            if status != entry.db_status:
                entry.db_status = status
                self._host.on_remote(entry, task)
            if status in _TERMINAL:
                self._watched.pop(task_id, None)
                self._by_task.pop(task_id, None)

    def _heartbeat(self) -> None:
        for w in self._workers:
            try:
                for task_id in w.heartbeat():
                    self._host.on_cancel_request(task_id)
            except QueueClosedError:
                raise
            except QueueError as exc:
                logger.warning("task manager heartbeat failed: %s", exc)


# ---- the queue-backed manager ----------------------------------------------------------------------


def _open_queue(queue: Queue | str | os.PathLike[str] | None) -> tuple[Queue, bool]:
    if isinstance(queue, Queue):
        return queue, False
    return Queue(queue), True


class QueuedTaskManager(_Host, _ActiveRuns):
    """The ``BackgroundTaskManager`` API with every run recorded in the persistent queue.

    Transitions are those of the original (RUNNING, then COMPLETED with ``exit_code = 0``,
    FAILED with ``error_message``, or CANCELLED), each written with ``registry.update_run(run)``
    on the event-loop thread and to the queue database by a background thread; ``started_at``,
    ``completed_at`` and ``duration_seconds`` are set too. The coroutine given to ``start_task``
    runs in the caller's event loop.

    :param registry: the app's ``RunRegistry`` or a :class:`QueueRunRegistry`.
    :param queue: an open :class:`Queue`, a database path, or None (a :class:`QueueRunRegistry`
        registry's database, else ``PRISMQ_QUEUE_DB_PATH`` or the platform default).
    :param max_concurrent: at most this many runs execute at once; the others wait QUEUED and
        ``strategy`` picks the next. None (default): every run starts at once.
    :param strategy: claim order of waiting runs; default PRIORITY (the run's ``priority``
        attribute if it has one, else 100; lower first).
    :param handlers: ``{module_id: async fn(run)}`` known before restart recovery runs.
    :param recover: recover runs that dead processes left behind when opening (default True).
    :param lease_seconds: lease of the runs this manager executes, renewed every third of it.
    :param poll_interval: how often runs handed to other workers are polled, and new ones claimed.
    :raises QueueError: when the database cannot be opened.
    """

    def __init__(
        self,
        registry: Any,
        queue: Queue | str | os.PathLike[str] | None = None,
        *,
        max_concurrent: int | None = None,
        strategy: SchedulingStrategy | str = SchedulingStrategy.PRIORITY,
        handlers: Mapping[str, RunHandler] | None = None,
        recover: bool = True,
        lease_seconds: float = 60.0,
        poll_interval: float = 0.5,
    ) -> None:
        if max_concurrent is not None and (
            isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
        ):
            raise InvalidArgumentError("max_concurrent must be an int >= 1 or None")
        if queue is None and isinstance(registry, QueueRunRegistry):
            queue = registry.queue
        self.registry = registry
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.handler_registry = HandlerRegistry()
        """The registered handlers as task handlers, for ``prismq-queue worker --handlers``."""
        self.recovered: list[RecoveredRun] = []
        """What the last :meth:`recover` did."""
        self._handlers: dict[str, RunHandler] = {}
        self._entries: dict[str, _Entry] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_reruns: list[_Entry] = []
        self._limit = max_concurrent
        self._closed = False
        self._queue, self._owns_queue = _open_queue(queue)
        self.owner_id = uuid.uuid4().hex[:12]
        """This manager's id in the database (its runs carry the requirement ``prismq.owner``)."""
        try:
            self._store = _Store(
                self._queue,
                self,
                owner=self.owner_id,
                strategy=SchedulingStrategy.coerce(strategy),
                max_concurrent=max_concurrent,
                lease_seconds=lease_seconds,
                poll_interval=poll_interval,
            )
            self._store.post("call", lambda: self._store.worker(set()))
            self._store.flush()  # registered now: other processes see this manager alive
            for module_id, fn in (handlers or {}).items():
                self.register_handler(module_id, fn)
            if recover:
                self.recover()
        except BaseException:
            if self._owns_queue:
                self._queue.close()
            raise

    # ---- plumbing --------------------------------------------------------------------------------

    @property
    def queue(self) -> Queue:
        """The queue database."""
        return self._queue

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        if self._pending_reruns:
            pending, self._pending_reruns = self._pending_reruns, []
            for entry in pending:
                self._launch(entry)
        return loop

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the event loop thread (from the writer thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed meanwhile
            pass

    def _update(self, run: Any) -> None:
        self.registry.update_run(run)

    # ---- the BackgroundTaskManager API -------------------------------------------------------------

    def start_task(self, run: Any, coro: Awaitable[Any] | None = None, *, priority: int | None = None) -> str:
        """Start a run and return ``run.run_id`` at once (call inside a running event loop).

        With ``coro``, the coroutine runs here, in the caller's loop (after waiting for a slot when
        ``max_concurrent`` is set). Without it, the run is queued for any worker with a handler
        for ``run.module_id`` (this manager's, via :meth:`register_handler`, or a worker process).

        :param priority: claim priority (lower first); default ``run.priority`` or 100.
        :raises RuntimeError: when no event loop is running.
        :raises QueueClosedError: after :meth:`close`.
        :raises InvalidArgumentError: when the run has no run_id/module_id or is not JSON-able.
        """
        loop = self._bind_loop()
        if self._closed:
            raise QueueClosedError("task manager is closed")
        run_id = str(run.run_id)
        module_id = getattr(run, "module_id", None)
        if not isinstance(module_id, str) or not module_id:
            raise InvalidArgumentError(f"run {run_id!r} needs a non-empty str module_id")
        if priority is None:
            priority = getattr(run, "priority", None)
            if isinstance(priority, bool) or not isinstance(priority, int):
                priority = 100
        entry = _Entry(run, run_id, module_id, owned=coro is not None, priority=priority, coro=coro)
        record = snapshot_run(run)
        if coro is None:
            entry.grant = loop.create_future()
            self._store.post("new", entry, record)
            task = loop.create_task(self._watch_or_execute(entry))
        else:
            if self._limit is not None:
                entry.grant = loop.create_future()
            self._store.post("new", entry, record)
            task = loop.create_task(self._execute(entry))
        entry.loop_task = task
        self._entries[run_id] = entry
        self.tasks[run_id] = task
        task.add_done_callback(functools.partial(self._done, entry))
        return run_id

    async def _execute(self, entry: _Entry) -> None:
        entry.started = True
        run = entry.run
        try:
            if entry.grant is not None:
                await entry.grant
            _set_status(run, "running")
            _mark_started(run)
            self._update(run)
            logger.info("task %s started", entry.run_id)
            coro = entry.coro
            if coro is None:
                assert entry.handler is not None  # set by _execute_claimed
                coro = entry.handler(run)
            await coro
            _set_status(run, "completed")
            run.exit_code = 0
            _mark_finished(run)
            self._update(run)
            self._finish(entry, "completed", None)
            logger.info("task %s completed successfully", entry.run_id)
        except asyncio.CancelledError:
            _close_coro(entry.coro)
            _set_status(run, "cancelled")
            _mark_finished(run)
            self._update(run)
            self._finish(entry, "cancelled", None)
            logger.warning("task %s was cancelled", entry.run_id)
            raise
        except Exception as e:
            _set_status(run, "failed")
            run.error_message = str(e)
            _mark_finished(run)
            self._update(run)
            self._finish(entry, "failed", str(e) or type(e).__name__)
            logger.exception("task %s failed: %s", entry.run_id, e)

    def _finish(self, entry: _Entry, outcome: str, error: str | None) -> None:
        try:
            self._store.post("finish", entry, outcome, error, snapshot_run(entry.run))
        except QueueClosedError:
            logger.warning("run %s: manager closed, final state not recorded in the queue", entry.run_id)

    async def _watch_or_execute(self, entry: _Entry) -> None:
        """A run for any worker: wait for its outcome, or execute it when this manager claims it."""
        entry.started = True
        try:
            assert entry.grant is not None  # set by start_task
            await entry.grant
        except asyncio.CancelledError:
            _set_status(entry.run, "cancelled")
            _mark_finished(entry.run)
            self._update(entry.run)
            if entry.token is None:
                self._store.post("cancel", entry)
            raise
        if entry.handler is not None:  # claimed here: run it like a local coroutine
            entry.owned = True
            await self._execute(entry)

    def _done(self, entry: _Entry, task: asyncio.Task[None]) -> None:
        if self.tasks.get(entry.run_id) is task:
            del self.tasks[entry.run_id]
        if self._entries.get(entry.run_id) is entry:
            del self._entries[entry.run_id]
        if not entry.started:  # cancelled before its first step
            _close_coro(entry.coro)
            _set_status(entry.run, "cancelled")
            try:
                self._update(entry.run)
            except Exception:  # noqa: BLE001 - a done callback must not raise
                logger.exception("run %s: registry update failed", entry.run_id)
            if entry.owned:
                self._finish(entry, "cancelled", None)
            else:
                try:
                    self._store.post("cancel", entry)
                except QueueClosedError:
                    pass

    async def cancel_task(self, run_id: str) -> bool:
        """Cancel a run and wait for it to stop; False when it is unknown or already done.

        A run handed to another worker gets a cancel request there and ends CANCELLED here.
        """
        self._bind_loop()
        task = self.tasks.get(run_id)
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return True

    async def wait_all(self) -> None:
        """Wait for every active run; their exceptions are swallowed."""
        self._bind_loop()
        if self.tasks:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    # ---- persistable work ------------------------------------------------------------------------------

    def register_handler(self, module_id: str, fn: RunHandler) -> None:
        """Register ``async def fn(run)`` as the way to execute runs of ``module_id``.

        Runs started without a coroutine, and runs of that module that a dead process left
        behind, are then executed by this manager (in its event loop) or by any worker process
        whose handler registry has the same handler (see :attr:`handler_registry` and
        :func:`run_handler`).

        :raises InvalidArgumentError: for an empty module id or a non-callable handler.
        """
        if not isinstance(module_id, str) or not module_id:
            raise InvalidArgumentError("module_id must be a non-empty str")
        if not callable(fn):
            raise InvalidArgumentError(f"handler for {module_id!r} is not callable")
        self._handlers[module_id] = fn
        self.handler_registry.register(module_id, run_handler(fn))
        self._store.post("handlers", frozenset(self._handlers))

    def get_task_status(self, run_id: str) -> str | None:
        """Return the run's status as recorded in the database (``"queued"``, ``"running"``,
        ``"completed"``, ``"failed"``, ``"cancelled"``), or None when the database has no such run.

        The value compares equal to the app's ``RunStatus`` members. Blocks briefly (it waits for
        this manager's pending writes and reads the database): call it off the event loop, or use
        :meth:`aget_task_status`.
        """
        self._store.flush(5.0)
        task_id = self._store.task_ids.get(run_id)
        if task_id is None:
            task = self._find_task(run_id)
            if task is None:
                return None
            return _RUN_STATUS[task.status]
        return _RUN_STATUS[self._queue.get(task_id).status]

    async def aget_task_status(self, run_id: str) -> str | None:
        """:meth:`get_task_status` on a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(None, self.get_task_status, run_id)

    def _find_task(self, run_id: str) -> Task | None:
        """Find the newest task of a run by its idempotency key (a scan of its module's tasks)."""
        module_id = None
        try:
            run = self.registry.get_run(run_id)
        except Exception:  # noqa: BLE001 - the registry is the app's
            run = None
        if run is not None:
            module_id = getattr(run, "module_id", None)
        for task in self._queue.iter_tasks(task_type=module_id, descending=True):
            key = task.idempotency_key
            if key == run_id or (key is not None and key.startswith(run_id + "~")):
                return task
        return None

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every transition so far is written to the database; False on timeout."""
        return self._store.flush(timeout)

    async def aflush(self) -> None:
        """:meth:`flush` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self._store.flush, None)

    # ---- called by the writer thread ------------------------------------------------------------------

    def ready(self) -> bool:
        return self._loop is not None and not self._loop.is_closed() and not self._closed

    def on_claimed(self, entry: _Entry) -> None:
        grant = entry.grant
        if grant is not None:
            self._call(_resolve, grant)

    def on_foreign(self, task: Task, worker: Worker) -> bool:
        fn = self._handlers.get(task.type)
        record = task.payload.get("run")
        if fn is None or not isinstance(record, dict) or self._loop is None:
            return False
        run_id = str(record.get("run_id") or task.idempotency_key or task.id)
        mine = self._entries.get(run_id)
        if mine is not None and mine.task_id == task.id and not mine.owned:
            entry = mine
        else:
            entry = _Entry(self._rebuild(record), run_id, task.type, owned=False, priority=task.priority)
        entry.handler = fn
        self._store.lease_for(entry, task, worker)
        self._call(self._execute_claimed, entry)
        return True

    def _execute_claimed(self, entry: _Entry) -> None:
        if entry.loop_task is not None and entry.grant is not None:
            _resolve(entry.grant)  # our own run: its watcher executes it
            return
        self._launch(entry)

    def _launch(self, entry: _Entry) -> None:
        entry.owned = True
        entry.grant = None
        assert self._loop is not None  # only called with a bound loop
        task = self._loop.create_task(self._execute(entry))
        entry.loop_task = task
        self._entries[entry.run_id] = entry
        self.tasks[entry.run_id] = task
        task.add_done_callback(functools.partial(self._done, entry))

    def on_remote(self, entry: _Entry, task: Task) -> None:
        self._call(self._apply_remote, entry, task)

    def _apply_remote(self, entry: _Entry, task: Task) -> None:
        if entry.handler is not None:
            return  # executing here
        run = entry.run
        status = _RUN_STATUS[task.status]
        final = _final_record(task)
        _set_status(run, status)
        if task.started_at is not None:
            run.started_at = task.started_at
        if status in _TERMINAL:
            run.completed_at = task.finished_at
            start = task.started_at
            if start is not None and task.finished_at is not None:
                run.duration_seconds = (task.finished_at - start).total_seconds()
            if status == "completed":
                run.exit_code = final.get("exit_code", 0)
            elif status == "failed":
                run.error_message = task.last_error
            for name in ("progress_percent", "items_processed", "items_total"):
                if name in final and hasattr(run, name):
                    setattr(run, name, final[name])
        self._update(run)
        if status in _TERMINAL and entry.grant is not None:
            _resolve(entry.grant)

    def on_cancel_request(self, task_id: int) -> None:
        self._call(self._cancel_by_task, task_id)

    def _cancel_by_task(self, task_id: int) -> None:
        for entry in list(self._entries.values()):
            if entry.task_id == task_id and entry.loop_task is not None:
                entry.loop_task.cancel()

    def _rebuild(self, record: dict[str, Any]) -> Any:
        factory = getattr(self.registry, "_factory", None)
        status_type = getattr(self.registry, "_status_type", None)
        if factory is None:
            for e in self._entries.values():
                if not isinstance(e.run, RunRecord):
                    factory = type(e.run)
                    break
        try:
            return record_to_run(record, factory, status_type)
        except Exception:  # noqa: BLE001 - fall back to a plain record
            return record_to_run(record)

    # ---- restart recovery -------------------------------------------------------------------------------

    def recover(self) -> list[RecoveredRun]:
        """Take over the runs that dead processes left queued or running in the database.

        A manager is dead when its process is gone (same host), its workers are stopped, or
        their heartbeats are older than three leases (another host). Each of its runs is re-run
        here when a handler for its module is registered (it runs once this manager's event loop
        is available), or else marked FAILED with a reason; a run meant for any worker is given
        back to the queue. The registry gets every change. Blocking: called by the constructor.

        :returns: what was done, also kept in :attr:`recovered`.
        """
        done: list[RecoveredRun] = []

        def work() -> None:
            done.extend(self._recover_now())

        self._store.post("call", work)
        self._store.flush()
        self.recovered = done
        for item in done:
            if item.action == "rerun":
                logger.warning("run %s (%s) re-run after its process died", item.run_id, item.module_id)
            elif item.action == "failed":
                logger.warning("run %s (%s): %s", item.run_id, item.module_id, item.reason)
        return done

    def _recover_now(self) -> list[RecoveredRun]:
        host = socket.gethostname()
        lease_ms = self._store._lease * 3
        now = _now()
        alive_owners: set[str] = set()
        dead_workers: dict[str, str] = {}  # worker id -> owner
        for w in self._queue.workers():
            if not w.worker_id.startswith(_WORKER_PREFIX):
                continue
            owner = w.worker_id[len(_WORKER_PREFIX) :].split(":", 1)[0]
            if owner == self.owner_id:
                continue
            if w.stopped_at is not None:
                alive = False
            elif w.host == host:
                alive = _pid_alive(w.pid)
            else:
                beat = w.heartbeat_at or w.started_at
                alive = beat is not None and now - beat < timedelta(seconds=lease_ms)
            if alive:
                alive_owners.add(owner)
            else:
                dead_workers[w.worker_id] = owner
        dead_owners = set(dead_workers.values()) - alive_owners
        if not dead_owners:
            return []
        out: list[RecoveredRun] = []
        adopt: dict[str, set[str]] = {}
        left: dict[int, str] = {}  # task id -> status the dead process left it in
        main = self._store.worker(set())
        for task in self._queue.iter_tasks(status=("queued", "leased")):
            record = task.payload.get("run")
            if not isinstance(record, dict):
                continue
            task_owner = task.requirements.get(OWNER_KEY)
            by_dead = task.status is TaskStatus.LEASED and task.lease_owner in dead_workers
            if task_owner is None:
                if by_dead:  # a run for any worker: give it back now rather than at lease expiry
                    try:
                        main.release(task.id, lease_token=task.lease_token)
                    except (LeaseLostError, InvalidStateError):
                        continue
                    out.append(RecoveredRun(_rid(task), task.type, task.id, "requeued", "its worker died"))
                continue
            if task_owner not in dead_owners:
                continue
            left[task.id] = "running" if task.status is TaskStatus.LEASED else "queued"
            if by_dead:
                try:
                    main.release(task.id, lease_token=task.lease_token)
                except (LeaseLostError, InvalidStateError):
                    continue
            adopt.setdefault(str(task_owner), set()).add(task.type)
        for owner, types in adopt.items():
            worker = self._store.adopt_worker(owner, types)
            while True:
                claimed = worker.claim_many(_CLAIM_BATCH)
                if not claimed:
                    break
                for task in claimed:
                    out.append(self._recover_task(task, worker, left.get(task.id, "queued")))
        return out

    def _recover_task(self, task: Task, worker: Worker, was: str) -> RecoveredRun:
        record = task.payload.get("run") or {}
        run_id = _rid(task)
        fn = self._handlers.get(task.type)
        run = self._registry_run(run_id, record)
        if fn is None:
            reason = (
                f"the process that owned this run died while it was {was}; no handler is "
                f"registered for module {task.type!r} to run it again"
            )
            try:
                worker.fail(task, reason, retryable=False)
            except LeaseLostError:
                pass
            _set_status(run, "failed")
            run.error_message = reason
            _mark_finished(run)
            self._call_or_now(self._update, run)
            return RecoveredRun(run_id, task.type, task.id, "failed", reason)
        entry = _Entry(run, run_id, task.type, owned=True, priority=task.priority, handler=fn)
        self._store.lease_for(entry, task, worker)
        self._store._running += 1
        if self._loop is not None and not self._loop.is_closed():
            self._call(self._launch, entry)
        else:
            self._pending_reruns.append(entry)
        return RecoveredRun(run_id, task.type, task.id, "rerun", "its process died")

    def _registry_run(self, run_id: str, record: dict[str, Any]) -> Any:
        try:
            run = self.registry.get_run(run_id)
        except Exception:  # noqa: BLE001 - the registry is the app's
            run = None
        return run if run is not None else self._rebuild(record)

    def _call_or_now(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._call(fn, *args)
        else:
            fn(*args)

    # ---- lifecycle --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is pending, stop the writer thread and close the database if this manager
        opened it. Runs still active are left to restart recovery. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._store.close()
        if self._owns_queue:
            self._queue.close()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _final_record(task: Task) -> dict[str, Any]:
    """The run record a completed run task keeps in its result (empty when none)."""
    result = task.result
    if isinstance(result, dict):
        record = result.get("run")
        if isinstance(record, dict):
            return record
    return {}


def _rid(task: Task) -> str:
    record = task.payload.get("run")
    if isinstance(record, dict) and isinstance(record.get("run_id"), str):
        return str(record["run_id"])
    return task.idempotency_key or str(task.id)


def run_handler(fn: RunHandler, run_factory: Any = None) -> Callable[[TaskContext], Awaitable[Any]]:
    """Wrap ``async def fn(run)`` as a task handler for worker processes.

    The handler rebuilds the run from the task's payload (with ``run_factory``, the app's ``Run``
    class, or as a :class:`RunRecord`), marks it running, awaits ``fn(run)`` and returns
    ``{"run": record}`` with the final record (COMPLETED, ``exit_code`` 0). A raised exception
    fails the task with its message. Example, in the module given to ``prismq-queue worker
    --handlers``::

        from prismq_queue import handlers, run_handler
        handlers.register("youtube-shorts", run_handler(execute_module))
    """
    if not callable(fn):
        raise InvalidArgumentError("fn must be an async callable taking the run")

    async def handle(ctx: TaskContext) -> Any:
        record = ctx.payload.get("run")
        if not isinstance(record, dict):
            raise InvalidArgumentError(f"task {ctx.task.id} is not a run (no 'run' in its payload)")
        run = record_to_run(record, run_factory)
        _set_status(run, "running")
        _mark_started(run)
        out = fn(run)
        if inspect.isawaitable(out):
            await out
        _set_status(run, "completed")
        run.exit_code = 0
        _mark_finished(run)
        return {"run": run_to_record(run)}

    return handle


# ---- shadow mode ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Divergence:
    """A difference between the in-memory manager's run and its mirror in the queue."""

    run_id: str
    field: str
    memory: Any
    queue: Any


class _MirrorRegistry:
    """Passes every call to the app's registry and mirrors run transitions into the queue."""

    def __init__(self, inner: Any, shadow: ShadowTaskManager) -> None:
        self._inner = inner
        self._shadow = shadow

    def update_run(self, run: Any) -> None:
        self._inner.update_run(run)
        self._shadow._mirror(run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ShadowTaskManager(_Host, _ActiveRuns):
    """The in-memory manager in charge, every transition mirrored into the queue database.

    Runs execute exactly as with :class:`InMemoryTaskManager` (same registry calls, same
    ``tasks``); the queue database receives the same runs and transitions as it would from
    :class:`QueuedTaskManager`. A failure to write the mirror is logged and never affects a run.
    :meth:`verify` compares both sides; :meth:`wait_all` logs what it finds.

    :param registry: the app's ``RunRegistry`` (or a :class:`QueueRunRegistry`).
    :param queue: an open :class:`Queue`, a database path, or None (as for QueuedTaskManager).
    """

    def __init__(self, registry: Any, queue: Queue | str | os.PathLike[str] | None = None) -> None:
        if queue is None and isinstance(registry, QueueRunRegistry):
            queue = registry.queue
        self.registry = registry
        self._memory = InMemoryTaskManager(_MirrorRegistry(registry, self))
        self.tasks = self._memory.tasks
        self._queue, self._owns_queue = _open_queue(queue)
        self.owner_id = uuid.uuid4().hex[:12]
        self._entries: dict[str, _Entry] = {}
        self._mirrored: dict[str, _Entry] = {}
        self._closed = False
        self.divergences: list[Divergence] = []
        """Divergences found by the last :meth:`verify`."""
        self._store = _Store(
            self._queue,
            self,
            owner=self.owner_id,
            strategy=SchedulingStrategy.PRIORITY,
            max_concurrent=None,
            lease_seconds=60.0,
            poll_interval=0.5,
        )
        self._store.post("call", lambda: self._store.worker(set()))
        self._store.flush()

    def on_claimed(self, entry: _Entry) -> None:  # never limited
        pass

    def _mirror(self, run: Any) -> None:
        entry = self._entries.get(str(run.run_id))
        if entry is None:
            return
        status = _status_value(run)
        if status not in _TERMINAL:
            return
        error = getattr(run, "error_message", None) if status == "failed" else None
        self._entries.pop(entry.run_id, None)
        try:
            self._store.post("finish", entry, status, error or ("failed" if status == "failed" else None),
                             snapshot_run(run))
        except (QueueError, InvalidArgumentError) as exc:
            logger.warning("shadow: run %s not mirrored: %s", entry.run_id, exc)

    def start_task(self, run: Any, coro: Awaitable[Any]) -> str:
        """Start the run with the in-memory manager and mirror it into the queue.

        :raises RuntimeError: when no event loop is running.
        """
        asyncio.get_running_loop()
        run_id = str(run.run_id)
        try:
            entry = _Entry(run, run_id, str(run.module_id), owned=True)
            self._store.post("new", entry, snapshot_run(run))
            self._entries[run_id] = entry
            self._mirrored[run_id] = entry
        except (QueueError, InvalidArgumentError, AttributeError) as exc:
            logger.warning("shadow: run %s not mirrored: %s", run_id, exc)
        return self._memory.start_task(run, coro)

    async def cancel_task(self, run_id: str) -> bool:
        """Cancel a run (in-memory manager)."""
        return await self._memory.cancel_task(run_id)

    async def wait_all(self) -> None:
        """Wait for every active run, then compare both sides and log any divergence."""
        await self._memory.wait_all()
        found = await self.averify()
        if found:
            logger.warning("shadow: %d divergence(s) between memory and queue: %s", len(found), found[:10])

    def verify(self, timeout: float | None = 30.0) -> list[Divergence]:
        """Write what is pending, then compare every finished mirrored run with the queue.

        Compared: status, ``error_message`` (the task's last error) and ``exit_code`` (in the
        task's result). Runs still active in memory are compared once they finish. Blocking.

        :returns: the divergences (also kept in :attr:`divergences`); empty when both agree.
        """
        self._store.flush(timeout)
        found: list[Divergence] = []
        for run_id, entry in list(self._mirrored.items()):
            if run_id in self._memory.tasks:
                continue
            run = entry.run
            if entry.task_id is None:
                found.append(Divergence(run_id, "recorded", True, False))
                continue
            task = self._queue.get(entry.task_id)
            want = _status_value(run)
            got = _RUN_STATUS[task.status]
            if want != got:
                found.append(Divergence(run_id, "status", want, got))
            if want == "failed" and (getattr(run, "error_message", None) or "failed") != task.last_error:
                found.append(Divergence(run_id, "error_message", run.error_message, task.last_error))
            if want == "completed":
                final = _final_record(task)
                if final.get("exit_code") != getattr(run, "exit_code", None):
                    found.append(Divergence(run_id, "exit_code", run.exit_code, final.get("exit_code")))
            if not found or found[-1].run_id != run_id:
                del self._mirrored[run_id]
        self.divergences = found
        return found

    async def averify(self) -> list[Divergence]:
        """:meth:`verify` without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.verify)

    def close(self) -> None:
        """Write what is pending and close the mirror (the in-memory side needs nothing). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._store.close()
        if self._owns_queue:
            self._queue.close()


# ---- choosing a backend --------------------------------------------------------------------------------


def create_task_manager(
    registry: Any,
    backend: str | None = None,
    *,
    queue: Queue | str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Return the task manager of the chosen backend.

    :param registry: the app's ``RunRegistry`` (or a :class:`QueueRunRegistry`).
    :param backend: ``"memory"``, ``"queue"`` or ``"shadow"``; default ``PRISMQ_TASK_BACKEND``,
        else ``"memory"``.
    :param queue: the database (as for :class:`QueuedTaskManager`).
    :param options: keyword options of :class:`QueuedTaskManager` (``queue`` backend only).
    :raises InvalidArgumentError: for an unknown backend.
    :raises QueueError: when the ``queue`` backend cannot open the database and fallback is off
        (``PRISMQ_QUEUE_FALLBACK=0``); with fallback on (the default) it warns and returns an
        :class:`InMemoryTaskManager`. ``shadow`` needs the database too (it raises).
    """
    name = backend if backend is not None else os.environ.get("PRISMQ_TASK_BACKEND", "memory")
    name = str(name).strip().lower() or "memory"
    if name not in BACKENDS:
        raise InvalidArgumentError(f"task backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "memory":
        return InMemoryTaskManager(registry)
    if name == "shadow":
        return ShadowTaskManager(registry, queue)
    try:
        return QueuedTaskManager(registry, queue, **options)
    except (QueueError, OSError) as exc:
        if os.environ.get("PRISMQ_QUEUE_FALLBACK", "1").strip() == "0":
            raise
        message = f"task queue unavailable ({type(exc).__name__}: {exc}); using the in-memory task manager"
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return InMemoryTaskManager(registry)

