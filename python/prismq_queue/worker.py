"""A worker: claims tasks under a lease and settles them with its fencing token.

Example::

    from prismq_queue import Queue, Worker, WorkerConfig
    with Queue("/tmp/q.db") as q, Worker(q, WorkerConfig(worker_id="w1")) as w:
        task = w.claim(timeout=5)
        if task is not None:
            w.complete(task, {"ok": True})
"""

from __future__ import annotations

import builtins
import os
import socket
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import _lib
from ._errors import InvalidArgumentError, error_from_code
from ._handle import NativeHandle
from .config import WorkerConfig
from .models import (
    _INT32_MAX,
    AckAndClaimResult,
    AckResult,
    LeaseInfo,
    SchedulingStrategy,
    Task,
    _check_int,
    _check_seconds,
    _check_str,
    _dumps,
    _seconds_to_ms,
)

if TYPE_CHECKING:
    from .queue import Queue
    from .runner import HandlerRegistry, RunSummary

__all__ = ["Worker"]

_ACK_OPS = frozenset({"complete", "fail", "release", "cancel"})


# Up to this many seconds, an int or float timeout takes the short path of _timeout_ms: it
# computes what _seconds_to_ms(float(timeout)) does (ints are exact as floats here) and is far
# from the int64 limit that function checks.
_FAST_TIMEOUT_MAX_S = 1e12


def _timeout_ms(timeout: object) -> int:
    """``_seconds_to_ms(_check_seconds("timeout", timeout))``, with a short path for plain numbers."""
    if (type(timeout) is float or type(timeout) is int) and 0 <= timeout <= _FAST_TIMEOUT_MAX_S:
        ms: int = round(timeout * 1000)
        return 1 if ms == 0 and timeout > 0 else ms
    return _seconds_to_ms(_check_seconds("timeout", timeout))


def _error_text(error: object) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, BaseException):
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    raise InvalidArgumentError(f"error must be a str or an exception, got {type(error).__name__}")


