"""Handler registry and the worker run loop.

Register handlers with the module-level :data:`task` decorator (or your own
:class:`HandlerRegistry`) and run them with :func:`run_worker` or ``Worker.run``::

    from prismq_queue import Queue, WorkerConfig, run_worker, task

    @task("email.send")
    def send_email(ctx):
        ctx.progress(percent=50, message="rendering")
        return {"sent_to": ctx.payload["to"]}

    with Queue("queue.db") as q:
        run_worker(q, WorkerConfig(worker_id="w1"), idle_exit_seconds=5)

The loop claims up to its free slots in one call (prefetch), runs sync handlers in a
pool of daemon threads and ``async def`` handlers on one private event-loop thread,
heartbeats every third of the lease (which renews every lease it holds and delivers
cancel requests), and acknowledges outcomes in batches with ``Worker.ack_many``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import json
import logging
import queue as queue_module
import signal
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import (
    InvalidArgumentError,
    LeaseLostError,
    QueueClosedError,
    QueueError,
    TaskCancelledError,
)
from .models import AckResult

if TYPE_CHECKING:
    from .config import WorkerConfig
    from .models import Task
    from .queue import Queue
    from .worker import Worker

__all__ = [
    "Handler",
    "HandlerRegistry",
    "RunSummary",
    "TaskContext",
    "handlers",
    "run_with_worker",
    "run_worker",
    "task",
]

logger = logging.getLogger("prismq_queue.runner")

Handler = Callable[["TaskContext"], Any]
"""A handler takes a :class:`TaskContext` and returns a JSON-able result (or is ``async def``)."""

_F = TypeVar("_F", bound=Callable[..., Any])

DEFAULT_GRACE_SECONDS = 30.0
"""How long a graceful stop waits for running handlers before releasing their tasks."""

_ACK_BATCH_SIZE = 64
_ACK_MAX_DELAY = 0.005
_MAX_CLAIM_BATCH = 64
_TICK = 0.05


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


class HandlerRegistry:
    """Maps task types to handler functions.

    Example::

        registry = HandlerRegistry()

        @registry.task("thumbnail")
        async def thumbnail(ctx):
            return {"ok": True}
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._async: dict[str, bool] = {}
        self._lock = threading.Lock()

    def register(self, task_type: str, fn: _F) -> _F:
        """Register ``fn`` as the handler of ``task_type`` (replacing an earlier one).

        :param task_type: the task type, a non-empty string.
        :param fn: a callable taking a :class:`TaskContext`, sync or ``async def``.
        :raises InvalidArgumentError: on an empty type or a non-callable handler.
        :returns: ``fn`` unchanged.
        """
        if not isinstance(task_type, str) or not task_type:
            raise InvalidArgumentError("task_type must be a non-empty string")
        if not callable(fn):
            raise InvalidArgumentError(f"handler for {task_type!r} is not callable")
        with self._lock:
            self._handlers[task_type] = fn
            self._async[task_type] = _is_async_callable(fn)
        return fn

    def task(self, task_type: str) -> Callable[[_F], _F]:
        """Decorator form of :meth:`register`.

        :param task_type: the task type the decorated function handles.
        """

        def decorate(fn: _F) -> _F:
            return self.register(task_type, fn)

        return decorate

    def unregister(self, task_type: str) -> None:
        """Remove the handler of ``task_type`` if there is one.

        :param task_type: the task type.
        """
        with self._lock:
            self._handlers.pop(task_type, None)
            self._async.pop(task_type, None)

    def get(self, task_type: str) -> Handler | None:
        """Return the handler of ``task_type`` or None.

        :param task_type: the task type.
        """
        return self._handlers.get(task_type)

    def is_async(self, task_type: str) -> bool:
        """Tell whether the handler of ``task_type`` is a coroutine function.

        :param task_type: the task type.
        """
        return self._async.get(task_type, False)

    def types(self) -> list[str]:
        """Return the registered task types, sorted."""
        return sorted(self._handlers)

    def __contains__(self, task_type: object) -> bool:
        return task_type in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    def __repr__(self) -> str:
        return f"HandlerRegistry({self.types()!r})"


