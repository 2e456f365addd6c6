"""Operating the queue: metrics, maintenance, the doctor, bulk purge and requeue, backup and restore.

The methods here are part of :class:`~prismq_queue.Queue` (and, as coroutines, of
:class:`~prismq_queue.AsyncQueue`); :func:`restore` works on a closed database. Durations are
seconds (floats), times timezone-aware UTC datetimes.

Example::

    from prismq_queue import Queue, restore

    with Queue("/data/queue.db") as q:
        m = q.metrics()                     # cheap: call it every second
        print(m.by_status, m.throughput.per_second, m.latency_all.wait.p95)
        body = q.metrics_text()             # Prometheus text for a /metrics endpoint
        q.maintain(retention_days=14)       # retention, vacuum, optimize, checkpoint
        for f in q.doctor().findings:
            print(f.severity, f.message, f.advice)
        q.backup("/backups/queue-2024-06-01.db", progress=print)
    restore("/backups/queue-2024-06-01.db", "/data/queue.db")   # every queue on it closed
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from . import _lib
from ._errors import InvalidArgumentError, QueueError
from .models import (
    _INT32_MAX,
    SchedulingStrategy,
    TaskStatus,
    _check_int,
    _check_seconds,
    _check_str,
    _dt_to_ms,
    _dumps,
    _ms_to_dt,
    _opt_dt,
    _seconds_to_ms,
    strategy_or_name,
)

_T = TypeVar("_T")

__all__ = [
    "AsyncQueueOps",
    "BackupProgress",
    "BackupResult",
    "BulkResult",
    "CheckpointResult",
    "DepthRow",
    "DoctorReport",
    "EventCounts",
    "Finding",
    "IntegrityResult",
    "LatencyStats",
    "MaintenanceReport",
    "Metrics",
    "OldestEligible",
    "Percentiles",
    "QueueOps",
    "RecentFailure",
    "RetentionResult",
    "Throughput",
    "VacuumResult",
    "WorkerHealth",
    "restore",
]

_DAY = 86400.0
_CHECKPOINT_MODES = ("none", "passive", "full", "restart", "truncate")
_INTEGRITY_MODES = ("none", "quick", "full")


def _secs(ms: float | int | None) -> float:
    return 0.0 if ms is None else float(ms) / 1000.0


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.strip().lower()


# ---- metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    """Nearest-rank percentiles of a set of durations, in seconds; all 0 when ``count`` is 0."""

    count: int
    sum: float
    p50: float
    p95: float
    p99: float

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Percentiles:
        """Build from a ``pq_metrics`` percentiles object."""
        return cls(d["count"], _secs(d["sum_ms"]), _secs(d["p50_ms"]), _secs(d["p95_ms"]), _secs(d["p99_ms"]))


@dataclass(frozen=True)
class LatencyStats:
    """Wait (enqueue to first claim) and run (last claim to finish) times of finished tasks."""

    wait: Percentiles
    run: Percentiles

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LatencyStats:
        """Build from a ``pq_metrics`` latency object."""
        return cls(Percentiles.from_json(d["wait"]), Percentiles.from_json(d["run"]))


@dataclass(frozen=True)
class EventCounts:
    """Tasks that completed, failed or were cancelled; ``retried`` counts failures with attempts left
    and expired leases requeued with backoff (in totals only: 0 in window counts)."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EventCounts:
        """Build from a ``pq_metrics`` count object."""
        return cls(d.get("completed", 0), d.get("failed", 0), d.get("cancelled", 0), d.get("retried", 0))


@dataclass(frozen=True)
class Throughput:
    """Tasks finished in the window. ``span_seconds`` is the time the counts cover: the window, or
    less when more than ``sample_limit`` tasks finished in it (then the newest are counted)."""

    window_seconds: float
    span_seconds: float
    completed: int
    failed: int
    cancelled: int
    per_second: float
    failure_rate: float | None
    by_type: dict[str, EventCounts]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Throughput:
        """Build from the ``throughput`` object of ``pq_metrics``."""
        return cls(
            window_seconds=_secs(d["window_ms"]),
            span_seconds=_secs(d["span_ms"]),
            completed=d["completed"],
            failed=d["failed"],
            cancelled=d["cancelled"],
            per_second=float(d["per_second"]),
            failure_rate=None if d.get("failure_rate") is None else float(d["failure_rate"]),
            by_type={k: EventCounts.from_json(v) for k, v in (d.get("by_type") or {}).items()},
        )


