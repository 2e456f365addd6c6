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
from .manager import (
    Divergence,
    InMemoryTaskManager,
    QueuedTaskManager,
    RecoveredRun,
    ShadowTaskManager,
    create_task_manager,
    run_handler,
)
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
from .ops import (
    BackupProgress,
    BackupResult,
    BulkResult,
    DoctorReport,
    Finding,
    MaintenanceReport,
    Metrics,
    restore,
)
from .queue import EnqueueRequest, Queue
from .runner import HandlerRegistry, RunSummary, TaskContext, handlers, run_worker, task
from .runs import QueueRunRegistry, RunRecord, export_history, import_history
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AckAndClaimResult",
    "AckResult",
    "AsyncQueue",
    "AsyncWorker",
    "BackupProgress",
    "BackupResult",
    "BulkResult",
    "Divergence",
    "DoctorReport",
    "EnqueueRequest",
    "Finding",
    "HandlerRegistry",
    "InMemoryTaskManager",
    "InternalError",
    "InvalidArgumentError",
    "InvalidStateError",
    "LeaseInfo",
    "LeaseLostError",
    "LibraryNotFoundError",
    "LogEntry",
    "MaintenanceReport",
    "Metrics",
    "NetworkPathError",
    "PayloadTooLargeError",
    "Queue",
    "QueueBusyError",
    "QueueClosedError",
    "QueueError",
    "QueueIOError",
    "QueueRunRegistry",
    "QueuedTaskManager",
    "RecoveredRun",
    "RetryConfig",
    "RunRecord",
    "RunSummary",
    "SchedulingStrategy",
    "SchemaError",
    "ShadowTaskManager",
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
    "create_task_manager",
    "default_path",
    "error_from_code",
    "export_history",
    "handlers",
    "import_history",
    "restore",
    "run_handler",
    "run_worker",
    "task",
    "version",
]
