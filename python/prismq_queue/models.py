"""Value types returned by the queue: tasks, stats, workers, logs, and the enums they use.

All datetimes are timezone-aware UTC; the native layer speaks integer milliseconds.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, TypeVar

from ._errors import InvalidArgumentError, QueueError

__all__ = [
    "AckAndClaimResult",
    "AckResult",
    "LeaseInfo",
    "LogEntry",
    "RetryConfig",
    "SchedulingStrategy",
    "Stats",
    "SweepResult",
    "Task",
    "TaskStatus",
    "WorkerInfo",
]

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_INT64_MAX = (1 << 63) - 1
_INT32_MAX = (1 << 31) - 1


_E = TypeVar("_E", bound=Enum)


def _coerce_enum(cls: type[_E], value: object, what: str) -> _E:
    """Return the member of ``cls`` for a member or its (case-insensitive) string value."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(str(m.value) for m in cls)
    raise InvalidArgumentError(f"{what} must be one of {choices}, got {value!r}")


class SchedulingStrategy(str, Enum):
    """Order in which a worker claims eligible tasks."""

    FIFO = "fifo"
    LIFO = "lifo"
    PRIORITY = "priority"
    WEIGHTED_RANDOM = "weighted_random"

    @classmethod
    def coerce(cls, value: SchedulingStrategy | str) -> SchedulingStrategy:
        """Return the strategy for an enum member or its (case-insensitive) value.

        :raises InvalidArgumentError: for anything else.
        """
        return _coerce_enum(cls, value, "scheduling strategy")

    def __str__(self) -> str:
        return self.value


def strategy_or_name(raw: object) -> SchedulingStrategy | str:
    """The strategy for a name the engine reported; an unknown name stays a plain string."""
    name = raw if isinstance(raw, str) else ""
    try:
        return SchedulingStrategy(name)
    except ValueError:
        return name


class TaskStatus(str, Enum):
    """Lifecycle state of a task."""

    QUEUED = "queued"
    LEASED = "leased"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def coerce(cls, value: TaskStatus | str) -> TaskStatus:
        """Return the status for an enum member or its (case-insensitive) value.

        :raises InvalidArgumentError: for anything else.
        """
        return _coerce_enum(cls, value, "task status")

    @property
    def terminal(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)

    def __str__(self) -> str:
        return self.value


_STATUS: dict[str, TaskStatus] = {s.value: s for s in TaskStatus}


# ---- conversions and argument checks shared by the package -------------------------------


def _ms_to_dt(ms: int) -> datetime:
    # fromtimestamp is exact to the millisecond here (checked against timedelta arithmetic) and
    # several times faster; negative stamps take the portable path (Windows rejects them).
    if ms >= 0:
        return datetime.fromtimestamp(ms / 1000, _UTC)
    return _EPOCH + timedelta(milliseconds=ms)


def _opt_dt(ms: int | None) -> datetime | None:
    return None if ms is None else _ms_to_dt(ms)