handlers = HandlerRegistry()
"""The default registry used when ``run_worker`` gets none."""

task = handlers.task
"""Decorator registering a handler on the default registry: ``@task("type")``."""


class TaskContext:
    """What a handler receives: the task, progress and log helpers, and cancellation.

    ``progress`` and ``log`` write to the queue at once from a sync handler; from an
    ``async def`` handler they are handed to a helper thread (in order) so that the
    event loop never blocks.
    """

    def __init__(
        self,
        task: Task,
        worker: Worker,
        queue: Queue,
        *,
        offload: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.task = task
        """The claimed task (its ``attempts`` counts this run)."""
        self.cancel_event = threading.Event()
        """Set when a cancel request for this task reaches the worker."""
        self._worker = worker
        self._queue = queue
        self._offload = offload
        self._offloaded = False  # an offloaded call was made: settle after it ran
        self._on_cancel: Callable[[], None] | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """The task's payload."""
        return self.task.payload

    @property
    def worker_id(self) -> str:
        """The id of the worker running the task."""
        return self._worker.config.worker_id

    @property
    def cancel_requested(self) -> bool:
        """True once a cancel request for this task reached the worker."""
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelledError` when a cancel request arrived.

        :raises TaskCancelledError: the task was asked to stop.
        """
        if self.cancel_event.is_set():
            raise TaskCancelledError(f"task {self.task.id} was cancelled")

    def _mark_cancelled(self) -> None:
        if not self.cancel_event.is_set():
            self.cancel_event.set()
            callback = self._on_cancel
            if callback is not None:
                callback()

    def _dispatch(self, call: Callable[[], None]) -> None:
        if self._offload is None:
            call()
            return

        def guarded() -> None:
            try:
                call()
            except QueueError as exc:
                logger.warning("task %s: progress/log not recorded: %s", self.task.id, exc)

        self._offloaded = True
        self._offload(guarded)

    def progress(
        self,
        percent: float | None = None,
        current: int | None = None,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        """Record progress (this also renews the lease and notices cancel requests).

        :param percent: 0 to 100.
        :param current: items done so far.
        :param total: items in all.
        :param message: a short status line.
        :raises LeaseLostError: (sync handlers) the lease was lost; stop working.
        """

        def send() -> None:
            info = self._worker.progress(self.task, percent, current, total, message)
            if info.cancel_requested:
                self._mark_cancelled()

        self._dispatch(send)

    def log(self, message: str, level: str = "info", details: dict[str, Any] | None = None) -> None:
        """Append an entry to the task's log.

        :param message: the text.
        :param level: e.g. ``"debug"``, ``"info"``, ``"warning"``, ``"error"``.
        :param details: a JSON object or None.
        """

        def send() -> None:
            self._queue.log(self.task.id, message, level=level, details=details)

        self._dispatch(send)

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task.id}, type={self.task.type!r})"


@dataclass(frozen=True)
class RunSummary:
    """What a run of :func:`run_worker` did.

    ``completed``, ``failed`` (failure reports, retried or final), ``cancelled`` and
    ``released`` (given back unfinished at shutdown) count acknowledgements the queue accepted.
    """

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    released: int = 0
    duration_seconds: float = 0.0


class _DaemonPool:
    """A small thread pool of daemon threads (a stuck handler must not block interpreter exit)."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue_module.SimpleQueue[Callable[[], None] | None] = queue_module.SimpleQueue()
        self._lock = threading.Lock()
        self._started = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle == 0 and self._started < self._size:
                self._started += 1
                self._idle += 1
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{self._started}", daemon=True
                )
                thread.start()
            self._idle -= 1
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # noqa: BLE001 - a pool thread must survive any job
                logger.exception("unexpected error in %s", self._name)
            finally:
                with self._lock:
                    self._idle += 1

    def shutdown(self) -> None:
        with self._lock:
            started = self._started
        for _ in range(started):
            self._jobs.put(None)


class _LoopThread:
    """One private event loop on a daemon thread for ``async def`` handlers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="prismq-async", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 2.0) -> None:
        async def cancel_all() -> None:
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=timeout)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout + 1.0)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            logger.debug("async handlers did not stop in time", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


class _AsyncCall:
    """One async handler run; ``cancel`` (from any thread) cancels its asyncio task in the loop.

    The concurrent future of ``run_coroutine_threadsafe`` is not cancelled directly: that
    would report the handler done before its coroutine has unwound.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    async def run(self, fn: Handler, ctx: TaskContext) -> Any:
        self._task = asyncio.current_task()
        if self._cancelled:
            raise asyncio.CancelledError()
        return await fn(ctx)

    def cancel(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._cancel_in_loop)
        except RuntimeError:  # the loop is already closed
            pass

    def _cancel_in_loop(self) -> None:
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()


@dataclass
class _Entry:
    task: Task
    ctx: TaskContext
    future: concurrent.futures.Future[Any] | None = None


@dataclass
class _Claimed:
    tasks: list[Task]


@dataclass
class _Done:
    task_id: int
    token: int
    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False


@dataclass
class _ClaimerExit:
    error: BaseException | None = None


_Event = _Claimed | _Done | _ClaimerExit


@dataclass
class _Ack:
    body: dict[str, Any]
    kind: str  # "completed" | "failed" | "cancelled" | "released"


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _check_json(value: Any) -> str | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"result is not JSON-serializable: {exc}"
    return None


class _Runner:
    """One run of the loop.

    Threads: the caller's thread owns all state (in-flight tasks, pending acks, counters),
    heartbeats and flushes acks; a claimer thread blocks in ``claim_many`` while slots are
    free and posts claimed tasks; handler threads and the event-loop thread post outcomes.
    Everything crosses through one ``SimpleQueue`` of events.
    """

    def __init__(
        self,
        queue: Queue,
        worker: Worker,
        registry: HandlerRegistry,
        *,
        concurrency: int,
        stop_event: threading.Event | None,
        install_signal_handlers: bool,
        max_tasks: int | None,
        idle_exit_seconds: float | None,
        grace_seconds: float,
    ) -> None:
        self._queue = queue
        self._worker = worker
        self._registry = registry
        config = worker.config
        self._concurrency = concurrency
        self._max_retries = config.max_retries
        self._poll = max(0.0, float(config.poll_interval_seconds))
        self._heartbeat_every = max(0.05, float(config.lease_duration_seconds) / 3.0)
        self._user_stop = stop_event
        self._install_signals = install_signal_handlers
        self._max_tasks = max_tasks
        self._idle_exit = idle_exit_seconds
        self._grace = grace_seconds

        self._events: queue_module.SimpleQueue[_Event] = queue_module.SimpleQueue()
        self._slots = threading.Semaphore(concurrency)
        self._stop = threading.Event()  # set by signals or an internal reason
        self._force = threading.Event()  # a second signal: skip the grace period
        self._stopping = threading.Event()  # tells the claimer to stop
        self._inflight: dict[int, _Entry] = {}
        self._pending: list[_Ack] = []
        self._pending_since = 0.0
        self._next_flush_retry = 0.0
        self._claimer_done = False
        self._fatal: BaseException | None = None
        self._last_busy = time.monotonic()
        self._next_heartbeat = time.monotonic() + self._heartbeat_every
        self._counts = {"completed": 0, "failed": 0, "cancelled": 0, "released": 0}

        self._pool = _DaemonPool(concurrency, "prismq-handler")
        self._side = _DaemonPool(1, "prismq-side")
        self._loop_thread: _LoopThread | None = None
        self._claimer = threading.Thread(target=self._claim_loop, name="prismq-claimer", daemon=True)
        self._signal: int | None = None

    # ---- signals -----------------------------------------------------------------

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        # Only set flags here: logging from a signal handler can re-enter a stream write.
        self._signal = signum
        if self._stop.is_set():
            self._force.set()
        else:
            self._stop.set()

    def _install(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        if not self._install_signals or threading.current_thread() is not threading.main_thread():
            return previous
        for name in ("SIGINT", "SIGTERM"):
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                previous[signum] = signal.signal(signum, self._on_signal)
            except (ValueError, OSError):  # not the main interpreter, or not supported
                continue
        return previous

    # ---- claimer thread ------------------------------------------------------------

    def _claim_loop(self) -> None:
        claimed_total = 0
        backoff = 0.05
        error: BaseException | None = None
        try:
            while not self._stopping.is_set():
                if self._max_tasks is not None and claimed_total >= self._max_tasks:
                    break
                if not self._slots.acquire(timeout=_TICK):
                    continue
                wanted = 1
                limit = _MAX_CLAIM_BATCH
                if self._max_tasks is not None:
                    limit = min(limit, self._max_tasks - claimed_total)
                while wanted < limit and self._slots.acquire(blocking=False):
                    wanted += 1
                if self._stopping.is_set():
                    self._release_slots(wanted)
                    break
                try:
                    tasks = self._worker.claim_many(wanted, timeout=self._poll)
                except QueueClosedError as exc:
                    self._release_slots(wanted)
                    error = exc
                    break
                except QueueError as exc:
                    self._release_slots(wanted)
                    logger.warning("claim failed, retrying in %.2f s: %s", backoff, exc)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.05
                self._release_slots(wanted - len(tasks))
                if tasks:
                    claimed_total += len(tasks)
                    self._events.put(_Claimed(tasks))
        except BaseException as exc:  # noqa: BLE001 - reported to the main loop
            error = exc
        finally:
            self._events.put(_ClaimerExit(error))

    def _release_slots(self, n: int) -> None:
        for _ in range(n):
            self._slots.release()

    # ---- dispatch ----------------------------------------------------------------

    def _ensure_loop(self) -> _LoopThread:
        if self._loop_thread is None:
            self._loop_thread = _LoopThread()
        return self._loop_thread

    def _dispatch(self, task: Task) -> None:
        fn = self._registry.get(task.type)
        if fn is None:
            self._slots.release()
            self._queue_ack(
                _Ack(
                    {
                        "id": task.id,
                        "token": task.lease_token,
                        "op": "fail",
                        "error": f"no handler for type {task.type!r}",
                        "retryable": False,
                    },
                    "failed",
                )
            )
            return
        events = self._events
        task_id, token = task.id, task.lease_token
        if self._registry.is_async(task.type):
            loop_thread = self._ensure_loop()
            ctx = TaskContext(task, self._worker, self._queue, offload=self._side.submit)
            call = _AsyncCall(loop_thread.loop)
            ctx._on_cancel = call.cancel
            future = loop_thread.submit(call.run(fn, ctx))
            self._inflight[task_id] = _Entry(task, ctx, future)

            side = self._side

            def on_done(fut: concurrent.futures.Future[Any]) -> None:
                if fut.cancelled():
                    done = _Done(task_id, token, cancelled=True)
                elif fut.exception() is None:
                    done = _Done(task_id, token, result=fut.result())
                else:
                    done = _Done(task_id, token, error=fut.exception())
                if ctx._offloaded:
                    # Progress and log calls go through the side thread in order: settle after them.
                    side.submit(lambda: events.put(done))
                else:
                    events.put(done)

            future.add_done_callback(on_done)
            return

        ctx = TaskContext(task, self._worker, self._queue)
        self._inflight[task_id] = _Entry(task, ctx)

        def run_sync() -> None:
            try:
                result = fn(ctx)
                if inspect.isawaitable(result):
                    close = getattr(result, "close", None)
                    if callable(close):
                        close()
                    raise InvalidArgumentError(
                        f"handler for {task.type!r} returned an awaitable; declare it with async def"
                    )
            except BaseException as exc:  # noqa: BLE001 - every handler error is reported
                events.put(_Done(task_id, token, error=exc))
            else:
                events.put(_Done(task_id, token, result=result))

        self._pool.submit(run_sync)

    def _cancel_running(self, task_id: int) -> None:
        entry = self._inflight.get(task_id)
        if entry is None:
            return
        entry.ctx._mark_cancelled()

    # ---- outcomes --------------------------------------------------------------------

    def _handle(self, event: _Event) -> None:
        if isinstance(event, _Claimed):
            self._last_busy = time.monotonic()
            if self._stopping.is_set():
                for t in event.tasks:
                    self._slots.release()
                    self._queue_ack(_Ack({"id": t.id, "token": t.lease_token, "op": "release"}, "released"))
                return
            for t in event.tasks:
                self._dispatch(t)
        elif isinstance(event, _Done):
            self._finish(event)
        else:
            self._claimer_done = True
            if event.error is not None:
                if isinstance(event.error, QueueClosedError):
                    logger.error("queue closed under the worker: %s", event.error)
                else:
                    logger.error("claimer stopped on an unexpected error", exc_info=event.error)
                self._fatal = event.error

    def _finish(self, done: _Done) -> None:
        entry = self._inflight.get(done.task_id)
        if entry is None or entry.task.lease_token != done.token:
            return  # released at shutdown; its lease is gone
        del self._inflight[done.task_id]
        self._slots.release()
        self._last_busy = time.monotonic()
        task = entry.task
        body: dict[str, Any] = {"id": task.id, "token": task.lease_token}
        if entry.ctx.cancel_event.is_set():
            body["op"] = "cancel"
            self._queue_ack(_Ack(body, "cancelled"))
        elif done.error is None and not done.cancelled:
            body["op"] = "complete"
            body["result"] = done.result
            self._queue_ack(_Ack(body, "completed"))
        else:
            error = done.error
            text = _error_text(error) if error is not None else "handler was cancelled"
            if error is not None and not isinstance(error, (TaskCancelledError, LeaseLostError)):
                logger.warning("task %s (%s) attempt %s failed: %s", task.id, task.type, task.attempts, text)
            body["op"] = "fail"
            body["error"] = text
            body["retryable"] = task.attempts <= self._max_retries
            self._queue_ack(_Ack(body, "failed"))

    def _queue_ack(self, ack: _Ack) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(ack)

    def _flush_due(self, now: float) -> bool:
        if not self._pending or now < self._next_flush_retry:
            return False
        return (
            len(self._pending) >= _ACK_BATCH_SIZE
            or now - self._pending_since >= _ACK_MAX_DELAY
            or not self._inflight
            or self._stopping.is_set()
        )

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            results = self._worker.ack_many([a.body for a in batch])
        except QueueClosedError:
            raise
        except (InvalidArgumentError, TypeError, ValueError) as exc:
            logger.warning("batch acknowledgement rejected (%s); sending one by one", exc)
            results = self._flush_one_by_one(batch)
        except QueueError as exc:
            logger.warning("acknowledgement failed, will retry: %s", exc)
            self._pending = batch + self._pending
            self._next_flush_retry = time.monotonic() + 0.1
            return
        self._count(batch, results)

    def _flush_one_by_one(self, batch: list[_Ack]) -> list[AckResult]:
        results: list[AckResult] = []
        for ack in batch:
            if ack.body.get("op") == "complete":
                problem = _check_json(ack.body.get("result"))
                if problem is not None:
                    ack.body = {
                        "id": ack.body["id"],
                        "token": ack.body["token"],
                        "op": "fail",
                        "error": problem,
                        "retryable": False,
                    }
                    ack.kind = "failed"
            try:
                results.extend(self._worker.ack_many([ack.body]))
            except QueueClosedError:
                raise
            except QueueError as exc:
                logger.error("acknowledgement of task %s failed: %s", ack.body["id"], exc)
                results.append(AckResult(int(ack.body["id"]), exc))
        return results

    def _count(self, batch: list[_Ack], results: list[AckResult]) -> None:
        for ack, res in zip(batch, results, strict=True):
            op = ack.body.get("op")
            if res.error is None:
                self._counts[ack.kind] += 1
            elif isinstance(res.error, LeaseLostError):
                logger.warning("task %s: lease lost before %s was recorded", res.id, op)
            elif op == "complete":
                # E.g. a result over the size limit: fail the task rather than leave it leased.
                logger.error("task %s: result not recorded: %s", res.id, res.error)
                body = {
                    "id": ack.body["id"],
                    "token": ack.body["token"],
                    "op": "fail",
                    "error": f"result not recorded: {_error_text(res.error)}",
                    "retryable": False,
                }
                self._queue_ack(_Ack(body, "failed"))
            else:
                logger.error("task %s: %s not recorded: %s", res.id, op, res.error)

    def _heartbeat(self) -> None:
        try:
            cancel_ids = self._worker.heartbeat()
        except QueueClosedError:
            raise
        except QueueError as exc:
            logger.warning("heartbeat failed: %s", exc)
            return
        for task_id in cancel_ids:
            self._cancel_running(task_id)

    # ---- main loop -----------------------------------------------------------------

    def _stop_requested(self) -> bool:
        return self._stop.is_set() or (self._user_stop is not None and self._user_stop.is_set())

    def _step(self, limit: float) -> None:
        now = time.monotonic()
        timeout = min(limit, max(0.0, self._next_heartbeat - now))
        if self._pending:
            flush_at = max(self._pending_since + _ACK_MAX_DELAY, self._next_flush_retry)
            timeout = min(timeout, max(0.0, flush_at - now))
        try:
            event: _Event | None = self._events.get(timeout=timeout)
        except queue_module.Empty:
            event = None
        handled = 0
        while event is not None:
            self._handle(event)
            handled += 1
            if len(self._pending) >= _ACK_BATCH_SIZE:
                self._flush()
            if handled >= 1024:
                break
            try:
                event = self._events.get_nowait()
            except queue_module.Empty:
                event = None
        now = time.monotonic()
        if self._flush_due(now):
            self._flush()
        if now >= self._next_heartbeat:
            self._heartbeat()
            self._next_heartbeat = time.monotonic() + self._heartbeat_every

    def run(self) -> RunSummary:
        started = time.monotonic()
        previous = self._install()
        try:
            self._claimer.start()
            try:
                self._serve()
            finally:
                self._shutdown()
        finally:
            for signum, handler in previous.items():
                try:
                    signal.signal(signum, handler)
                except (ValueError, OSError):
                    pass
            self._pool.shutdown()
            self._side.shutdown()
            if self._loop_thread is not None:
                self._loop_thread.stop()
        if self._fatal is not None:
            raise self._fatal
        return RunSummary(
            completed=self._counts["completed"],
            failed=self._counts["failed"],
            cancelled=self._counts["cancelled"],
            released=self._counts["released"],
            duration_seconds=time.monotonic() - started,
        )

    def _serve(self) -> None:
        while not self._stop_requested():
            if self._claimer_done and not self._inflight:
                break
            if self._idle_exit is not None and not self._inflight:
                if time.monotonic() - self._last_busy >= self._idle_exit:
                    logger.info("idle for %.1f s: stopping", self._idle_exit)
                    break
            elif self._inflight:
                self._last_busy = time.monotonic()
            self._step(_TICK)

    def _shutdown(self) -> None:
        self._stopping.set()
        if self._signal is not None:
            logger.info("signal %s: stopping after running tasks (up to %.0f s)", self._signal, self._grace)
        deadline = time.monotonic() + self._grace
        try:
            while self._inflight and not self._force.is_set() and time.monotonic() < deadline:
                self._step(_TICK)
            if self._inflight and self._force.is_set():
                logger.warning("second signal: not waiting for running tasks")
            if self._inflight:
                logger.warning("releasing %d unfinished task(s)", len(self._inflight))
                for task_id, entry in list(self._inflight.items()):
                    self._cancel_running(task_id)
                    del self._inflight[task_id]
                    self._slots.release()
                    body = {"id": entry.task.id, "token": entry.task.lease_token, "op": "release"}
                    self._queue_ack(_Ack(body, "released"))
            self._claimer.join(self._poll + 5.0)
            while True:
                try:
                    event = self._events.get_nowait()
                except queue_module.Empty:
                    break
                self._handle(event)
            for _ in range(20):
                if not self._pending:
                    break
                self._next_flush_retry = 0.0
                self._flush()
                if self._pending:
                    time.sleep(0.1)
        except QueueClosedError as exc:
            if self._fatal is None:
                self._fatal = exc


def run_with_worker(
    worker: Worker,
    queue: Queue,
    registry: HandlerRegistry | None = None,
    *,
    concurrency: int | None = None,
    stop_event: threading.Event | None = None,
    install_signal_handlers: bool = True,
    max_tasks: int | None = None,
    idle_exit_seconds: float | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> RunSummary:
    """Run handlers on an open worker until stopped (see :func:`run_worker`).

    The worker keeps the types it was opened with and stays open afterwards.

    :param worker: an open :class:`~prismq_queue.Worker`.
    :param queue: the queue the worker belongs to (task logs are written there).
    :param registry: the handlers; default :data:`handlers`.
    :returns: a :class:`RunSummary`.
    """
    if registry is None:
        registry = handlers
    if concurrency is None:
        concurrency = worker.config.concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError("concurrency must be an integer >= 1")
    bad_max = isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks < 0
    if max_tasks is not None and bad_max:
        raise InvalidArgumentError("max_tasks must be a non-negative integer or None")
    if idle_exit_seconds is not None and idle_exit_seconds < 0:
        raise InvalidArgumentError("idle_exit_seconds must be >= 0 or None")
    if grace_seconds < 0:
        raise InvalidArgumentError("grace_seconds must be >= 0")
    runner = _Runner(
        queue,
        worker,
        registry,
        concurrency=concurrency,
        stop_event=stop_event,
        install_signal_handlers=install_signal_handlers,
        max_tasks=max_tasks,
        idle_exit_seconds=idle_exit_seconds,
        grace_seconds=float(grace_seconds),
    )
    return runner.run()


def run_worker(
    queue: Queue,
    config: WorkerConfig,
    registry: HandlerRegistry | None = None,
    *,
    concurrency: int | None = None,
    stop_event: threading.Event | None = None,
    install_signal_handlers: bool = True,
    max_tasks: int | None = None,
    idle_exit_seconds: float | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> RunSummary:
    """Open a worker on ``queue`` and run registered handlers until stopped.

    When ``config.types`` is empty the worker claims only the registry's types, so it
    never fails tasks meant for other workers; a claimed type without a handler fails
    at once, not retryable. A failed handler is retried while ``task.attempts <=
    config.max_retries`` (and the task's max_attempts allows). SIGINT/SIGTERM (handled
    only when called from the main thread) stop claiming, wait for running handlers up to
    ``grace_seconds`` and release what is still unfinished; a second signal skips the wait.

    :param queue: an open :class:`~prismq_queue.Queue`.
    :param config: the worker's configuration.
    :param registry: the handlers; default the module-level :data:`handlers`.
    :param concurrency: tasks run at once; default ``config.concurrency``.
    :param stop_event: set it to stop gracefully (e.g. from another thread).
    :param install_signal_handlers: handle SIGINT/SIGTERM while running.
    :param max_tasks: stop after claiming this many tasks (and finishing them).
    :param idle_exit_seconds: stop after this long with nothing to do.
    :param grace_seconds: how long a stop waits for running handlers (default 30).
    :raises InvalidArgumentError: on invalid options.
    :raises QueueClosedError: the queue was closed while running.
    :returns: a :class:`RunSummary`.
    """
    from .worker import Worker

    if registry is None:
        registry = handlers
    if not config.types and len(registry) > 0:
        config = dataclasses.replace(config, types=registry.types())
    with Worker(queue, config) as worker:
        return run_with_worker(
            worker,
            queue,
            registry,
            concurrency=concurrency,
            stop_event=stop_event,
            install_signal_handlers=install_signal_handlers,
            max_tasks=max_tasks,
            idle_exit_seconds=idle_exit_seconds,
            grace_seconds=grace_seconds,
        )
