"""Bad input through every public call raises the documented exception."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import prismq_queue
from prismq_queue import (
    EnqueueRequest,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    LeaseLostError,
    NetworkPathError,
    PayloadTooLargeError,
    Queue,
    QueueBusyError,
    QueueClosedError,
    QueueError,
    QueueIOError,
    RetryConfig,
    SchemaError,
    TaskNotFoundError,
    Worker,
    WorkerConfig,
    _lib,
    error_from_code,
)

MakeQueue = Callable[..., Queue]

# ---- status code mapping -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls", "builtin"),
    [
        (1, InvalidArgumentError, ValueError),
        (2, TaskNotFoundError, LookupError),
        (3, LeaseLostError, QueueError),
        (4, QueueClosedError, QueueError),
        (5, QueueBusyError, QueueError),
        (6, InvalidStateError, QueueError),
        (7, PayloadTooLargeError, InvalidArgumentError),
        (8, NetworkPathError, QueueError),
        (9, SchemaError, QueueError),
        (10, QueueIOError, OSError),
        (11, InternalError, QueueError),
    ],
)
def test_every_status_code_maps_to_its_exception(code: int, cls: type[QueueError], builtin: type) -> None:
    err = error_from_code(code, "some message")
    assert type(err) is cls
    assert isinstance(err, builtin) and isinstance(err, QueueError)
    assert err.code == code
    assert str(err) == "some message"


def test_an_unknown_status_code_gives_the_base_class_with_the_code() -> None:
    err = error_from_code(99, "")
    assert type(err) is QueueError
    assert err.code == 99
    assert "99" in str(err)


def test_native_errors_are_classified_by_code_not_text(queue: Queue) -> None:
    h = queue._h()
    with pytest.raises(InvalidArgumentError):
        _lib.call_json(_lib.FUNCTIONS["pq_enqueue"], h, b"{not json")
    with pytest.raises(InvalidArgumentError):
        _lib.call_json(_lib.FUNCTIONS["pq_enqueue"], h, b'{"type":"\xff\xfe"}')
    with pytest.raises(InvalidArgumentError):
        _lib.call_json(_lib.FUNCTIONS["pq_enqueue"], h, None)
    with pytest.raises(QueueClosedError):
        _lib.call_json(_lib.FUNCTIONS["pq_get"], 0, 1)
    with pytest.raises(QueueClosedError):
        _lib.call_json(_lib.FUNCTIONS["pq_get"], 987654321, 1)


# ---- Queue construction --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": 123},
        {"path": ""},
        {"allow_network_path": "yes"},
        {"pragmas": ["journal_mode"]},
        {"pragmas": {"journal_mode": None}},
        {"max_payload_bytes": 0},
        {"max_payload_bytes": True},
        {"max_payload_bytes": "1"},
        {"default_lease_seconds": 0},
        {"default_lease_seconds": -1},
        {"default_lease_seconds": float("nan")},
        {"sweep_interval_seconds": "1"},
        {"disable_sweeper": 1},
        {"wake_poll_interval_seconds": -0.5},
        {"retry": {"base_seconds": 1}},
    ],
)
def test_queue_rejects_bad_options(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("path", tmp_path / "q.db")
    with pytest.raises(InvalidArgumentError):
        Queue(**kwargs)
    assert not (tmp_path / "q.db").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_seconds": 0},
        {"base_seconds": -1},
        {"cap_seconds": 0.5, "base_seconds": 1},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"jitter": True},
        {"base_seconds": "1"},
        {"cap_seconds": float("inf")},
    ],
)
def test_retry_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        RetryConfig(**kwargs)


def test_unc_paths_are_refused_as_network_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform == "win32":
        paths = ["//server/share/q.db", r"\\server\share\q.db"]
    else:
        # Probes that cannot touch anything outside tmp_path if the check were missing: the
        # POSIX reading of this UNC path runs through a regular file (so nothing can be created),
        # and a relative reading of the backslash form lands in tmp_path.
        monkeypatch.chdir(tmp_path)
        blocker = tmp_path / "blocker"
        blocker.write_text("not a folder")
        paths = ["/" + str(blocker / "share" / "q.db"), r"\\server\share\q.db"]
    for path in paths:
        with pytest.raises(NetworkPathError):
            Queue(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["blocker"] if sys.platform != "win32" else [])


def test_unwritable_location_is_an_io_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(QueueIOError) as info:
        Queue(blocker / "sub" / "q.db")
    assert isinstance(info.value, OSError)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is definitely not an sqlite database file" * 100)
    with pytest.raises((SchemaError, QueueIOError)):
        Queue(bogus)


def test_missing_library_names_the_paths_tried(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "libprismq_queue.so"
    code = textwrap.dedent(
        f"""
        import prismq_queue
        try:
            prismq_queue.Queue({str(tmp_path / 'x.db')!r})
        except prismq_queue.LibraryNotFoundError as exc:
            print("LNF:" + str(exc))
        """
    )
    env = dict(os.environ, PRISMQ_QUEUE_LIB=str(missing))
    package_root = str(Path(prismq_queue.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("LNF:")
    assert str(missing) in out.stdout
    assert "make build" in out.stdout


# ---- enqueue ---------------------------------------------------------------------------


class _Unserialisable:
    pass


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task_type": 5},
        {"task_type": ""},
        {"task_type": None},
        {"payload": [1, 2]},
        {"payload": "text"},
        {"payload": {"x": _Unserialisable()}},
        {"payload": {"x": float("nan")}},
        {"payload": {"x": float("inf")}},
        {"payload": {1: "int key"}},
        {"payload": {"x": {1, 2}}},
        {"payload": {"s": "\ud800"}},
        {"priority": "1"},
        {"priority": True},
        {"priority": 1.5},
        {"priority": 2**70},
        {"delay": -1},
        {"delay": "5"},
        {"delay": 5, "run_at": datetime.now(timezone.utc)},
        {"run_at": datetime(2030, 1, 1)},
        {"run_at": "2030-01-01"},
        {"max_attempts": 0},
        {"max_attempts": False},
        {"requirements": ["gpu"]},
        {"idempotency_key": 5},
        {"idempotency_key": ""},
        {"retry": {"base_seconds": 1}},
    ],
)
def test_enqueue_rejects_bad_arguments(queue: Queue, kwargs: dict[str, Any]) -> None:
    args = {"task_type": "t", **kwargs}
    task_type = args.pop("task_type")
    with pytest.raises(InvalidArgumentError):
        queue.enqueue(task_type, **args)
    with pytest.raises(InvalidArgumentError):
        queue.enqueue_many([EnqueueRequest("ok"), EnqueueRequest(task_type, **args)])
    assert queue.stats().total == 0


def test_a_recursive_payload_is_rejected(queue: Queue) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidArgumentError):
        queue.enqueue("t", loop)


@pytest.mark.parametrize("items", ["abc", 5, [5], [{"payload": {}}], [{"task_type": "t", "bogus": 1}]])
def test_enqueue_many_rejects_malformed_items(queue: Queue, items: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        queue.enqueue_many(items)


def test_oversized_payload_and_requirements_are_refused(make_queue: MakeQueue) -> None:
    q = make_queue(max_payload_bytes=1024)
    q.enqueue("t", {"x": "y" * 500})
    with pytest.raises(PayloadTooLargeError) as info:
        q.enqueue("t", {"x": "y" * 2000})
    assert isinstance(info.value, InvalidArgumentError) and info.value.code == 7
    with pytest.raises(PayloadTooLargeError):
        q.enqueue("t", requirements={"x": "y" * 2000})
    assert q.stats().total == 1


def test_oversized_result_is_refused_and_the_lease_kept(make_queue: MakeQueue) -> None:
    q = make_queue(max_payload_bytes=1024)
    q.enqueue("t")
    w = Worker(q, WorkerConfig(worker_id="w"))
    task = w.claim()
    assert task is not None
    with pytest.raises(PayloadTooLargeError):
        w.complete(task, {"x": "y" * 5000})
    w.complete(task, {"x": "small"})
    assert q.get(task.id).result == {"x": "small"}


# ---- lookups of unknown ids ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.get(999_999),
        lambda q: q.cancel(999_999),
        lambda q: q.retry(999_999),
        lambda q: q.log(999_999, "hello"),
        lambda q: q.logs(999_999),
    ],
    ids=["get", "cancel", "retry", "log", "logs"],
)
def test_unknown_task_ids_raise_task_not_found(queue: Queue, call: Callable[[Queue], Any]) -> None:
    with pytest.raises(TaskNotFoundError) as info:
        call(queue)
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.complete(999_999, lease_token=1),
        lambda w: w.fail(999_999, "x", lease_token=1),
        lambda w: w.renew(999_999, lease_token=1),
        lambda w: w.progress(999_999, percent=5, lease_token=1),
        lambda w: w.ack_cancel(999_999, lease_token=1),
        lambda w: w.release(999_999, lease_token=1),
    ],
    ids=["complete", "fail", "renew", "progress", "ack_cancel", "release"],
)
def test_settling_an_unknown_task_raises_task_not_found(
    worker: Worker, call: Callable[[Worker], Any]
) -> None:
    with pytest.raises(TaskNotFoundError):
        call(worker)


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.get("1"),
        lambda q: q.get(True),
        lambda q: q.get(1.0),
        lambda q: q.cancel(None),
        lambda q: q.retry("x"),
        lambda q: q.log(1, 5),
        lambda q: q.log(1, "m", level=""),
        lambda q: q.log(1, "m", details=[1]),
        lambda q: q.logs(1, limit=-1),
        lambda q: q.logs(1, limit="2"),
        lambda q: q.list(status="bogus"),
        lambda q: q.list(status=[5]),
        lambda q: q.list(task_type=5),
        lambda q: q.list(limit=0),
        lambda q: q.list(limit=10_001),
        lambda q: q.list(after_id="3"),
        lambda q: q.list(descending="yes"),
        lambda q: list(q.iter_tasks(page_size=0)),
        lambda q: q.worker({"worker_id": "w"}),
    ],
)
def test_queue_methods_reject_wrong_types(queue: Queue, call: Callable[[Queue], Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        call(queue)


# ---- worker arguments ------------------------------------------------------------------


def test_worker_constructor_checks_its_arguments(queue: Queue) -> None:
    with pytest.raises(InvalidArgumentError):
        Worker("queue", WorkerConfig(worker_id="w"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        Worker(queue, {"worker_id": "w"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda w, t: w.claim(timeout=-1),
        lambda w, t: w.claim(timeout="1"),
        lambda w, t: w.claim_many(0),
        lambda w, t: w.claim_many(True),
        lambda w, t: w.complete(t.id),
        lambda w, t: w.complete("1", lease_token=1),
        lambda w, t: w.complete(t, {"x": object()}),
        lambda w, t: w.complete(t, float("nan")),
        lambda w, t: w.fail(t, 5),
        lambda w, t: w.fail(t, "x", retryable="no"),
        lambda w, t: w.renew(t, lease_seconds=0),
        lambda w, t: w.renew(t, lease_seconds=-3),
        lambda w, t: w.progress(t, percent=101),
        lambda w, t: w.progress(t, percent=-1),
        lambda w, t: w.progress(t, percent="50"),
        lambda w, t: w.progress(t, current=-1),
        lambda w, t: w.progress(t, total=1.5),
        lambda w, t: w.progress(t, message=3),
        lambda w, t: w.ack_cancel(t.id),
        lambda w, t: w.release(t, lease_token="x"),
        lambda w, t: w.ack_many("complete"),
        lambda w, t: w.ack_many([{"task": t, "op": "explode"}]),
        lambda w, t: w.ack_many([{"op": "complete"}]),
        lambda w, t: w.ack_many([5]),
        lambda w, t: w.ack_many([{"task": t.id, "op": "complete"}]),
        lambda w, t: w.ack_and_claim([], 0),
        lambda w, t: w.ack_and_claim([], "1"),
        lambda w, t: w.ack_and_claim([{"task": t, "op": "complete"}], 1001),
        lambda w, t: w.ack_and_claim("complete", 1),
        lambda w, t: w.ack_and_claim([{"task": t, "op": "explode"}], 1),
        lambda w, t: w.ack_and_claim([{"op": "complete"}], 1),
        lambda w, t: w.ack_and_claim([5], 1),
        lambda w, t: w.ack_and_claim([{"task": t.id, "op": "complete"}], 1),
        lambda w, t: w.ack_and_claim([{"task": t, "op": "fail", "retryable": "no"}], 1),
        lambda w, t: w.set_strategy("random"),
        lambda w, t: w.set_strategy(3),
    ],
)
def test_worker_methods_reject_bad_arguments(queue: Queue, worker: Worker, call: Callable[..., Any]) -> None:
    queue.enqueue("t")
    task = worker.claim()
    assert task is not None
    with pytest.raises(InvalidArgumentError):
        call(worker, task)
    # Nothing was settled by the rejected call: the lease still works.
    worker.complete(task)


def test_invalid_state_for_retry_of_a_queued_task(queue: Queue) -> None:
    task = queue.enqueue("t")
    with pytest.raises(InvalidStateError):
        queue.retry(task.id)


# ---- closed handles --------------------------------------------------------------------

_QUEUE_CALLS: list[Callable[[Queue], Any]] = [
    lambda q: q.enqueue("t"),
    lambda q: q.enqueue_many([{"task_type": "t"}]),
    lambda q: q.get(1),
    lambda q: q.list(),
    lambda q: list(q.iter_tasks()),
    lambda q: q.cancel(1),
    lambda q: q.retry(1),
    lambda q: q.stats(),
    lambda q: q.sweep(),
    lambda q: q.log(1, "m"),
    lambda q: q.logs(1),
    lambda q: q.workers(),
    lambda q: q.info(),
    lambda q: q.worker(WorkerConfig(worker_id="late")),
    lambda q: q.__enter__(),
]


@pytest.mark.parametrize("call", _QUEUE_CALLS)
def test_closed_queue_raises_queue_closed(make_queue: MakeQueue, call: Callable[[Queue], Any]) -> None:
    q = make_queue()
    q.close()
    with pytest.raises(QueueClosedError):
        call(q)


_WORKER_CALLS: list[Callable[[Worker], Any]] = [
    lambda w: w.claim(),
    lambda w: w.claim_many(2),
    lambda w: w.complete(1, lease_token=1),
    lambda w: w.fail(1, "x", lease_token=1),
    lambda w: w.renew(1, lease_token=1),
    lambda w: w.progress(1, percent=1, lease_token=1),
    lambda w: w.heartbeat(),
    lambda w: w.ack_cancel(1, lease_token=1),
    lambda w: w.release(1, lease_token=1),
    lambda w: w.ack_many([{"task": 1, "lease_token": 1, "op": "release"}]),
    lambda w: w.ack_and_claim([], 1),
    lambda w: w.ack_and_claim([{"task": 1, "lease_token": 1, "op": "release"}], 1),
    lambda w: w.set_strategy("fifo"),
]


@pytest.mark.parametrize("call", _WORKER_CALLS)
def test_closed_worker_raises_queue_closed(queue: Queue, call: Callable[[Worker], Any]) -> None:
    w = Worker(queue, WorkerConfig(worker_id="closing"))
    w.close()
    with pytest.raises(QueueClosedError):
        call(w)


@pytest.mark.parametrize("call", _WORKER_CALLS)
def test_worker_of_a_closed_queue_raises_queue_closed(
    make_queue: MakeQueue, call: Callable[[Worker], Any]
) -> None:
    q = make_queue()
    w = Worker(q, WorkerConfig(worker_id="orphan"))
    q.close()
    assert w.closed
    with pytest.raises(QueueClosedError):
        call(w)
    w.close()  # still idempotent


def test_a_worker_on_a_closed_queue_cannot_be_opened(make_queue: MakeQueue) -> None:
    q = make_queue()
    q.close()
    with pytest.raises(QueueClosedError):
        Worker(q, WorkerConfig(worker_id="w"))


def test_errors_share_one_base_class() -> None:
    for name in prismq_queue.__all__:
        obj = getattr(prismq_queue, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, QueueError), name


def test_exceptions_carry_the_native_message(queue: Queue) -> None:
    with pytest.raises(TaskNotFoundError) as info:
        queue.get(31337)
    assert "31337" in str(info.value)
    assert info.value.code == 2


def test_timedelta_durations_are_accepted(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t", delay=timedelta(0))
    task = worker.claim(timeout=timedelta(seconds=1))
    assert task is not None
    worker.renew(task, timedelta(seconds=10))