@dataclass(frozen=True)
class DepthRow:
    """The number of tasks with one status, type and priority."""

    status: TaskStatus
    type: str
    priority: int
    count: int


@dataclass(frozen=True)
class OldestEligible:
    """The queued, due task that has waited longest."""

    task_id: int
    created_at: datetime
    eligible_at: datetime
    age_seconds: float
    waiting_seconds: float


@dataclass(frozen=True)
class WorkerHealth:
    """A registered worker with its heartbeat age and state (``active``, ``stale`` or ``gone``)."""

    worker_id: str
    host: str
    pid: int
    strategy: SchedulingStrategy | str
    capabilities: dict[str, Any]
    types: list[str]
    lease_seconds: float
    started_at: datetime | None
    heartbeat_at: datetime | None
    stopped_at: datetime | None
    heartbeat_age_seconds: float
    state: str
    running: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WorkerHealth:
        """Build from one element of ``pq_metrics``' ``workers`` array."""
        return cls(
            worker_id=d["worker_id"],
            host=d.get("host") or "",
            pid=d.get("pid") or 0,
            strategy=strategy_or_name(d.get("strategy")),
            capabilities=dict(d.get("capabilities") or {}),
            types=list(d.get("types") or []),
            lease_seconds=_secs(d.get("lease_ms")),
            started_at=_opt_dt(d.get("started_at_ms")),
            heartbeat_at=_opt_dt(d.get("heartbeat_at_ms")),
            stopped_at=_opt_dt(d.get("stopped_at_ms")),
            heartbeat_age_seconds=_secs(d.get("heartbeat_age_ms")),
            state=d.get("state") or "",
            running=d.get("running") or 0,
        )


@dataclass(frozen=True)
class RecentFailure:
    """A recently failed (dead-letter) task."""

    task_id: int
    type: str
    attempts: int
    error: str
    finished_at: datetime | None


@dataclass(frozen=True)
class Metrics:
    """A snapshot of the queue's health, as returned by :meth:`Queue.metrics`."""

    at: datetime
    total: int
    by_status: dict[str, int]
    by_type: dict[str, dict[str, int]]
    by_priority: dict[int, dict[str, int]]
    depth: list[DepthRow]
    oldest_eligible: OldestEligible | None
    throughput: Throughput
    totals: EventCounts
    totals_by_type: dict[str, EventCounts]
    latency: dict[str, LatencyStats]
    latency_all: LatencyStats
    sampled: bool
    workers: list[WorkerHealth]
    workers_by_state: dict[str, int]
    expired_leases: int
    dead_letters: int
    recent_failures: list[RecentFailure]
    busy_retries: int
    duration_seconds: float

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Metrics:
        """Build from ``pq_metrics`` output."""
        oe = d.get("oldest_eligible")
        return cls(
            at=_ms_to_dt(d["at_ms"]),
            total=d["total"],
            by_status=dict(d.get("by_status") or {}),
            by_type={k: dict(v) for k, v in (d.get("by_type") or {}).items()},
            by_priority={int(k): dict(v) for k, v in (d.get("by_priority") or {}).items()},
            depth=[
                DepthRow(TaskStatus.coerce(r["status"]), r["type"], r["priority"], r["count"])
                for r in d.get("depth") or []
            ],
            oldest_eligible=None
            if oe is None
            else OldestEligible(
                oe["task_id"],
                _ms_to_dt(oe["created_at_ms"]),
                _ms_to_dt(oe["eligible_at_ms"]),
                _secs(oe["age_ms"]),
                _secs(oe["waiting_ms"]),
            ),
            throughput=Throughput.from_json(d["throughput"]),
            totals=EventCounts.from_json(d["totals"]),
            totals_by_type={k: EventCounts.from_json(v) for k, v in (d.get("totals_by_type") or {}).items()},
            latency={k: LatencyStats.from_json(v) for k, v in (d.get("latency") or {}).items()},
            latency_all=LatencyStats.from_json(d["latency_all"]),
            sampled=bool(d.get("sampled")),
            workers=[WorkerHealth.from_json(w) for w in d.get("workers") or []],
            workers_by_state=dict(d.get("workers_by_state") or {}),
            expired_leases=d.get("expired_leases", 0),
            dead_letters=d.get("dead_letters", 0),
            recent_failures=[
                RecentFailure(
                    f["task_id"], f["type"], f["attempts"], f["error"], _opt_dt(f.get("finished_at_ms"))
                )
                for f in d.get("recent_failures") or []
            ],
            busy_retries=d.get("busy_retries", 0),
            duration_seconds=_secs(d.get("duration_ms")),
        )


