"""Run records of the app's ``RunRegistry`` kept in the queue database, and JSON history migration.

The app describes a background run with a ``Run`` object (a pydantic model there; any object with
the attributes below works) and keeps them in a ``RunRegistry`` that rewrites a JSON file on every
change. :class:`QueueRunRegistry` has the same API and keeps the runs in the queue database
instead, so several processes share one registry. :func:`import_history` and
:func:`export_history` move a history file (``{run_id: run_as_json, ...}``, the format
``RunRegistry`` reads and writes) into the database and back, losslessly.

Example::

    from prismq_queue import QueueRunRegistry

    with QueueRunRegistry("/tmp/q.db") as registry:
        registry.add_run(run)                  # run: the app's Run object
        registry.get_runs_by_status(RunStatus.RUNNING)

Storage: the C ABI has no key-value table, so every change is an event, a task of the reserved
type ``prismq.run`` whose payload is ``{"op": "put", "run": {...}}`` or ``{"op": "delete",
"run_id": ...}``. Events carry the requirement ``{"prismq.role": "run-registry"}`` (no ordinary
worker has that capability, so none claims them) and are settled (completed) in the background by
a small internal worker, so that they never linger in the claim indexes. Each process keeps the
current runs in memory and catches up with other processes' events (in commit order, by task id)
before every query. Events are never deleted (the ABI has no purge): opening a registry replays
them all.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from . import _lib
from ._errors import InvalidArgumentError, QueueClosedError, QueueError
from .config import WorkerConfig
from .models import _dumps
from .queue import EnqueueRequest, Queue
from .worker import Worker

__all__ = [
    "RUN_EVENT_TYPE",
    "RUN_FIELDS",
    "QueueRunRegistry",
    "RunRecord",
    "export_history",
    "import_history",
    "record_to_run",
    "run_to_record",
]

logger = logging.getLogger("prismq_queue.runs")

RUN_EVENT_TYPE = "prismq.run"
"""Task type of the registry's change events."""

RUN_FIELDS = (
    "run_id",
    "module_id",
    "module_name",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "duration_seconds",
    "progress_percent",
    "items_processed",
    "items_total",
    "exit_code",
    "error_message",
    "parameters",
)
"""The attributes of the app's ``Run`` (SPEC: the BackgroundTaskManager contract)."""

ROLE_KEY = "prismq.role"
_REGISTRY_ROLE = "run-registry"
_DATETIME_FIELDS = ("created_at", "started_at", "completed_at")
_ACTIVE = ("queued", "running")
_PAGE = 10_000
_IMPORT_CHUNK = 500

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``, called as a migration advances."""


# ---- Run objects <-> JSON records ---------------------------------------------------------------


@dataclasses.dataclass
class RunRecord:
    """A run rebuilt from the database when no ``Run`` class is known (same attributes as ``Run``).

    ``status`` is the status value (``"running"``, ...); it compares equal to the app's
    ``RunStatus`` members, which are ``str`` enums.
    """

    run_id: str
    module_id: str = ""
    module_name: str = ""
    status: str = "queued"
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    progress_percent: float | None = None
    items_processed: int | None = None
    items_total: int | None = None
    exit_code: int | None = None
    error_message: str | None = None
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)


def _iso(value: datetime) -> str:
    text = value.isoformat()
    # pydantic's JSON mode writes UTC as "Z"; do the same so both kinds of Run write alike.
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):  # first: str enums are str too
        return _jsonable(value.value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):  # date, time
        return value.isoformat()
    return str(value)


class RunSnapshot(dict):  # type: ignore[type-arg]
    """A cheap copy of a run's attributes, turned into its JSON record later (off the event loop)."""


def snapshot_run(run: Any) -> Any:
    """Copy a run's state in about a microsecond; :func:`run_to_record` accepts the copy.

    Objects without a ``__dict__`` (or mappings) are serialised at once instead.
    """
    state = getattr(run, "__dict__", None)
    if isinstance(state, dict) and "run_id" in state:
        snap = RunSnapshot(state)
        params = snap.get("parameters")
        if isinstance(params, dict):
            snap["parameters"] = dict(params)
        return snap
    return run_to_record(run)


