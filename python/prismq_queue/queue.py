"""The queue: open a database, enqueue and inspect tasks.

Example::

    from prismq_queue import Queue
    with Queue("/tmp/q.db") as q:
        task = q.enqueue("email.send", {"to": "a@example.com"}, priority=10)
        print(q.get(task.id).status)
"""

from __future__ import annotations

import builtins
import os
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import _lib
from ._errors import InvalidArgumentError
from ._handle import NativeHandle
from .models import (
    _INT32_MAX,
    _INT64_MAX,
    LogEntry,
    RetryConfig,
    Stats,
    SweepResult,
    Task,
    TaskStatus,
    WorkerInfo,
    _check_int,
    _check_object,
    _check_seconds,
    _check_str,
    _dt_to_ms,
    _dumps,
    _encode,
    _encode_str,
    _seconds_to_ms,
)
from .ops import QueueOps

if TYPE_CHECKING:
    from .config import WorkerConfig
    from .worker import Worker

__all__ = ["EnqueueRequest", "Queue"]

_INT64_MIN = -_INT64_MAX - 1


@dataclass
class EnqueueRequest:
    """One task for :meth:`Queue.enqueue_many`; the fields mean what :meth:`Queue.enqueue`'s arguments do."""

    task_type: str
    payload: Mapping[str, Any] | None = None
    priority: int = 100
    delay: float | timedelta | None = None
    run_at: datetime | None = None
    max_attempts: int = 5
    requirements: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    retry: RetryConfig | None = None

    def to_native(self) -> dict[str, Any]:
        """Validate and return the ``pq_enqueue`` task object.

        :raises InvalidArgumentError: for a wrong type or value.
        """
        return _enqueue_object(
            self.task_type,
            self.payload,
            self.priority,
            self.delay,
            self.run_at,
            self.max_attempts,
            self.requirements,
            self.idempotency_key,
            self.retry,
        )


_REQUEST_FIELDS = frozenset(f.name for f in fields(EnqueueRequest))


def _enqueue_object(
    task_type: object,
    payload: object,
    priority: object,
    delay: object,
    run_at: object,
    max_attempts: object,
    requirements: object,
    idempotency_key: object,
    retry: object,
) -> dict[str, Any]:
    # Arguments are checked in order. Plain values pass the type(...) is tests; anything else
    # gets the full check, which raises or returns the value (e.g. an int subclass) unchanged.
    if type(task_type) is not str or not task_type:
        task_type = _check_str("task_type", task_type)
    obj: dict[str, Any] = {"type": task_type}
    if payload is not None:
        obj["payload"] = _check_object("payload", payload)
    if type(priority) is not int or not _INT64_MIN <= priority <= _INT64_MAX:
        priority = _check_int("priority", priority)
    obj["priority"] = priority
    if delay is not None:
        if run_at is not None:
            raise InvalidArgumentError("pass either delay or run_at, not both")
        obj["delay_ms"] = _seconds_to_ms(_check_seconds("delay", delay))
    elif run_at is not None:
        obj["run_at_ms"] = _dt_to_ms("run_at", run_at)
    if type(max_attempts) is not int or not 1 <= max_attempts <= _INT32_MAX:
        max_attempts = _check_int("max_attempts", max_attempts, minimum=1, maximum=_INT32_MAX)
    obj["max_attempts"] = max_attempts
    if requirements is not None:
        obj["requirements"] = _check_object("requirements", requirements)
    if idempotency_key is not None:
        obj["idempotency_key"] = _check_str("idempotency_key", idempotency_key)
    if retry is not None:
        if not isinstance(retry, RetryConfig):
            raise InvalidArgumentError(f"retry must be a RetryConfig, got {type(retry).__name__}")
        obj["retry_base_ms"] = _seconds_to_ms(retry.base_seconds)
        obj["retry_cap_ms"] = _seconds_to_ms(retry.cap_seconds)
    return obj