# ---- maintenance ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionResult:
    """What retention deleted: tasks in ``statuses`` that finished before ``cutoff``."""

    cutoff: datetime
    statuses: list[str]
    tasks_deleted: int
    logs_deleted: int


@dataclass(frozen=True)
class VacuumResult:
    """What a vacuum step freed; ``auto_vacuum`` is the file's mode afterwards."""

    full: bool
    free_pages_before: int
    pages_freed: int
    auto_vacuum: str


@dataclass(frozen=True)
class CheckpointResult:
    """Outcome of a WAL checkpoint; ``busy`` means it could not finish."""

    mode: str
    busy: bool
    wal_frames: int
    checkpointed: int


@dataclass(frozen=True)
class IntegrityResult:
    """Outcome of an integrity check; ``messages`` is ``["ok"]`` when ``ok``."""

    mode: str
    ok: bool
    messages: list[str]


@dataclass(frozen=True)
class MaintenanceReport:
    """What :meth:`Queue.maintain` did; steps that did not run are None. Sizes are bytes."""

    started_at: datetime
    duration_seconds: float
    retention: RetentionResult | None
    workers_pruned: int
    vacuum: VacuumResult | None
    optimized: bool
    recounted: int | None
    checkpoint: CheckpointResult | None
    integrity: IntegrityResult | None
    db_bytes_before: int
    wal_bytes_before: int
    db_bytes_after: int
    wal_bytes_after: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MaintenanceReport:
        """Build from ``pq_maintain`` output."""
        r, v, c, i = d.get("retention"), d.get("vacuum"), d.get("checkpoint"), d.get("integrity")
        return cls(
            started_at=_ms_to_dt(d["started_at_ms"]),
            duration_seconds=_secs(d.get("duration_ms")),
            retention=None
            if r is None
            else RetentionResult(
                _ms_to_dt(r["cutoff_ms"]), list(r["statuses"]), r["tasks_deleted"], r["logs_deleted"]
            ),
            workers_pruned=d.get("workers_pruned", 0),
            vacuum=None
            if v is None
            else VacuumResult(v["full"], v["free_pages_before"], v["pages_freed"], v["auto_vacuum"]),
            optimized=bool(d.get("optimized")),
            recounted=d.get("recounted"),
            checkpoint=None
            if c is None
            else CheckpointResult(c["mode"], c["busy"], c["wal_frames"], c["checkpointed"]),
            integrity=None if i is None else IntegrityResult(i["mode"], i["ok"], list(i["messages"])),
            db_bytes_before=d["before"]["db_bytes"],
            wal_bytes_before=d["before"]["wal_bytes"],
            db_bytes_after=d["after"]["db_bytes"],
            wal_bytes_after=d["after"]["wal_bytes"],
        )


# ---- doctor, bulk operations, backup ---------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One doctor check: ``severity`` is ``ok``, ``info``, ``warning`` or ``error``."""

    check: str
    severity: str
    message: str
    advice: str


@dataclass(frozen=True)
class DoctorReport:
    """Outcome of :meth:`Queue.doctor`; ``ok`` is False when a finding is a warning or an error."""

    path: str
    schema_version: int
    ok: bool
    findings: list[Finding]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DoctorReport:
        """Build from ``pq_doctor`` output."""
        return cls(
            d["path"],
            d["schema_version"],
            bool(d["ok"]),
            [Finding(f["check"], f["severity"], f["message"], f.get("advice") or "") for f in d["findings"]],
        )

    def finding(self, check: str) -> Finding | None:
        """Return the finding of one check, or None."""
        for f in self.findings:
            if f.check == check:
                return f
        return None