def _dt_to_ms(name: str, value: object) -> int:
    if not isinstance(value, datetime):
        raise InvalidArgumentError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(f"{name} must be timezone-aware (e.g. tzinfo=timezone.utc)")
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _check_int(name: str, value: object, *, minimum: int | None = None, maximum: int = _INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum or value < -maximum - 1:
        raise InvalidArgumentError(f"{name} is out of range: {value}")
    return value


def _check_seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    """Return a non-negative duration in seconds from a number or timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        kind = type(value).__name__
        raise InvalidArgumentError(f"{name} must be seconds (int/float) or a timedelta, got {kind}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgumentError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return seconds


def _seconds_to_ms(seconds: float) -> int:
    """Round a duration to milliseconds; a positive duration is at least 1 ms."""
    ms = round(seconds * 1000)
    if ms == 0 and seconds > 0:
        ms = 1
    if ms > _INT64_MAX:
        raise InvalidArgumentError(f"duration is too large: {seconds} s")
    return ms


def _check_str(name: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value:
        raise InvalidArgumentError(f"{name} must not be empty")
    return value


def _check_object(name: str, value: object) -> dict[str, Any]:
    """Return a JSON object (a dict with str keys) from a mapping."""
    if type(value) is dict:  # the usual case, without the Mapping ABC check
        for key in value:
            if type(key) is not str:
                break
        else:
            return value
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{name} must be a dict (JSON object), got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"{name} keys must be str, got {type(key).__name__} key {key!r}")
    return value if isinstance(value, dict) else dict(value)


# What json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")) uses, made
# once: json.dumps builds a new encoder on every call that passes options. An encoder keeps no
# state between calls (encode makes its own circular-reference markers), so threads share it.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_c_make_encoder: Any = vars(json.encoder).get("c_make_encoder")
_encode_str = json.encoder.encode_basestring


def _encode_c(value: object) -> str:
    """``_ENCODER.encode(value)`` minus its Python layers: the C encoder it would build, built here.

    The arguments are those JSONEncoder.iterencode passes (fresh markers: circular references
    are still detected); errors are the same ones.
    """
    if isinstance(value, str):
        return _encode_str(value)
    enc = _c_make_encoder({}, _ENCODER.default, _encode_str, None, ":", ",", False, False, False)
    return "".join(enc(value, 0))


def _pick_encoder() -> Callable[[object], str]:
    """_encode_c when this Python's C encoder takes those arguments and agrees, else _ENCODER.encode."""
    sample = {"s": "ü\u2028\"", "n": [1, -2.5, 10**30, None, True], "d": {"e": {}}}
    try:
        if _c_make_encoder is not None and _encode_c(sample) == _ENCODER.encode(sample):
            return _encode_c
    except Exception:  # noqa: BLE001 - an interpreter whose _json differs: use the public path
        pass
    return _ENCODER.encode


#: JSON text of a value, as json.dumps with _ENCODER's options gives it.
_encode = _pick_encoder()


def _dumps(value: object, what: str) -> bytes:
    """Encode a value as compact UTF-8 JSON.

    :raises InvalidArgumentError: when the value is not JSON-serialisable (NaN included).
    """
    try:
        return _encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        # UnicodeEncodeError (lone surrogates) is a ValueError too.
        raise InvalidArgumentError(f"{what} is not JSON-serialisable: {exc}") from None


# ---- value types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryConfig:
    """Exponential backoff: ``delay = min(base * 2**(attempt-1), cap)`` with +/- ``jitter`` (fraction).

    :param base_seconds: first retry delay, default 1 s.
    :param cap_seconds: largest delay, default 300 s.
    :param jitter: random spread as a fraction of the delay, 0..1, default 0.2.
    :raises InvalidArgumentError: for negative, non-finite or inconsistent values.
    """

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        base = _check_seconds("RetryConfig.base_seconds", self.base_seconds, allow_zero=False)
        cap = _check_seconds("RetryConfig.cap_seconds", self.cap_seconds, allow_zero=False)
        if cap < base:
            raise InvalidArgumentError(f"RetryConfig.cap_seconds ({cap}) must be >= base_seconds ({base})")
        j = self.jitter
        if isinstance(j, bool) or not isinstance(j, (int, float)) or not (0.0 <= float(j) <= 1.0):
            raise InvalidArgumentError(f"RetryConfig.jitter must be a number in 0..1, got {j!r}")
        object.__setattr__(self, "base_seconds", base)
        object.__setattr__(self, "cap_seconds", cap)
        object.__setattr__(self, "jitter", float(j))

    def to_native(self) -> dict[str, Any]:
        """Return the ``retry`` object of ``pq_open``."""
        return {
            "base_ms": _seconds_to_ms(self.base_seconds),
            "cap_ms": _seconds_to_ms(self.cap_seconds),
            "jitter": self.jitter,
        }


@dataclass(frozen=True)
class Task:
    """A task as stored in the queue. ``created`` is set only by enqueue calls."""

    id: int
    type: str
    priority: int
    payload: dict[str, Any]
    requirements: dict[str, Any]
    status: TaskStatus
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_expires_at: datetime | None
    lease_owner: str | None
    lease_token: int
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    idempotency_key: str | None
    result: Any
    progress_percent: float | None
    progress_current: int | None
    progress_total: int | None
    progress_message: str | None
    cancel_requested: bool
    retry_base_seconds: float | None
    retry_cap_seconds: float | None
    created: bool | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any], created: bool | None = None) -> Task:
        """Build a task from the library's Task JSON object."""
        # Hot path (every enqueue, get and claim), hence written out. The fields go into a copy
        # of a dict that already holds every field name (None), set as the frozen instance's
        # __dict__: no per-field object.__setattr__ of the generated __init__, no dict resizing.
        # Timestamps written by one engine call share one millisecond (created = updated =
        # run_after on enqueue; updated = claimed = started on claim): such fields share one
        # datetime (immutable) instead of converting the same number again.
        g = d.get
        v = _task_fields()
        v["id"] = d["id"]
        v["type"] = d["type"]
        v["priority"] = d["priority"]
        v["payload"] = g("payload") or {}
        v["requirements"] = g("requirements") or {}
        v["status"] = _STATUS[d["status"]]
        v["attempts"] = d["attempts"]
        v["max_attempts"] = d["max_attempts"]
        created_ms = d["created_at_ms"]
        v["created_at"] = created_at = _ms_to_dt(created_ms)
        updated_ms = d["updated_at_ms"]
        v["updated_at"] = updated_at = created_at if updated_ms == created_ms else _ms_to_dt(updated_ms)
        ms = d["run_after_ms"]
        v["run_after"] = created_at if ms == created_ms else updated_at if ms == updated_ms else _ms_to_dt(ms)
        ms = g("lease_expires_at_ms")
        if ms is not None:
            v["lease_expires_at"] = _ms_to_dt(ms)
        v["lease_owner"] = g("lease_owner")
        v["lease_token"] = g("lease_token") or 0
        ms = g("claimed_at_ms")
        if ms is not None:
            v["claimed_at"] = updated_at if ms == updated_ms else _ms_to_dt(ms)
        ms = g("started_at_ms")
        if ms is not None:
            v["started_at"] = updated_at if ms == updated_ms else _ms_to_dt(ms)
        ms = g("finished_at_ms")
        if ms is not None:
            v["finished_at"] = updated_at if ms == updated_ms else _ms_to_dt(ms)
        v["last_error"] = g("last_error")
        v["idempotency_key"] = g("idempotency_key")
        v["result"] = g("result")
        v["progress_percent"] = g("progress_percent")
        v["progress_current"] = g("progress_current")
        v["progress_total"] = g("progress_total")
        v["progress_message"] = g("progress_message")
        v["cancel_requested"] = bool(g("cancel_requested", False))
        ms = g("retry_base_ms")
        if ms is not None:
            v["retry_base_seconds"] = ms / 1000.0
        ms = g("retry_cap_ms")
        if ms is not None:
            v["retry_cap_seconds"] = ms / 1000.0
        v["created"] = created
        task = object.__new__(cls)
        object.__setattr__(task, "__dict__", v)
        return task

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (datetimes as ISO 8601 strings, enums as values)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Enum):
                value = value.value
            out[name] = value
        return out