class Worker(NativeHandle):
    """A registered worker of one :class:`Queue` (safe to use from several threads).

    Settling calls (complete, fail, renew, progress, ack_cancel, release) take either the
    claimed :class:`Task`, whose ``lease_token`` is used, or a task id with ``lease_token=``.

    :param queue: the open queue.
    :param config: the worker's settings.
    :raises InvalidArgumentError: when config is not a WorkerConfig.
    :raises QueueClosedError: when the queue is closed.
    """

    _kind = "worker"

    def __init__(self, queue: Queue, config: WorkerConfig) -> None:
        from .queue import Queue

        if not isinstance(queue, Queue):
            raise InvalidArgumentError(f"queue must be a Queue, got {type(queue).__name__}")
        if not isinstance(config, WorkerConfig):
            raise InvalidArgumentError(f"config must be a WorkerConfig, got {type(config).__name__}")
        self._queue = queue
        self._config = config
        self._strategy = config.scheduling_strategy
        f = _lib.FUNCTIONS
        self._f_claim = f["pq_claim"]
        self._f_complete = f["pq_complete"]
        native = config.to_native(host=socket.gethostname(), pid=os.getpid())
        handle = _lib.call_handle(f["pq_worker_open"], queue._h(), _dumps(native, "worker config"))
        super().__init__(handle)
        queue._register_worker(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Worker {self._config.worker_id!r} {state}>"

    def _native_close(self, handle: int) -> None:
        _lib.call(_lib.FUNCTIONS["pq_worker_close"], handle)

    @property
    def queue(self) -> Queue:
        """The queue this worker claims from."""
        return self._queue

    @property
    def config(self) -> WorkerConfig:
        """The configuration the worker was opened with."""
        return self._config

    @property
    def worker_id(self) -> str:
        """The worker's id."""
        return self._config.worker_id

    @property
    def strategy(self) -> SchedulingStrategy:
        """The current scheduling strategy."""
        return self._strategy

    def set_strategy(self, strategy: SchedulingStrategy | str) -> None:
        """Change the order of later claims.

        :raises InvalidArgumentError: for an unknown strategy.
        :raises QueueClosedError: after :meth:`close`.
        """
        s = SchedulingStrategy.coerce(strategy)
        _lib.call(_lib.FUNCTIONS["pq_worker_set_strategy"], self._h(), s.value.encode())
        self._strategy = s

    def claim(self, timeout: float | timedelta = 0.0) -> Task | None:
        """Lease the next eligible task, waiting up to ``timeout`` seconds; None when none came.

        :param timeout: seconds to wait (0: return at once). The GIL is released while waiting.
        :raises QueueClosedError: when the worker or its queue is (or gets) closed.
        """
        out = _lib.call_json(self._f_claim, self._h(), 1, _timeout_ms(timeout))
        tasks = out["tasks"]
        return Task.from_json(tasks[0]) if tasks else None

    def claim_many(self, max_tasks: int, timeout: float | timedelta = 0.0) -> builtins.list[Task]:
        """Lease up to ``max_tasks`` eligible tasks, waiting up to ``timeout`` seconds for the first.

        :raises InvalidArgumentError: when max_tasks < 1 or timeout is negative.
        :raises QueueClosedError: when the worker or its queue is (or gets) closed.
        """
        n = _check_int("max_tasks", max_tasks, minimum=1, maximum=_INT32_MAX)
        out = _lib.call_json(self._f_claim, self._h(), n, _timeout_ms(timeout))
        return [Task.from_json(t) for t in out["tasks"]]

    def _target(self, task: Task | int, lease_token: int | None) -> tuple[int, int]:
        if isinstance(task, Task):
            token = task.lease_token if lease_token is None else _check_int("lease_token", lease_token)
            return task.id, token
        tid = _check_int("task", task)
        if lease_token is None:
            raise InvalidArgumentError("lease_token is required when a task id is passed instead of a Task")
        return tid, _check_int("lease_token", lease_token)

    def complete(self, task: Task | int, result: Any = None, *, lease_token: int | None = None) -> None:
        """Mark a leased task completed with a JSON-able result.

        :raises LeaseLostError: when the lease is no longer held (stale token).
        :raises PayloadTooLargeError: when the result is over the size limit.
        :raises InvalidArgumentError: when the result is not JSON-able.
        :raises TaskNotFoundError: for an unknown id.
        """
        tid, token = self._target(task, lease_token)
        data = None if result is None else _dumps(result, "result")
        _lib.call(self._f_complete, self._h(), tid, token, data)

    def fail(
        self,
        task: Task | int,
        error: str | BaseException,
        *,
        retryable: bool = True,
        lease_token: int | None = None,
    ) -> Task:
        """Record a failure: requeued with backoff while attempts remain and ``retryable``, else failed.

        :returns: the task after the failure (status queued or failed).
        :raises LeaseLostError: when the lease is no longer held.
        :raises TaskNotFoundError: for an unknown id.
        """
        tid, token = self._target(task, lease_token)
        if not isinstance(retryable, bool):
            raise InvalidArgumentError("retryable must be a bool")
        # The message crosses as a NUL-terminated string: keep embedded NULs visible, not truncating.
        msg = _error_text(error).replace("\x00", "\\x00").encode("utf-8", "replace")
        out = _lib.call_json(_lib.FUNCTIONS["pq_fail"], self._h(), tid, token, msg, 1 if retryable else 0)
        return Task.from_json(out)

    def renew(
        self,
        task: Task | int,
        lease_seconds: float | timedelta | None = None,
        *,
        lease_token: int | None = None,
    ) -> LeaseInfo:
        """Extend a lease by ``lease_seconds`` from now (default: the worker's lease duration).

        :raises LeaseLostError: when the lease is no longer held.
        :raises TaskNotFoundError: for an unknown id.
        """
        tid, token = self._target(task, lease_token)
        ms = 0
        if lease_seconds is not None:
            ms = _seconds_to_ms(_check_seconds("lease_seconds", lease_seconds, allow_zero=False))
        out = _lib.call_json(_lib.FUNCTIONS["pq_renew"], self._h(), tid, token, ms)
        return LeaseInfo.from_json(out)

    def progress(
        self,
        task: Task | int,
        percent: float | None = None,
        current: int | None = None,
        total: int | None = None,
        message: str | None = None,
        *,
        lease_token: int | None = None,
    ) -> LeaseInfo:
        """Record progress (which also renews the lease).

        :param percent: 0..100.
        :param current: items done.
        :param total: items in all.
        :param message: short status text.
        :raises LeaseLostError: when the lease is no longer held.
        :raises InvalidArgumentError: for a percent outside 0..100 or negative counts.
        """
        tid, token = self._target(task, lease_token)
        body: dict[str, Any] = {}
        if percent is not None:
            if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
                raise InvalidArgumentError(f"percent must be a number in 0..100, got {percent!r}")
            body["percent"] = float(percent)
        if current is not None:
            body["current"] = _check_int("current", current, minimum=0)
        if total is not None:
            body["total"] = _check_int("total", total, minimum=0)
        if message is not None:
            body["message"] = _check_str("message", message, allow_empty=True)
        out = _lib.call_json(_lib.FUNCTIONS["pq_progress"], self._h(), tid, token, _dumps(body, "progress"))
        return LeaseInfo.from_json(out)

    def heartbeat(self) -> builtins.list[int]:
        """Record liveness and renew every lease this worker holds.

        :returns: ids of held tasks whose cancellation was requested.
        :raises QueueClosedError: after :meth:`close`.
        """
        out = _lib.call_json(_lib.FUNCTIONS["pq_heartbeat"], self._h())
        return [int(i) for i in out.get("cancel_requested") or []]

    def ack_cancel(self, task: Task | int, *, lease_token: int | None = None) -> None:
        """Confirm that the task stopped after a cancel request; it ends cancelled.

        :raises LeaseLostError: when the lease is no longer held.
        """
        tid, token = self._target(task, lease_token)
        _lib.call(_lib.FUNCTIONS["pq_ack_cancel"], self._h(), tid, token)

    def release(self, task: Task | int, *, lease_token: int | None = None) -> None:
        """Give a leased task back (queued, runnable at once, this attempt not counted).

        :raises LeaseLostError: when the lease is no longer held.
        """
        tid, token = self._target(task, lease_token)
        _lib.call(_lib.FUNCTIONS["pq_release"], self._h(), tid, token)

    def _ack_body(self, acks: Sequence[Mapping[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Check the acks of :meth:`ack_many` and :meth:`ack_and_claim`; return their wire form."""
        raw: object = acks
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
            raise InvalidArgumentError("acks must be a list of dicts")
        body: builtins.list[dict[str, Any]] = []
        for i, ack in enumerate(acks):
            if not isinstance(ack, Mapping):
                raise InvalidArgumentError(f"acks[{i}] must be a dict, got {type(ack).__name__}")
            op = ack.get("op")
            if op not in _ACK_OPS:
                raise InvalidArgumentError(f"acks[{i}]: op must be one of {sorted(_ACK_OPS)}, got {op!r}")
            if "task" in ack:
                ref = ack["task"]
            elif "id" in ack:
                ref = ack["id"]
            else:
                raise InvalidArgumentError(f"acks[{i}]: 'task' is required")
            tid, token = self._target(ref, ack.get("lease_token", ack.get("token")))
            item: dict[str, Any] = {"id": tid, "token": token, "op": op}
            if op == "complete":
                item["result"] = ack.get("result")
            elif op == "fail":
                item["error"] = _error_text(ack.get("error", ""))
                retryable = ack.get("retryable", True)
                if not isinstance(retryable, bool):
                    raise InvalidArgumentError(f"acks[{i}]: retryable must be a bool")
                item["retryable"] = retryable
            body.append(item)
        return body

    @staticmethod
    def _ack_results(results: Sequence[Mapping[str, Any]]) -> builtins.list[AckResult]:
        out: builtins.list[AckResult] = []
        for r in results:
            status = int(r.get("status", 0))
            err = error_from_code(status, r.get("error") or "") if status else None
            out.append(AckResult(int(r["id"]), err))
        return out

    def ack_many(self, acks: Sequence[Mapping[str, Any]]) -> builtins.list[AckResult]:
        """Settle many leases in one transaction; one bad ack does not stop the others.

        Each ack is a dict with ``"task"`` (a Task, or an id plus ``"lease_token"``) and ``"op"``:
        ``"complete"`` (optional ``"result"``), ``"fail"`` (``"error"``, optional ``"retryable"``,
        default True), ``"release"`` or ``"cancel"`` (acknowledges a cancel request).

        :returns: one :class:`AckResult` per ack, in input order.
        :raises InvalidArgumentError: for a malformed ack (then nothing is settled).
        :raises QueueClosedError: after :meth:`close`.
        """
        h = self._h()
        body = self._ack_body(acks)
        if not body:
            return []
        out = _lib.call_json(_lib.FUNCTIONS["pq_ack_many"], h, _dumps(body, "acks"))
        return self._ack_results(out["results"])

    def ack_and_claim(self, acks: Sequence[Mapping[str, Any]], max_tasks: int) -> AckAndClaimResult:
        """Settle acks as :meth:`ack_many` does and lease up to ``max_tasks`` more, in one transaction.

        A loop that drains the queue in batches commits once per batch instead of twice. The claim
        does not wait: empty ``tasks`` means nothing was claimable at that moment (use
        :meth:`claim_many` with a timeout to wait for work). ``acks`` may be empty.

        :param acks: as for :meth:`ack_many`.
        :param max_tasks: 1..1000 tasks to claim.
        :returns: ``acks``: one :class:`AckResult` per ack, in input order (a stale token gives
            an ack whose ``error`` is a :class:`LeaseLostError`); ``tasks``: the claimed tasks.
        :raises InvalidArgumentError: for a malformed ack or max_tasks outside 1..1000 (then
            nothing is settled or claimed).
        :raises QueueClosedError: when the worker or its queue is closed.
        """
        h = self._h()
        n = _check_int("max_tasks", max_tasks, minimum=1, maximum=_INT32_MAX)
        body = self._ack_body(acks)
        out = _lib.call_json(_lib.FUNCTIONS["pq_ack_and_claim"], h, _dumps(body, "acks"), n)
        return AckAndClaimResult(self._ack_results(out["results"]), [Task.from_json(t) for t in out["tasks"]])

    def run(self, registry: HandlerRegistry | None = None, **options: Any) -> RunSummary:
        """Run registered handlers with this worker until stopped.

        Takes the keyword options of :func:`prismq_queue.run_worker` (concurrency, stop_event,
        install_signal_handlers, max_tasks, idle_exit_seconds, grace_seconds).

        :param registry: the handlers; default the module-level ``handlers``.
        :raises QueueClosedError: when the worker or its queue is closed.
        """
        from .runner import run_with_worker

        return run_with_worker(self, self._queue, registry, **options)