@dataclass(frozen=True)
class BulkResult:
    """Outcome of :meth:`Queue.purge` or :meth:`Queue.requeue`."""

    dry_run: bool
    matched: int
    affected: int
    sample_ids: list[int]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BulkResult:
        """Build from the JSON of ``pq_purge`` or ``pq_requeue``."""
        ids = [int(i) for i in d["sample_ids"]]
        return cls(bool(d["dry_run"]), int(d["matched"]), int(d["affected"]), ids)


@dataclass(frozen=True)
class BackupProgress:
    """Progress of a backup or restore: ``phase`` is check, copy, verify or done."""

    phase: str
    pages_done: int
    pages_total: int

    @property
    def fraction(self) -> float:
        """Share of pages copied, 0..1."""
        return self.pages_done / self.pages_total if self.pages_total else 0.0


@dataclass(frozen=True)
class BackupResult:
    """A finished backup or restore: the file written and what it holds."""

    path: str
    bytes: int
    pages: int
    schema_version: int
    tasks: int
    integrity: list[str]
    duration_seconds: float
    stale_files_removed: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BackupResult:
        """Build from the ``result`` of ``pq_op_wait``."""
        return cls(
            d["path"],
            d["bytes"],
            d["pages"],
            d["schema_version"],
            d["tasks"],
            list(d.get("integrity") or []),
            _secs(d.get("duration_ms")),
            list(d.get("stale_files_removed") or []),
        )


ProgressCallback = Callable[[BackupProgress], None]


def _run_operation(op: int, progress: ProgressCallback | None, poll_seconds: float = 0.1) -> BackupResult:
    """Poll a native operation to its end, reporting progress; Ctrl-C cancels it.

    :raises QueueError: the operation's error.
    """
    f = _lib.FUNCTIONS
    wait_ms = max(1, round(poll_seconds * 1000))
    last: tuple[str, int, int] | None = None
    try:
        while True:
            try:
                out = _lib.call_json(f["pq_op_wait"], op, wait_ms)
            except KeyboardInterrupt:
                _lib.call(f["pq_op_cancel"], op)
                raise
            state = (out.get("phase") or "", out.get("pages_done", 0), out.get("pages_total", 0))
            if progress is not None and state != last and state[0]:
                progress(BackupProgress(*state))
                last = state
            if out.get("done"):
                return BackupResult.from_json(out["result"])
    finally:
        try:
            _lib.call(f["pq_op_close"], op)
        except QueueError:
            pass


def _path_arg(name: str, value: object) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidArgumentError(f"{name} must be a str or os.PathLike, got {type(value).__name__}")
    p = os.fsdecode(os.fspath(value))
    if not p:
        raise InvalidArgumentError(f"{name} must not be empty")
    return p


def _default_target() -> str:
    """The database path :class:`Queue` uses when given none (read here: see Queue.__init__)."""
    _lib.load()
    return os.environ.get("PRISMQ_QUEUE_DB_PATH") or _lib.default_path()


def restore(
    backup: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    progress: ProgressCallback | None = None,
    allow_network_path: bool = False,
    step_pages: int | None = None,
) -> BackupResult:
    """Replace the queue database at ``path`` with a backup file.

    The backup is checked first (a queue database, integrity, schema not newer than this
    library). Every :class:`Queue` and worker on ``path`` must be closed: a database in use in
    any process is refused. No ``-wal`` or ``-shm`` file is left beside the restored database.

    :param backup: a file written by :meth:`Queue.backup`.
    :param path: the database to replace (created when missing); default as for :class:`Queue`.
    :param progress: called with :class:`BackupProgress` as the copy advances.
    :param allow_network_path: permit a target on a network share.
    :param step_pages: pages copied per progress step (default 1024).
    :raises QueueBusyError: the target is open in some process.
    :raises SchemaError: the backup is not a queue database, is damaged or is newer.
    :raises QueueIOError: a file cannot be read or written.
    :raises InvalidArgumentError: bad arguments.

    Example::

        restore("/backups/queue.db", "/data/queue.db", progress=lambda p: print(f"{p.fraction:.0%}"))
    """
    opts: dict[str, Any] = {
        "backup": _path_arg("backup", backup),
        "path": _default_target() if path is None else _path_arg("path", path),
    }
    if not isinstance(allow_network_path, bool):
        raise InvalidArgumentError("allow_network_path must be a bool")
    if allow_network_path:
        opts["allow_network_path"] = True
    if step_pages is not None:
        opts["step_pages"] = _check_int("step_pages", step_pages, minimum=1, maximum=_INT32_MAX)
    _lib.load()
    op = _lib.call_handle(_lib.FUNCTIONS["pq_restore"], _dumps(opts, "restore options"))
    return _run_operation(op, progress)


