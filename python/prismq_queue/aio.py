"""asyncio front-ends: every blocking call runs on a thread pool owned by the object, never on the loop.

Example::

    import asyncio
    from prismq_queue import AsyncQueue, WorkerConfig

    async def main() -> None:
        async with AsyncQueue("/tmp/q.db") as q:
            await q.enqueue("email.send", {"to": "a@example.com"})
            async with await q.worker(WorkerConfig(worker_id="w1")) as w:
                task = await w.claim(timeout=1.0)
                if task is not None:
                    await w.complete(task, {"ok": True})

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from ._errors import InvalidArgumentError, QueueClosedError
from .config import WorkerConfig
from .models import (
    AckAndClaimResult,
    AckResult,
    LeaseInfo,
    LogEntry,
    RetryConfig,
    SchedulingStrategy,
    Stats,
    SweepResult,
    Task,
    TaskStatus,
    WorkerInfo,
)
from .ops import AsyncQueueOps
from .queue import EnqueueRequest, Queue
from .worker import Worker

__all__ = ["AsyncQueue", "AsyncWorker"]

_T = TypeVar("_T")


class _Offloader:
    """Owns a thread pool and runs blocking callables on it from coroutines."""

    _what = "object"

    def __init__(self, max_workers: int | None, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._closed = False
        self._open_lock = threading.Lock()

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if self._closed:
            raise QueueClosedError(f"{self._what} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    async def _shutdown(self, close_native: Callable[[], object] | None) -> None:
        """Run ``close_native`` on the pool (when given), then mark closed and stop the pool; idempotent."""
        if self._closed:
            return
        if close_native is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, close_native)
        with self._open_lock:
            self._closed = True
        self._executor.shutdown(wait=False)


class AsyncQueue(_Offloader, AsyncQueueOps):
    """An asyncio wrapper of :class:`Queue`; the database is opened on first use (or by ``async with``).

    :param path: database file, as for :class:`Queue`.
    :param max_workers: threads of the private pool (default as ThreadPoolExecutor's).
    :param options: the keyword options of :class:`Queue`.
    """

    _what = "queue"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_workers: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(max_workers, "prismq-aio-queue")
        self._path = path
        self._options = options
        self._queue: Queue | None = None
        self._owns_queue = True

    @classmethod
    def from_queue(
        cls, queue: Queue, *, close_queue: bool = False, max_workers: int | None = None
    ) -> AsyncQueue:
        """Wrap an open queue.

        :param close_queue: close ``queue`` when this object is closed (default: leave it open).
        :raises InvalidArgumentError: when ``queue`` is not a Queue.
        """
        if not isinstance(queue, Queue):
            raise InvalidArgumentError(f"queue must be a Queue, got {type(queue).__name__}")
        aq = cls(max_workers=max_workers)
        aq._queue = queue
        aq._owns_queue = close_queue
        return aq

    def _sync(self) -> Queue:
        """Return the queue, opening it (in the calling pool thread) on first use."""
        q = self._queue
        if q is None:
            with self._open_lock:
                if self._closed:
                    raise QueueClosedError("queue is closed")
                q = self._queue
                if q is None:
                    q = Queue(self._path, **self._options)
                    self._queue = q
        return q

    async def _q(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await self._call(lambda: fn(self._sync(), *args, **kwargs))

    @property
    def queue(self) -> Queue:
        """The underlying synchronous queue.

        :raises QueueClosedError: before it was opened or after close.
        """
        if self._queue is None or self._closed:
            raise QueueClosedError("queue is not open")
        return self._queue

    async def open(self) -> AsyncQueue:
        """Open the database now (otherwise the first call does).

        :raises QueueError: as :class:`Queue` does.
        """
        await self._call(self._sync)
        return self

    async def close(self) -> None:
        """Close the queue (when owned) and shut the thread pool down. Calling it again does nothing."""
        q = self._queue
        await self._shutdown(q.close if q is not None and self._owns_queue else None)

    async def __aenter__(self) -> AsyncQueue:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def info(self) -> dict[str, Any]:
        """See :meth:`Queue.info`."""
        return await self._q(Queue.info)

    async def enqueue(
        self,
        task_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        priority: int = 100,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        max_attempts: int = 5,
        requirements: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        retry: RetryConfig | None = None,
    ) -> Task:
        """See :meth:`Queue.enqueue`."""
        return await self._q(
            Queue.enqueue,
            task_type,
            payload,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            requirements=requirements,
            idempotency_key=idempotency_key,
            retry=retry,
        )

    async def enqueue_many(self, items: Iterable[EnqueueRequest | Mapping[str, Any]]) -> builtins.list[Task]:
        """See :meth:`Queue.enqueue_many`."""
        return await self._q(Queue.enqueue_many, builtins.list(items))

    async def get(self, task_id: int) -> Task:
        """See :meth:`Queue.get`."""
        return await self._q(Queue.get, task_id)

    async def list(
        self,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        task_type: str | Iterable[str] | None = None,
        limit: int = 100,
        after_id: int | None = None,
        descending: bool = False,
    ) -> builtins.list[Task]:
        """See :meth:`Queue.list`."""
        return await self._q(Queue.list, status, task_type, limit, after_id, descending)

    async def iter_tasks(
        self,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        task_type: str | Iterable[str] | None = None,
        *,
        page_size: int = 500,
        descending: bool = False,
    ) -> AsyncIterator[Task]:
        """See :meth:`Queue.iter_tasks`; each page is fetched on the pool."""
        if status is not None and not isinstance(status, str):
            status = builtins.list(status)
        if task_type is not None and not isinstance(task_type, str):
            task_type = builtins.list(task_type)
        cursor: int | None = None
        while True:
            tasks, cursor = await self._q(Queue._list_page, status, task_type, page_size, cursor, descending)
            for t in tasks:
                yield t
            if cursor is None or not tasks:
                return

    async def cancel(self, task_id: int) -> Task:
        """See :meth:`Queue.cancel`."""
        return await self._q(Queue.cancel, task_id)

    async def retry(self, task_id: int) -> Task:
        """See :meth:`Queue.retry`."""
        return await self._q(Queue.retry, task_id)

    async def stats(self) -> Stats:
        """See :meth:`Queue.stats`."""
        return await self._q(Queue.stats)

    async def sweep(self) -> SweepResult:
        """See :meth:`Queue.sweep`."""
        return await self._q(Queue.sweep)

    async def log(
        self,
        task_id: int,
        message: str,
        level: str = "info",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """See :meth:`Queue.log`."""
        await self._q(Queue.log, task_id, message, level, details)

    async def logs(self, task_id: int, limit: int = 0) -> builtins.list[LogEntry]:
        """See :meth:`Queue.logs`."""
        return await self._q(Queue.logs, task_id, limit)

    async def workers(self) -> builtins.list[WorkerInfo]:
        """See :meth:`Queue.workers`."""
        return await self._q(Queue.workers)

    async def worker(self, config: WorkerConfig, *, max_workers: int | None = None) -> AsyncWorker:
        """Register a worker (on the pool) and return its async wrapper.

        :raises InvalidArgumentError: when config is not a WorkerConfig.
        """
        aw = AsyncWorker(self, config, max_workers=max_workers)
        await aw.open()
        return aw


class AsyncWorker(_Offloader):
    """An asyncio wrapper of :class:`Worker` with its own thread pool (claims may block).

    :param queue: an :class:`AsyncQueue` or an open :class:`Queue`.
    :param config: the worker's settings.
    :param max_workers: threads of the private pool (default 4).
    :raises InvalidArgumentError: for a wrong queue or config type.
    """

    _what = "worker"

    def __init__(
        self, queue: AsyncQueue | Queue, config: WorkerConfig, *, max_workers: int | None = None
    ) -> None:
        if not isinstance(queue, (AsyncQueue, Queue)):
            raise InvalidArgumentError(f"queue must be an AsyncQueue or Queue, got {type(queue).__name__}")
        if not isinstance(config, WorkerConfig):
            raise InvalidArgumentError(f"config must be a WorkerConfig, got {type(config).__name__}")
        super().__init__(max_workers or 4, "prismq-aio-worker")
        self._aqueue = queue
        self._config = config
        self._worker: Worker | None = None

    def _sync(self) -> Worker:
        w = self._worker
        if w is None:
            with self._open_lock:
                if self._closed:
                    raise QueueClosedError("worker is closed")
                w = self._worker
                if w is None:
                    q = self._aqueue._sync() if isinstance(self._aqueue, AsyncQueue) else self._aqueue
                    w = Worker(q, self._config)
                    self._worker = w
        return w

    async def _w(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await self._call(lambda: fn(self._sync(), *args, **kwargs))

    @property
    def worker(self) -> Worker:
        """The underlying synchronous worker.

        :raises QueueClosedError: before it was opened or after close.
        """
        if self._worker is None or self._closed:
            raise QueueClosedError("worker is not open")
        return self._worker

    @property
    def config(self) -> WorkerConfig:
        """The worker's configuration."""
        return self._config

    @property
    def strategy(self) -> SchedulingStrategy:
        """The current scheduling strategy."""
        return self._worker.strategy if self._worker is not None else self._config.scheduling_strategy

    async def open(self) -> AsyncWorker:
        """Register the worker now (otherwise the first call does)."""
        await self._call(self._sync)
        return self

    async def close(self) -> None:
        """Close the worker and shut its pool down. Calling it again does nothing."""
        w = self._worker
        await self._shutdown(w.close if w is not None else None)

    async def __aenter__(self) -> AsyncWorker:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def set_strategy(self, strategy: SchedulingStrategy | str) -> None:
        """See :meth:`Worker.set_strategy`."""
        await self._w(Worker.set_strategy, strategy)

    async def claim(self, timeout: float | timedelta = 0.0) -> Task | None:
        """See :meth:`Worker.claim`; the wait happens on the pool, the loop keeps running."""
        tasks = await self.claim_many(1, timeout)
        return tasks[0] if tasks else None

    async def claim_many(self, max_tasks: int, timeout: float | timedelta = 0.0) -> builtins.list[Task]:
        """See :meth:`Worker.claim_many`. If the awaiting coroutine is cancelled, tasks that arrive
        afterwards are released instead of being left leased."""
        abandoned = threading.Event()

        def job(w: Worker) -> builtins.list[Task]:
            tasks = w.claim_many(max_tasks, timeout)
            if abandoned.is_set():
                for t in tasks:
                    w.release(t)
                return []
            return tasks

        try:
            return await self._w(job)
        except asyncio.CancelledError:
            abandoned.set()
            raise

    async def complete(self, task: Task | int, result: Any = None, *, lease_token: int | None = None) -> None:
        """See :meth:`Worker.complete`."""
        await self._w(Worker.complete, task, result, lease_token=lease_token)

    async def fail(
        self,
        task: Task | int,
        error: str | BaseException,
        *,
        retryable: bool = True,
        lease_token: int | None = None,
    ) -> Task:
        """See :meth:`Worker.fail`."""
        return await self._w(Worker.fail, task, error, retryable=retryable, lease_token=lease_token)

    async def renew(
        self,
        task: Task | int,
        lease_seconds: float | timedelta | None = None,
        *,
        lease_token: int | None = None,
    ) -> LeaseInfo:
        """See :meth:`Worker.renew`."""
        return await self._w(Worker.renew, task, lease_seconds, lease_token=lease_token)

    async def progress(
        self,
        task: Task | int,
        percent: float | None = None,
        current: int | None = None,
        total: int | None = None,
        message: str | None = None,
        *,
        lease_token: int | None = None,
    ) -> LeaseInfo:
        """See :meth:`Worker.progress`."""
        return await self._w(Worker.progress, task, percent, current, total, message, lease_token=lease_token)

    async def heartbeat(self) -> builtins.list[int]:
        """See :meth:`Worker.heartbeat`."""
        return await self._w(Worker.heartbeat)

    async def ack_cancel(self, task: Task | int, *, lease_token: int | None = None) -> None:
        """See :meth:`Worker.ack_cancel`."""
        await self._w(Worker.ack_cancel, task, lease_token=lease_token)

    async def release(self, task: Task | int, *, lease_token: int | None = None) -> None:
        """See :meth:`Worker.release`."""
        await self._w(Worker.release, task, lease_token=lease_token)

    async def ack_many(self, acks: Sequence[Mapping[str, Any]]) -> builtins.list[AckResult]:
        """See :meth:`Worker.ack_many`."""
        return await self._w(Worker.ack_many, builtins.list(acks))

    async def ack_and_claim(self, acks: Sequence[Mapping[str, Any]], max_tasks: int) -> AckAndClaimResult:
        """See :meth:`Worker.ack_and_claim`. If the awaiting coroutine is cancelled, the acks stand
        and the tasks claimed are released instead of being left leased."""
        abandoned = threading.Event()
        items = builtins.list(acks)

        def job(w: Worker) -> AckAndClaimResult:
            result = w.ack_and_claim(items, max_tasks)
            if abandoned.is_set():
                for t in result.tasks:
                    w.release(t)
                return AckAndClaimResult(result.acks, [])
            return result

        try:
            return await self._w(job)
        except asyncio.CancelledError:
            abandoned.set()
            raise