# Task.from_json's starting point: every field name, in declaration order, set to None.
_task_fields = dict.fromkeys(f.name for f in fields(Task)).copy


@dataclass(frozen=True)
class LeaseInfo:
    """Outcome of renew/progress: the new lease expiry and whether a cancel was requested."""

    lease_expires_at: datetime
    cancel_requested: bool

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LeaseInfo:
        """Build from ``{"lease_expires_at_ms":N, "cancel_requested":bool}``."""
        return cls(_ms_to_dt(d["lease_expires_at_ms"]), bool(d.get("cancel_requested", False)))


@dataclass(frozen=True)
class LogEntry:
    """One line of a task's log."""

    id: int
    task_id: int
    at: datetime
    level: str
    message: str
    details: dict[str, Any] | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LogEntry:
        """Build from one element of ``pq_logs``' ``logs`` array."""
        return cls(d["id"], d["task_id"], _ms_to_dt(d["at_ms"]), d["level"], d["message"], d.get("details"))


@dataclass(frozen=True)
class Stats:
    """Counts of tasks by status and type, the oldest queued task's time and the live worker count."""

    total: int
    by_status: dict[str, int]
    by_type: dict[str, dict[str, int]]
    oldest_queued_at: datetime | None
    workers: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Stats:
        """Build from ``pq_stats`` output."""
        return cls(
            total=d["total"],
            by_status=dict(d.get("by_status") or {}),
            by_type={k: dict(v) for k, v in (d.get("by_type") or {}).items()},
            oldest_queued_at=_opt_dt(d.get("oldest_queued_ms")),
            workers=d.get("workers", 0),
        )


@dataclass(frozen=True)
class WorkerInfo:
    """A registered worker as recorded in the database."""

    worker_id: str
    host: str
    pid: int
    strategy: SchedulingStrategy | str
    capabilities: dict[str, Any]
    types: list[str]
    started_at: datetime | None
    heartbeat_at: datetime | None
    stopped_at: datetime | None
    running: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WorkerInfo:
        """Build from one element of ``pq_workers``' ``workers`` array."""
        return cls(
            worker_id=d["worker_id"],
            host=d.get("host") or "",
            pid=d.get("pid") or 0,
            strategy=strategy_or_name(d.get("strategy")),
            capabilities=dict(d.get("capabilities") or {}),
            types=list(d.get("types") or []),
            started_at=_opt_dt(d.get("started_at_ms")),
            heartbeat_at=_opt_dt(d.get("heartbeat_at_ms")),
            stopped_at=_opt_dt(d.get("stopped_at_ms")),
            running=d.get("running") or 0,
        )


@dataclass(frozen=True)
class SweepResult:
    """What one sweeper pass did."""

    requeued: int
    failed: int
    cancelled: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SweepResult:
        """Build from ``pq_sweep`` output."""
        return cls(d.get("requeued", 0), d.get("failed", 0), d.get("cancelled", 0))


@dataclass(frozen=True)
class AckResult:
    """Outcome of one ack of :meth:`Worker.ack_many`; ``error`` is None on success."""

    id: int
    error: QueueError | None

    @property
    def ok(self) -> bool:
        """True when the ack succeeded."""
        return self.error is None


@dataclass(frozen=True)
class AckAndClaimResult:
    """Outcome of :meth:`Worker.ack_and_claim`: one :class:`AckResult` per ack, in input order,
    and the newly claimed tasks (empty when nothing was claimable)."""

    acks: list[AckResult]
    tasks: list[Task]
