"""PrismQ Task Queue: a persistent multi-process task queue (Go engine over SQLite) for Python.

Example::

    from prismq_queue import Queue, WorkerConfig, SchedulingStrategy

    with Queue("/tmp/q.db") as q:
        q.enqueue("email.send", {"to": "a@example.com"})
        config = WorkerConfig(worker_id="worker-1", scheduling_strategy=SchedulingStrategy.PRIORITY)
        with q.worker(config) as w:
            task = w.claim(timeout=1.0)
            if task is not None:
                w.complete(task, {"sent": True})
"""

from __future__ import annotations

from ._errors import (
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    LeaseLostError,
    LibraryNotFoundError,
    NetworkPathError,
    PayloadTooLargeError,
    QueueBusyError,
    QueueClosedError,
    QueueError,
    QueueIOError,
    SchemaError,
    TaskCancelledError,
    TaskNotFoundError,
    error_from_code,
)
from ._lib import default_path, version
from .aio import AsyncQueue, AsyncWorker
from .config import WorkerConfig
from .models import (
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
from .queue import EnqueueRequest, Queue
from .runner import HandlerRegistry, RunSummary, TaskContext, handlers, run_worker, task
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AckResult",
    "AsyncQueue",
    "AsyncWorker",
    "EnqueueRequest",
    "HandlerRegistry",
    "InternalError",
    "InvalidArgumentError",
    "InvalidStateError",
    "LeaseInfo",
    "LeaseLostError",
    "LibraryNotFoundError",
    "LogEntry",
    "NetworkPathError",
    "PayloadTooLargeError",
    "Queue",
    "QueueBusyError",
    "QueueClosedError",
    "QueueError",
    "QueueIOError",
    "RetryConfig",
    "RunSummary",
    "SchedulingStrategy",
    "SchemaError",
    "Stats",
    "SweepResult",
    "Task",
    "TaskCancelledError",
    "TaskContext",
    "TaskNotFoundError",
    "TaskStatus",
    "Worker",
    "WorkerConfig",
    "WorkerInfo",
    "default_path",
    "error_from_code",
    "handlers",
    "run_worker",
    "task",
    "version",
]