def _days_ms(name: str, days: object) -> int:
    if days is None:
        return 0
    if isinstance(days, timedelta):
        return _seconds_to_ms(_check_seconds(name, days))
    if isinstance(days, bool) or not isinstance(days, (int, float)):
        raise InvalidArgumentError(f"{name} must be a number of days, a timedelta or None")
    return _seconds_to_ms(_check_seconds(name, float(days) * _DAY))


def _maintenance_options(
    retention_days: float | timedelta | None,
    purge_failed: bool,
    prune_workers_days: float | timedelta | None,
    incremental_vacuum: bool,
    vacuum_full: bool,
    optimize: bool,
    recount: bool,
    checkpoint: str,
    integrity: str,
) -> dict[str, Any]:
    for name, flag in (
        ("purge_failed", purge_failed),
        ("incremental_vacuum", incremental_vacuum),
        ("vacuum_full", vacuum_full),
        ("optimize", optimize),
        ("recount", recount),
    ):
        if not isinstance(flag, bool):
            raise InvalidArgumentError(f"{name} must be a bool")
    return {
        "retention_ms": _days_ms("retention_days", retention_days),
        "purge_failed": purge_failed,
        "prune_workers_ms": _days_ms("prune_workers_days", prune_workers_days),
        "incremental_vacuum": incremental_vacuum,
        "vacuum_full": vacuum_full,
        "optimize": optimize,
        "recount": recount,
        "checkpoint": _choice("checkpoint", checkpoint, _CHECKPOINT_MODES),
        "integrity": _choice("integrity", integrity, _INTEGRITY_MODES),
    }


def _filter_object(
    status: object,
    task_type: object,
    created_before: object,
    finished_before: object,
    older_than: object,
    error_contains: object,
    limit: object,
    dry_run: object,
) -> dict[str, Any]:
    flt: dict[str, Any] = {}
    if status is not None:
        items = [status] if isinstance(status, str) else status
        if not isinstance(items, Iterable):
            raise InvalidArgumentError("status must be a str or an iterable of str")
        flt["statuses"] = [TaskStatus.coerce(_check_str("status", s)).value for s in items]
    if task_type is not None:
        items = [task_type] if isinstance(task_type, str) else task_type
        if not isinstance(items, Iterable):
            raise InvalidArgumentError("task_type must be a str or an iterable of str")
        flt["types"] = [_check_str("task_type", t) for t in items]
    if created_before is not None:
        flt["created_before_ms"] = _dt_to_ms("created_before", created_before)
    if older_than is not None:
        if finished_before is not None:
            raise InvalidArgumentError("pass either finished_before or older_than, not both")
        secs = _check_seconds("older_than", older_than)
        finished_before = datetime.now(timezone.utc) - timedelta(seconds=secs)
    if finished_before is not None:
        flt["finished_before_ms"] = _dt_to_ms("finished_before", finished_before)
    if error_contains is not None:
        flt["error_contains"] = _check_str("error_contains", error_contains)
    if limit is not None:
        flt["limit"] = _check_int("limit", limit, minimum=1)
    if not isinstance(dry_run, bool):
        raise InvalidArgumentError("dry_run must be a bool")
    flt["dry_run"] = dry_run
    return flt