def _enqueue_json(
    task_type: object,
    payload: object,
    priority: object,
    delay: object,
    run_at: object,
    max_attempts: object,
    requirements: object,
    idempotency_key: object,
    retry: object,
) -> bytes:
    """``_dumps(_enqueue_object(...), "task")``: the ``pq_enqueue`` argument, same bytes and errors.

    The common call (a type, a dict payload, int priority and max_attempts, no other option)
    is checked and written out here; JSON-encoding only the payload is cheaper than the whole
    object. Anything else takes the general path.
    """
    if (
        type(task_type) is str
        and task_type
        and type(priority) is int
        and _INT64_MIN <= priority <= _INT64_MAX
        and type(max_attempts) is int
        and 1 <= max_attempts <= _INT32_MAX
        and delay is None
        and run_at is None
        and requirements is None
        and idempotency_key is None
        and retry is None
    ):
        # A payload that is not a dict with str keys raises here what the general path raises
        # (task_type, the only argument checked before it, passed).
        checked = None if payload is None else _check_object("payload", payload)
        try:
            body = "" if checked is None else ',"payload":' + _encode(checked)
            text = (
                f'{{"type":{_encode_str(task_type)}{body}'
                f',"priority":{priority},"max_attempts":{max_attempts}}}'
            )
            return text.encode("utf-8")
        except (TypeError, ValueError, RecursionError):
            pass  # not JSON-serialisable: the general path raises its usual error
    obj = _enqueue_object(
        task_type, payload, priority, delay, run_at, max_attempts, requirements, idempotency_key, retry
    )
    return _dumps(obj, "task")