def run_to_record(run: Any) -> dict[str, Any]:
    """Return the JSON record of a run: pydantic's ``model_dump(mode="json")`` when it has one.

    Works with pydantic v2 and v1 models, dataclasses, mappings and plain objects (their
    :data:`RUN_FIELDS` attributes). Datetimes become ISO 8601 strings (UTC as ``Z``), enums
    their values.

    :raises InvalidArgumentError: when the run has no ``run_id``.
    """
    dump = getattr(run, "model_dump", None)
    if isinstance(run, Mapping):
        data = dict(run)
    elif callable(dump):
        data = dump(mode="json")
    elif dataclasses.is_dataclass(run) and not isinstance(run, type):
        data = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
    elif callable(getattr(run, "dict", None)) and hasattr(run, "__fields__"):  # pydantic v1
        data = run.dict()
    else:
        data = {name: getattr(run, name) for name in RUN_FIELDS if hasattr(run, name)}
    record = _jsonable(data)
    if not isinstance(record, dict):
        raise InvalidArgumentError(f"a run must serialise to a JSON object, got {type(record).__name__}")
    run_id = record.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise InvalidArgumentError(f"a run needs a non-empty str run_id, got {run_id!r}")
    return record


def _parse_dt(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return value
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def record_to_run(record: Mapping[str, Any], factory: Any = None, status_type: Any = None) -> Any:
    """Build a run object from its JSON record.

    :param factory: the app's ``Run`` class (pydantic v2 ``model_validate``, v1 ``parse_obj``, a
        dataclass or any class taking the fields as keywords); None builds a :class:`RunRecord`.
    :param status_type: the app's ``RunStatus`` enum, used for non-pydantic classes.
    """
    if factory is not None:
        validate = getattr(factory, "model_validate", None) or getattr(factory, "parse_obj", None)
        if callable(validate):
            return validate(dict(record))
    values = dict(record)
    for name in _DATETIME_FIELDS:
        if name in values:
            values[name] = _parse_dt(values[name])
    if status_type is not None and isinstance(values.get("status"), str):
        try:
            values["status"] = status_type(values["status"])
        except ValueError:
            pass
    cls = factory if factory is not None else RunRecord
    if dataclasses.is_dataclass(cls):
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
    return cls(**values)


def _copy_into(target: Any, source: Any) -> None:
    """Give an existing run object the field values of another (keeps the app's object identity)."""
    names: Iterable[str]
    fields_of = getattr(type(source), "model_fields", None)
    if isinstance(fields_of, Mapping):
        names = list(fields_of)
    elif dataclasses.is_dataclass(source) and not isinstance(source, type):
        names = [f.name for f in dataclasses.fields(source)]
    else:
        names = [n for n in RUN_FIELDS if hasattr(source, n)]
    for name in names:
        try:
            setattr(target, name, getattr(source, name))
        except (AttributeError, TypeError, ValueError):
            logger.debug("cannot set %s on %r", name, type(target).__name__)


def _status_value(run: Any) -> str:
    status = getattr(run, "status", None)
    if isinstance(status, Enum):
        status = status.value
    return str(status) if status is not None else ""


def _aware(value: Any) -> datetime | None:
    value = _parse_dt(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


# ---- the registry --------------------------------------------------------------------------------


class _Settler:
    """Completes the registry's event tasks in the background so they leave the claim indexes."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _open_worker(self) -> Worker:
        if self._worker is None:
            config = WorkerConfig(
                worker_id=f"prismq-registry:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                capabilities={ROLE_KEY: _REGISTRY_ROLE},
                types=[RUN_EVENT_TYPE],
            )
            self._worker = Worker(self._queue, config)
        return self._worker

    def poke(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._serve, name="prismq-run-registry", daemon=True)
                self._thread.start()
        self._wake.set()

    def settle(self) -> int:
        """Complete every queued event now; return how many."""
        done = 0
        with self._lock:
            worker = self._open_worker()
        while True:
            tasks = worker.claim_many(256)
            if not tasks:
                return done
            worker.ack_many([{"task": t, "op": "complete"} for t in tasks])
            done += len(tasks)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.settle()
            except QueueClosedError:
                return
            except QueueError as exc:
                logger.warning("run registry: settling events failed, will retry: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(5.0)
        if not self._queue.closed:
            try:
                self.settle()
            except QueueError as exc:
                logger.warning("run registry: events left to settle: %s", exc)
        if self._worker is not None:
            self._worker.close()


class QueueRunRegistry:
    """The app's ``RunRegistry`` API stored in the queue database, shared safely by processes.

    Every change is committed before the call returns; every query first reads the changes
    other processes committed since (one indexed query). Run objects added in this process are
    returned as the same objects (as ``RunRegistry`` does); runs written by another process are
    rebuilt with ``run_factory`` (default: the class of the first run this registry was given,
    else :class:`RunRecord`). The registry is thread-safe.

    :param path: the database file (None: ``PRISMQ_QUEUE_DB_PATH`` or the platform default);
        ignored when ``queue`` is given.
    :param queue: an open :class:`Queue` to use (left open by :meth:`close`).
    :param run_factory: the app's ``Run`` class, used to rebuild runs read from the database.
    :raises QueueError: when the database cannot be opened (see :class:`Queue`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        queue: Queue | None = None,
        run_factory: Any = None,
    ) -> None:
        if queue is not None and not isinstance(queue, Queue):
            raise InvalidArgumentError(f"queue must be a Queue, got {type(queue).__name__}")
        self._queue = queue if queue is not None else Queue(path)
        self._owns_queue = queue is None
        self._factory = run_factory
        self._status_type: Any = None
        self._lock = threading.RLock()
        self._runs: dict[str, Any] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._cursor = 0
        self._settler = _Settler(self._queue)
        self._closed = False
        try:
            self.refresh()
        except BaseException:
            self.close()
            raise

    # ---- plumbing ------------------------------------------------------------------------------

    @property
    def queue(self) -> Queue:
        """The queue database holding the runs."""
        return self._queue

    @property
    def history_file(self) -> Path:
        """The database file (the JSON registry's attribute of the same name)."""
        return Path(self._queue.path)

    @property
    def runs(self) -> dict[str, Any]:
        """All runs by id (a snapshot, refreshed from the database)."""
        with self._lock:
            self.refresh()
            return dict(self._runs)

    def _learn(self, run: Any) -> None:
        if self._factory is None and not isinstance(run, (RunRecord, Mapping)):
            self._factory = type(run)
        if self._status_type is None and isinstance(getattr(run, "status", None), Enum):
            self._status_type = type(run.status)

    def _apply(self, payload: Mapping[str, Any]) -> None:
        op = payload.get("op")
        if op == "put":
            record = payload.get("run")
            if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
                return
            run_id = record["run_id"]
            if self._records.get(run_id) == record:
                return  # our own write, already applied
            fresh = record_to_run(record, self._factory, self._status_type)
            current = self._runs.get(run_id)
            if current is not None and type(current) is type(fresh):
                _copy_into(current, fresh)
            else:
                self._runs[run_id] = fresh
            self._records[run_id] = record
        elif op == "delete":
            run_id = payload.get("run_id")
            if isinstance(run_id, str):
                self._runs.pop(run_id, None)
                self._records.pop(run_id, None)

    def refresh(self) -> int:
        """Read the changes committed since the last call (also by other processes).

        :returns: how many events were applied.
        :raises QueueClosedError: after :meth:`close`.
        """
        if self._closed:
            raise QueueClosedError("run registry is closed")
        applied = 0
        with self._lock:
            h = self._queue._h()
            fn = _lib.FUNCTIONS["pq_list"]
            while True:
                flt = {"types": [RUN_EVENT_TYPE], "after_id": self._cursor, "limit": _PAGE}
                out = _lib.call_json(fn, h, _dumps(flt, "filter"))
                tasks = out["tasks"]
                for t in tasks:
                    self._apply(t.get("payload") or {})
                    self._cursor = t["id"]
                applied += len(tasks)
                if len(tasks) < _PAGE:
                    return applied

    def _write(self, events: list[dict[str, Any]]) -> list[int]:
        if self._closed:
            raise QueueClosedError("run registry is closed")
        reqs = {ROLE_KEY: _REGISTRY_ROLE}
        items = [EnqueueRequest(RUN_EVENT_TYPE, e, max_attempts=1000, requirements=reqs) for e in events]
        ids = [t.id for t in self._queue.enqueue_many(items)]
        self._settler.poke()
        return ids

    def _put(self, run: Any) -> None:
        record = run_to_record(run)
        with self._lock:
            self._learn(run)
            (event_id,) = self._write([{"op": "put", "run": record}])
            if event_id != self._cursor + 1:
                self.refresh()  # others wrote in between: apply theirs (and ours) in order
            else:
                self._cursor = event_id
            self._runs[record["run_id"]] = run
            self._records[record["run_id"]] = record

    # ---- the RunRegistry API ------------------------------------------------------------------

    def add_run(self, run: Any) -> None:
        """Add a run (replacing one with the same ``run_id``).

        :raises InvalidArgumentError: when the run has no ``run_id`` or is not JSON-able.
        """
        self._put(run)

    def update_run(self, run: Any) -> None:
        """Store the run's current state.

        :raises InvalidArgumentError: when the run has no ``run_id`` or is not JSON-able.
        """
        self._put(run)

    def get_run(self, run_id: str) -> Any | None:
        """Return the run with this id, or None."""
        with self._lock:
            self.refresh()
            return self._runs.get(run_id)

    def get_active_runs(self) -> builtins.list[Any]:
        """Return the queued and running runs."""
        with self._lock:
            self.refresh()
            return [r for r in self._runs.values() if _status_value(r) in _ACTIVE]

    def get_runs_by_module(self, module_id: str) -> builtins.list[Any]:
        """Return the runs of one module."""
        with self._lock:
            self.refresh()
            return [r for r in self._runs.values() if getattr(r, "module_id", None) == module_id]

    def get_runs_by_status(self, status: Any) -> builtins.list[Any]:
        """Return the runs with this status (a ``RunStatus`` member or its value)."""
        wanted = status.value if isinstance(status, Enum) else str(status)
        with self._lock:
            self.refresh()
            return [r for r in self._runs.values() if _status_value(r) == wanted]

    def get_recent_runs(self, limit: int = 50) -> builtins.list[Any]:
        """Return up to ``limit`` runs, newest ``created_at`` first."""
        floor = datetime.min.replace(tzinfo=timezone.utc)
        with self._lock:
            self.refresh()
            runs = sorted(
                self._runs.values(),
                key=lambda r: _aware(getattr(r, "created_at", None)) or floor,
                reverse=True,
            )
        return runs[:limit]

    def cleanup_old_runs(self, days: int = 30) -> int:
        """Remove runs that completed more than ``days`` days ago.

        :returns: how many were removed.
        """
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        with self._lock:
            self.refresh()
            old = []
            for run_id, run in self._runs.items():
                done = _aware(getattr(run, "completed_at", None))
                if done is not None and done < cutoff:
                    old.append(run_id)
            for start in range(0, len(old), _IMPORT_CHUNK):
                chunk = old[start : start + _IMPORT_CHUNK]
                self._write([{"op": "delete", "run_id": r} for r in chunk])
            self.refresh()
        if old:
            logger.info("cleaned up %d old runs", len(old))
        return len(old)

    # ---- migration --------------------------------------------------------------------------------

    def records(self) -> dict[str, dict[str, Any]]:
        """Return every run's JSON record by id, in the order the runs were first added."""
        with self._lock:
            self.refresh()
            return {run_id: dict(rec) for run_id, rec in self._records.items()}

    def import_records(
        self,
        records: Mapping[str, Mapping[str, Any]],
        progress: ProgressCallback | None = None,
    ) -> int:
        """Store many runs given as JSON records (the history file's ``{run_id: record}``).

        Records are stored as they are (no field is changed), in batches of 500 per transaction.

        :returns: how many runs were stored.
        :raises InvalidArgumentError: for a record that is not an object with a matching ``run_id``.
        """
        items = list(records.items())
        for run_id, rec in items:
            if not isinstance(rec, Mapping):
                raise InvalidArgumentError(f"run {run_id!r}: a run must be a JSON object")
            if rec.get("run_id", run_id) != run_id:
                raise InvalidArgumentError(f"run {run_id!r}: its run_id is {rec.get('run_id')!r}")
        total = len(items)
        done = 0
        if progress is not None:
            progress(0, total)
        with self._lock:
            for start in range(0, total, _IMPORT_CHUNK):
                chunk = items[start : start + _IMPORT_CHUNK]
                events = []
                for run_id, rec in chunk:
                    record = dict(rec)
                    record.setdefault("run_id", run_id)
                    events.append({"op": "put", "run": record})
                self._write(events)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            self.refresh()
        return total

    # ---- lifecycle -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Settle the written events now (they are durable already; this tidies the queue)."""
        self._settler.settle()

    def close(self) -> None:
        """Settle pending events and close the database (when this registry opened it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._settler.close()
        if self._owns_queue:
            self._queue.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __enter__(self) -> QueueRunRegistry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        with self._lock:
            self.refresh()
            return len(self._runs)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<QueueRunRegistry {self._queue.path!r} {state}>"


# ---- JSON history files -------------------------------------------------------------------------


def read_history(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a ``RunRegistry`` history file: ``{run_id: record}`` (a list of records is accepted too).

    :raises InvalidArgumentError: when the file is not such JSON.
    :raises OSError: when it cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"{path}: invalid JSON: {exc}") from None
    if isinstance(data, list):
        out: dict[str, dict[str, Any]] = {}
        for i, rec in enumerate(data):
            if not isinstance(rec, dict) or not isinstance(rec.get("run_id"), str):
                raise InvalidArgumentError(f"{path}: item {i} is not a run object with a run_id")
            out[rec["run_id"]] = rec
        return out
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"{path}: expected an object of runs by id, got {type(data).__name__}")
    for run_id, rec in data.items():
        if not isinstance(rec, dict):
            raise InvalidArgumentError(f"{path}: run {run_id!r} is not an object")
    return data


def write_history(
    records: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
) -> int:
    """Write runs as ``RunRegistry`` does (``json.dump(data, f, indent=2)``), atomically.

    The text is the same, byte for byte, as ``RunRegistry`` would write for these records.

    :returns: how many runs were written.
    :raises OSError: when the file cannot be written.
    """
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    total = len(records)
    step = max(1, total // 100)
    if progress is not None:
        progress(0, total)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            if total == 0:
                f.write("{}")
            else:
                f.write("{\n")
                for i, (run_id, rec) in enumerate(records.items()):
                    # One entry of json.dumps(whole, indent=2): drop the wrapping "{\n" and "\n}".
                    if i:
                        f.write(",\n")
                    f.write(json.dumps({run_id: rec}, indent=2)[2:-2])
                    if progress is not None and (i + 1) % step == 0:
                        progress(i + 1, total)
                f.write("\n}")
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if progress is not None:
        progress(total, total)
    return total


def import_history(
    registry: QueueRunRegistry,
    path: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
) -> int:
    """Store the runs of a ``RunRegistry`` JSON history file in a :class:`QueueRunRegistry`.

    :returns: how many runs were imported.
    :raises InvalidArgumentError: when the file is not a history file.
    :raises OSError: when it cannot be read.
    """
    return registry.import_records(read_history(path), progress)


def export_history(
    registry: QueueRunRegistry,
    path: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
) -> int:
    """Write every run of a :class:`QueueRunRegistry` to a JSON file ``RunRegistry`` reads.

    :returns: how many runs were exported.
    :raises OSError: when the file cannot be written.
    """
    return write_history(registry.records(), path, progress)