class QueueOps:
    """The operations methods of :class:`~prismq_queue.Queue` (a mixin; see the module docs)."""

    if TYPE_CHECKING:

        def _h(self) -> int: ...

    def metrics(
        self,
        window: float | timedelta = 60.0,
        *,
        sample_limit: int | None = None,
        recent_failures: int | None = None,
    ) -> Metrics:
        """Return the queue's health: depth by status, type and priority; the oldest eligible task;
        throughput, failures and retries over ``window``; wait and run time percentiles by type;
        workers with heartbeat age and state; expired leases; dead letters; busy retries.

        Cheap enough to call every second on a million tasks (about 2 ms; see BENCHMARKS.md).

        :param window: seconds (or timedelta) for throughput and latency, 1 s .. 24 h; default 60.
        :param sample_limit: newest finished tasks read for the percentiles (default 10,000).
        :param recent_failures: how many recent dead letters to list (default 5; 0 = none).
        :raises InvalidArgumentError: for a bad option.
        :raises QueueClosedError: after :meth:`close`.
        """
        out = _lib.call_json(
            _lib.FUNCTIONS["pq_metrics"],
            self._h(),
            self._metrics_options(window, sample_limit, recent_failures),
        )
        return Metrics.from_json(out)

    def metrics_text(
        self,
        window: float | timedelta = 60.0,
        *,
        sample_limit: int | None = None,
    ) -> str:
        """Return the metrics in the Prometheus text exposition format (for a ``/metrics`` endpoint).

        Example (FastAPI)::

            @app.get("/metrics", response_class=PlainTextResponse)
            async def metrics() -> str:
                return await aqueue.metrics_text()

        :raises InvalidArgumentError: for a bad option.
        :raises QueueClosedError: after :meth:`close`.
        """
        return _lib.call_string(
            _lib.FUNCTIONS["pq_metrics_text"], self._h(), self._metrics_options(window, sample_limit, 0)
        )

    @staticmethod
    def _metrics_options(window: object, sample_limit: object, recent_failures: object) -> bytes:
        opts: dict[str, Any] = {
            "window_ms": _seconds_to_ms(_check_seconds("window", window, allow_zero=False))
        }
        if sample_limit is not None:
            opts["sample_limit"] = _check_int("sample_limit", sample_limit, minimum=1, maximum=1_000_000)
        if recent_failures is not None:
            opts["recent_failures"] = _check_int("recent_failures", recent_failures, minimum=0, maximum=1000)
        return _dumps(opts, "metrics options")

    def maintain(
        self,
        *,
        retention_days: float | timedelta | None = 30,
        purge_failed: bool = False,
        prune_workers_days: float | timedelta | None = 7,
        incremental_vacuum: bool = True,
        vacuum_full: bool = False,
        optimize: bool = True,
        recount: bool = False,
        checkpoint: str = "passive",
        integrity: str = "none",
    ) -> MaintenanceReport:
        """Run maintenance now; the defaults are those of the scheduled mode.

        Deletions and the incremental vacuum run in short transactions: workers go on meanwhile.

        :param retention_days: delete completed and cancelled tasks (and their logs) finished longer
            ago than this; None or 0 keeps everything.
        :param purge_failed: with retention, delete failed tasks too (kept by default).
        :param prune_workers_days: forget workers stopped or silent this long; None or 0 keeps them.
        :param incremental_vacuum: return free pages to the disk.
        :param vacuum_full: rewrite the whole file (blocks writers; needs free disk the size of the
            database); switches a database made by an older version to incremental vacuum.
        :param optimize: refresh the query planner's statistics.
        :param recount: rebuild the depth counters behind :meth:`stats` and :meth:`metrics` from the
            tasks table; needed only after other programs (a SQLite shell, a script) wrote to it.
            One write transaction that reads every task: run it while the queue is quiet.
        :param checkpoint: WAL checkpoint: none, passive (never waits), full, restart or truncate.
        :param integrity: none, quick or full integrity check at the end.
        :raises InvalidArgumentError: for a bad option.
        :raises QueueBusyError: when the database stays locked.
        :raises QueueClosedError: after :meth:`close`.
        """
        opts = _maintenance_options(
            retention_days,
            purge_failed,
            prune_workers_days,
            incremental_vacuum,
            vacuum_full,
            optimize,
            recount,
            checkpoint,
            integrity,
        )
        out = _lib.call_json(_lib.FUNCTIONS["pq_maintain"], self._h(), _dumps(opts, "maintenance options"))
        return MaintenanceReport.from_json(out)

    def schedule_maintenance(
        self,
        interval: float | timedelta | None,
        *,
        retention_days: float | timedelta | None = 30,
        purge_failed: bool = False,
        prune_workers_days: float | timedelta | None = 7,
        incremental_vacuum: bool = True,
        optimize: bool = True,
        checkpoint: str = "passive",
    ) -> None:
        """Run :meth:`maintain` in the background about every ``interval`` while the queue is open.

        Several processes may schedule it on one database: a pass runs only when no process
        started one within the interval. ``None`` or 0 stops the schedule.

        :param interval: seconds or timedelta, at least 60.
        :raises InvalidArgumentError: for a bad option.
        :raises QueueClosedError: after :meth:`close`.
        """
        opts = _maintenance_options(
            retention_days,
            purge_failed,
            prune_workers_days,
            incremental_vacuum,
            False,
            optimize,
            False,
            checkpoint,
            "none",
        )
        opts["interval_ms"] = 0 if interval is None else _seconds_to_ms(_check_seconds("interval", interval))
        _lib.call(_lib.FUNCTIONS["pq_maintenance_schedule"], self._h(), _dumps(opts, "maintenance schedule"))

    def doctor(
        self,
        *,
        integrity: str = "none",
        wal_warn_bytes: int | None = None,
        min_free_bytes: int | None = None,
        lease_grace_seconds: float | None = None,
    ) -> DoctorReport:
        """Check the database and its surroundings; each finding says what to do.

        Checks: local path, WAL, PRAGMAs as configured (and safe), schema version, incremental
        auto-vacuum, WAL size, disk space, free pages, stale workers, stuck leases, dead letters,
        when maintenance last ran, and (``integrity="quick"`` or ``"full"``) file integrity.

        :raises InvalidArgumentError: for a bad option.
        :raises QueueClosedError: after :meth:`close`.
        """
        opts: dict[str, Any] = {"integrity": _choice("integrity", integrity, _INTEGRITY_MODES)}
        if wal_warn_bytes is not None:
            opts["wal_warn_bytes"] = _check_int("wal_warn_bytes", wal_warn_bytes, minimum=1)
        if min_free_bytes is not None:
            opts["min_free_bytes"] = _check_int("min_free_bytes", min_free_bytes, minimum=1)
        if lease_grace_seconds is not None:
            secs = _check_seconds("lease_grace_seconds", lease_grace_seconds, allow_zero=False)
            opts["lease_grace_ms"] = _seconds_to_ms(secs)
        out = _lib.call_json(_lib.FUNCTIONS["pq_doctor"], self._h(), _dumps(opts, "doctor options"))
        return DoctorReport.from_json(out)

    def purge(
        self,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        task_type: str | Iterable[str] | None = None,
        *,
        created_before: datetime | None = None,
        finished_before: datetime | None = None,
        older_than: float | timedelta | None = None,
        error_contains: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Delete the tasks matching a filter, with their logs (``dry_run``: only count them).

        :param status: default completed, failed and cancelled; queued allowed; leased refused.
        :param task_type: one type or several.
        :param created_before: enqueued before this aware datetime.
        :param finished_before: finished before this aware datetime.
        :param older_than: finished more than this many seconds (or timedelta) ago.
        :param error_contains: last error contains this text.
        :param limit: at most this many tasks (lowest ids first).
        :raises InvalidArgumentError: for a bad filter (e.g. status leased).
        :raises QueueClosedError: after :meth:`close`.

        Example::

            q.purge(status="completed", older_than=timedelta(days=7), dry_run=True).matched
        """
        flt = _filter_object(
            status, task_type, created_before, finished_before, older_than, error_contains, limit, dry_run
        )
        out = _lib.call_json(_lib.FUNCTIONS["pq_purge"], self._h(), _dumps(flt, "filter"))
        return BulkResult.from_json(out)

    def requeue(
        self,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        task_type: str | Iterable[str] | None = None,
        *,
        created_before: datetime | None = None,
        finished_before: datetime | None = None,
        older_than: float | timedelta | None = None,
        error_contains: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Put failed (default) or cancelled tasks matching a filter back to queued, attempts reset.

        Filters as :meth:`purge`. ``dry_run`` only counts.

        :raises InvalidArgumentError: for a bad filter (a status other than failed or cancelled).
        :raises QueueClosedError: after :meth:`close`.
        """
        flt = _filter_object(
            status, task_type, created_before, finished_before, older_than, error_contains, limit, dry_run
        )
        out = _lib.call_json(_lib.FUNCTIONS["pq_requeue"], self._h(), _dumps(flt, "filter"))
        return BulkResult.from_json(out)

    def backup(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        quick_check: bool = False,
        step_pages: int | None = None,
    ) -> BackupResult:
        """Write a consistent snapshot of the queue to ``path`` while workers keep running.

        The copy is verified with an integrity check before it is renamed into place; an
        interrupted backup (Ctrl-C) leaves nothing at ``path``.

        :param overwrite: replace an existing file.
        :param progress: called with :class:`BackupProgress` as the copy advances.
        :param quick_check: verify with ``quick_check`` instead of the full ``integrity_check``.
        :param step_pages: pages copied per progress step (default 1024).
        :raises InvalidArgumentError: ``path`` exists (without ``overwrite``) or is the queue itself.
        :raises QueueIOError: the file cannot be written or failed its check.
        :raises QueueClosedError: after :meth:`close`.
        """
        opts: dict[str, Any] = {"path": _path_arg("path", path)}
        for name, flag in (("overwrite", overwrite), ("quick_check", quick_check)):
            if not isinstance(flag, bool):
                raise InvalidArgumentError(f"{name} must be a bool")
            opts[name] = flag
        if step_pages is not None:
            opts["step_pages"] = _check_int("step_pages", step_pages, minimum=1, maximum=_INT32_MAX)
        op = _lib.call_handle(_lib.FUNCTIONS["pq_backup"], self._h(), _dumps(opts, "backup options"))
        return _run_operation(op, progress)


class AsyncQueueOps:
    """The operations methods of :class:`~prismq_queue.AsyncQueue`, as coroutines run on its pool.

    They take the arguments of the :class:`QueueOps` methods of the same name. A ``progress``
    callback of :meth:`backup` is called on a pool thread, not on the event loop.
    """

    if TYPE_CHECKING:

        async def _q(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T: ...

    async def metrics(
        self,
        window: float | timedelta = 60.0,
        *,
        sample_limit: int | None = None,
        recent_failures: int | None = None,
    ) -> Metrics:
        """See :meth:`QueueOps.metrics`."""
        return await self._q(
            QueueOps.metrics, window, sample_limit=sample_limit, recent_failures=recent_failures
        )

    async def metrics_text(self, window: float | timedelta = 60.0, *, sample_limit: int | None = None) -> str:
        """See :meth:`QueueOps.metrics_text`."""
        return await self._q(QueueOps.metrics_text, window, sample_limit=sample_limit)

    async def maintain(self, **options: Any) -> MaintenanceReport:
        """See :meth:`QueueOps.maintain`."""
        return await self._q(QueueOps.maintain, **options)

    async def schedule_maintenance(self, interval: float | timedelta | None, **options: Any) -> None:
        """See :meth:`QueueOps.schedule_maintenance`."""
        await self._q(QueueOps.schedule_maintenance, interval, **options)

    async def doctor(self, **options: Any) -> DoctorReport:
        """See :meth:`QueueOps.doctor`."""
        return await self._q(QueueOps.doctor, **options)

    async def purge(self, *args: Any, **kwargs: Any) -> BulkResult:
        """See :meth:`QueueOps.purge`."""
        return await self._q(QueueOps.purge, *args, **kwargs)

    async def requeue(self, *args: Any, **kwargs: Any) -> BulkResult:
        """See :meth:`QueueOps.requeue`."""
        return await self._q(QueueOps.requeue, *args, **kwargs)

    async def backup(self, path: str | os.PathLike[str], **options: Any) -> BackupResult:
        """See :meth:`QueueOps.backup`."""
        return await self._q(QueueOps.backup, path, **options)