def _names(what: str, value: object, coerce: Any) -> builtins.list[str] | None:
    """Normalise None | one name | iterable of names to a list of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return [coerce(value)]
    if not isinstance(value, Iterable):
        raise InvalidArgumentError(f"{what} must be a str or an iterable of str, got {type(value).__name__}")
    return [coerce(v) for v in value]


def _type_name(value: object) -> str:
    return _check_str("task_type", value)


def _status_name(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"status must be a TaskStatus or str, got {type(value).__name__}")
    return TaskStatus.coerce(value).value


ENV_DB_PATH = "PRISMQ_QUEUE_DB_PATH"
"""The environment variable naming the default database file."""


class Queue(NativeHandle, QueueOps):
    """A persistent task queue stored in one SQLite database; safe to share between threads.

    Operations (metrics, maintenance, doctor, purge, requeue, backup) come from
    :class:`~prismq_queue.ops.QueueOps`.

    :param path: database file; default ``$PRISMQ_QUEUE_DB_PATH``, else a per-user data
        directory (``C:\\Data\\PrismQ\\queue\\queue.db`` on Windows). Parent folders are created.
    :param allow_network_path: open a database on a network share (refused by default).
    :param pragmas: SQLite PRAGMA overrides, e.g. ``{"synchronous": "FULL"}``.
    :param max_payload_bytes: size limit of payload, requirements and result; default 1 MiB.
    :param default_lease_seconds: lease granted by claims of workers that set none; default 60.
    :param sweep_interval_seconds: how often expired leases are swept; default 1.
    :param disable_sweeper: do not run the background sweeper (call :meth:`sweep` yourself).
    :param wake_poll_interval_seconds: cross-process wake-up poll of waiting claims; default 0.02.
    :param retry: default backoff of failed tasks.
    :raises InvalidArgumentError: for a bad option.
    :raises NetworkPathError: for a network path without ``allow_network_path``.
    :raises QueueIOError: when the database cannot be created or opened.
    :raises SchemaError: when the database was written by a newer library.
    :raises LibraryNotFoundError: when the native library is missing.
    """

    _kind = "queue"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        allow_network_path: bool = False,
        pragmas: Mapping[str, str | int | float | bool] | None = None,
        max_payload_bytes: int | None = None,
        default_lease_seconds: float | timedelta | None = None,
        sweep_interval_seconds: float | timedelta | None = None,
        disable_sweeper: bool = False,
        wake_poll_interval_seconds: float | timedelta | None = None,
        retry: RetryConfig | None = None,
    ) -> None:
        options: dict[str, Any] = {}
        if path is None:
            # Read here, not in the library: the Go runtime keeps a copy of the
            # environment from when it loaded, so later changes would be missed.
            path = os.environ.get(ENV_DB_PATH) or None
        if path is not None:
            if not isinstance(path, (str, os.PathLike)):
                raise InvalidArgumentError(f"path must be a str or os.PathLike, got {type(path).__name__}")
            p = os.fsdecode(os.fspath(path))
            if not p:
                raise InvalidArgumentError("path must not be empty")
            options["path"] = p
        if not isinstance(allow_network_path, bool):
            raise InvalidArgumentError("allow_network_path must be a bool")
        if allow_network_path:
            options["allow_network_path"] = True
        if pragmas is not None:
            checked = _check_object("pragmas", pragmas)
            options["pragmas"] = {k: _pragma_value(k, v) for k, v in checked.items()}
        if max_payload_bytes is not None:
            options["max_payload_bytes"] = _check_int("max_payload_bytes", max_payload_bytes, minimum=1)
        if default_lease_seconds is not None:
            secs = _check_seconds("default_lease_seconds", default_lease_seconds, allow_zero=False)
            options["default_lease_ms"] = _seconds_to_ms(secs)
        if sweep_interval_seconds is not None:
            secs = _check_seconds("sweep_interval_seconds", sweep_interval_seconds, allow_zero=False)
            options["sweep_interval_ms"] = _seconds_to_ms(secs)
        if not isinstance(disable_sweeper, bool):
            raise InvalidArgumentError("disable_sweeper must be a bool")
        if disable_sweeper:
            options["disable_sweeper"] = True
        if wake_poll_interval_seconds is not None:
            secs = _check_seconds("wake_poll_interval_seconds", wake_poll_interval_seconds, allow_zero=False)
            options["wake_poll_interval_ms"] = _seconds_to_ms(secs)
        if retry is not None:
            if not isinstance(retry, RetryConfig):
                raise InvalidArgumentError(f"retry must be a RetryConfig, got {type(retry).__name__}")
            options["retry"] = retry.to_native()
        _lib.load()
        f = _lib.FUNCTIONS
        self._f_enqueue = f["pq_enqueue"]
        self._f_get = f["pq_get"]
        handle = _lib.call_handle(f["pq_open"], _dumps(options, "queue options"))
        super().__init__(handle)
        self._workers: weakref.WeakSet[NativeHandle] = weakref.WeakSet()
        try:
            info = self.info()
        except BaseException:
            self.close()
            raise
        self._path: str = info.get("path", "")
        self._schema_version: int = int(info.get("schema_version", 0))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Queue {self._path!r} {state}>"

    def _native_close(self, handle: int) -> None:
        for w in builtins.list(self._workers):
            w._mark_closed()  # pq_close closes them natively
        _lib.call(_lib.FUNCTIONS["pq_close"], handle)

    def _register_worker(self, worker: NativeHandle) -> None:
        self._workers.add(worker)

    @property
    def path(self) -> str:
        """Absolute path of the database file."""
        return self._path

    @property
    def schema_version(self) -> int:
        """Schema version of the database after migration."""
        return self._schema_version

    def info(self) -> dict[str, Any]:
        """Return ``{"path", "schema_version", "pragmas", "version"}`` of the open database.

        :raises QueueClosedError: after :meth:`close`.
        """
        info: dict[str, Any] = _lib.call_json(_lib.FUNCTIONS["pq_queue_info"], self._h())
        return info

    def enqueue(
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
        """Add a task; ``Task.created`` tells whether it was inserted or its idempotency key existed.

        :param task_type: handler name, e.g. ``"email.send"``.
        :param payload: JSON object handed to the handler (default ``{}``).
        :param priority: lower runs first; default 100.
        :param delay: earliest start relative to now (seconds or timedelta).
        :param run_at: earliest start as an aware datetime (not with ``delay``).
        :param max_attempts: attempts before the task ends failed; default 5.
        :param requirements: worker capabilities the task needs.
        :param idempotency_key: unique key; re-enqueueing it returns the existing task.
        :param retry: backoff override for this task.
        :raises InvalidArgumentError: for a wrong type or value.
        :raises PayloadTooLargeError: when payload or requirements exceed ``max_payload_bytes``.
        :raises QueueClosedError: after :meth:`close`.
        """
        data = _enqueue_json(
            task_type, payload, priority, delay, run_at, max_attempts, requirements, idempotency_key, retry
        )
        out = _lib.call_json(self._f_enqueue, self._h(), data)
        return Task.from_json(out["task"], out["created"])

    def enqueue_many(self, items: Iterable[EnqueueRequest | Mapping[str, Any]]) -> builtins.list[Task]:
        """Add many tasks in one transaction (all or nothing), returned in input order.

        :param items: :class:`EnqueueRequest` objects or dicts with its field names.
        :raises InvalidArgumentError: for a wrong item; nothing is enqueued then.
        :raises PayloadTooLargeError: when an item is over the size limit.
        :raises QueueClosedError: after :meth:`close`.
        """
        h = self._h()
        raw: object = items
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
            raise InvalidArgumentError("items must be an iterable of EnqueueRequest or dict")
        objs: builtins.list[dict[str, Any]] = []
        for i, item in enumerate(items):
            if isinstance(item, EnqueueRequest):
                objs.append(item.to_native())
            elif isinstance(item, Mapping):
                unknown = set(item) - _REQUEST_FIELDS
                if unknown:
                    raise InvalidArgumentError(f"items[{i}]: unknown keys {sorted(map(str, unknown))}")
                if "task_type" not in item:
                    raise InvalidArgumentError(f"items[{i}]: task_type is required")
                objs.append(EnqueueRequest(**item).to_native())
            else:
                raise InvalidArgumentError(
                    f"items[{i}] must be an EnqueueRequest or dict, got {type(item).__name__}"
                )
        if not objs:
            return []
        out = _lib.call_json(_lib.FUNCTIONS["pq_enqueue_many"], h, _dumps(objs, "tasks"))
        return [Task.from_json(r["task"], r["created"]) for r in out]

    def get(self, task_id: int) -> Task:
        """Return one task.

        :raises TaskNotFoundError: for an unknown id.
        :raises QueueClosedError: after :meth:`close`.
        """
        tid = _check_int("task_id", task_id)
        return Task.from_json(_lib.call_json(self._f_get, self._h(), tid))

    def list(
        self,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        task_type: str | Iterable[str] | None = None,
        limit: int = 100,
        after_id: int | None = None,
        descending: bool = False,
    ) -> builtins.list[Task]:
        """Return one page of tasks ordered by id.

        :param status: one status or several (default all).
        :param task_type: one type or several (default all).
        :param limit: page size, 1..10000; default 100.
        :param after_id: cursor: only ids after this one (in the chosen order).
        :param descending: newest first.
        :raises InvalidArgumentError: for an unknown status or bad limit.
        :raises QueueClosedError: after :meth:`close`.
        """
        tasks, _ = self._list_page(status, task_type, limit, after_id, descending)
        return tasks

    def _list_page(
        self,
        status: object,
        task_type: object,
        limit: object,
        after_id: object,
        descending: object,
    ) -> tuple[builtins.list[Task], int | None]:
        h = self._h()
        flt: dict[str, Any] = {"limit": _check_int("limit", limit, minimum=1, maximum=10_000)}
        statuses = _names("status", status, _status_name)
        if statuses is not None:
            flt["statuses"] = statuses
        types = _names("task_type", task_type, _type_name)
        if types is not None:
            flt["types"] = types
        if after_id is not None:
            flt["after_id"] = _check_int("after_id", after_id)
        if not isinstance(descending, bool):
            raise InvalidArgumentError("descending must be a bool")
        if descending:
            flt["descending"] = True
        out = _lib.call_json(_lib.FUNCTIONS["pq_list"], h, _dumps(flt, "filter"))
        return [Task.from_json(t) for t in out["tasks"]], out.get("next_after_id")

    def iter_tasks(
        self,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        task_type: str | Iterable[str] | None = None,
        *,
        page_size: int = 500,
        descending: bool = False,
    ) -> Iterator[Task]:
        """Yield every matching task, fetching ``page_size`` at a time.

        :raises InvalidArgumentError: for an unknown status or bad page size.
        :raises QueueClosedError: after :meth:`close`.
        """
        statuses = _names("status", status, _status_name)
        types = _names("task_type", task_type, _type_name)
        cursor: int | None = None
        while True:
            tasks, cursor = self._list_page(statuses, types, page_size, cursor, descending)
            yield from tasks
            if cursor is None or not tasks:
                return

    def cancel(self, task_id: int) -> Task:
        """Cancel a task: a queued one at once, a leased one by a request its worker honours.

        :raises TaskNotFoundError: for an unknown id.
        :raises InvalidStateError: when the task already finished.
        :raises QueueClosedError: after :meth:`close`.
        """
        tid = _check_int("task_id", task_id)
        return Task.from_json(_lib.call_json(_lib.FUNCTIONS["pq_cancel"], self._h(), tid))

    def retry(self, task_id: int) -> Task:
        """Queue a failed or cancelled task again, with its attempts reset.

        :raises TaskNotFoundError: for an unknown id.
        :raises InvalidStateError: when the task is not failed or cancelled.
        :raises QueueClosedError: after :meth:`close`.
        """
        tid = _check_int("task_id", task_id)
        return Task.from_json(_lib.call_json(_lib.FUNCTIONS["pq_retry"], self._h(), tid))

    def stats(self) -> Stats:
        """Return task counts by status and type.

        :raises QueueClosedError: after :meth:`close`.
        """
        return Stats.from_json(_lib.call_json(_lib.FUNCTIONS["pq_stats"], self._h()))

    def sweep(self) -> SweepResult:
        """Run the lease sweeper once now: expired leases are requeued or failed.

        :raises QueueClosedError: after :meth:`close`.
        """
        return SweepResult.from_json(_lib.call_json(_lib.FUNCTIONS["pq_sweep"], self._h()))

    def log(
        self,
        task_id: int,
        message: str,
        level: str = "info",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a line to a task's log.

        :param level: free-form level name, e.g. ``"info"``, ``"warning"``, ``"error"``.
        :param details: optional JSON object.
        :raises TaskNotFoundError: for an unknown id.
        :raises QueueClosedError: after :meth:`close`.
        """
        tid = _check_int("task_id", task_id)
        entry: dict[str, Any] = {
            "message": _check_str("message", message, allow_empty=True),
            "level": _check_str("level", level),
        }
        if details is not None:
            entry["details"] = _check_object("details", details)
        _lib.call(_lib.FUNCTIONS["pq_log"], self._h(), tid, _dumps(entry, "log entry"))

    def logs(self, task_id: int, limit: int = 0) -> builtins.list[LogEntry]:
        """Return a task's log, oldest first, at most ``limit`` lines (0: all).

        :raises TaskNotFoundError: for an unknown id.
        :raises QueueClosedError: after :meth:`close`.
        """
        tid = _check_int("task_id", task_id)
        n = _check_int("limit", limit, minimum=0, maximum=_INT32_MAX)
        out = _lib.call_json(_lib.FUNCTIONS["pq_logs"], self._h(), tid, n)
        return [LogEntry.from_json(e) for e in out["logs"]]

    def workers(self) -> builtins.list[WorkerInfo]:
        """Return the registered workers.

        :raises QueueClosedError: after :meth:`close`.
        """
        out = _lib.call_json(_lib.FUNCTIONS["pq_workers"], self._h())
        return [WorkerInfo.from_json(w) for w in out["workers"]]

    def worker(self, config: WorkerConfig) -> Worker:
        """Register a worker on this queue (shortcut for ``Worker(queue, config)``).

        :raises InvalidArgumentError: when config is not a WorkerConfig.
        :raises QueueClosedError: after :meth:`close`.
        """
        from .worker import Worker

        return Worker(self, config)


def _pragma_value(name: str, value: object) -> str | int | float:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, (str, int, float)):
        return value
    raise InvalidArgumentError(f"pragma {name} must be a str or number, got {type(value).__name__}")
