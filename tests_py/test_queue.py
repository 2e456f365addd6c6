"""Round trips of every Queue operation."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import prismq_queue
from prismq_queue import (
    EnqueueRequest,
    InvalidStateError,
    PayloadTooLargeError,
    Queue,
    QueueClosedError,
    RetryConfig,
    TaskNotFoundError,
    TaskStatus,
    WorkerConfig,
)

MakeQueue = Callable[..., Queue]
MakeWorker = Callable[..., prismq_queue.Worker]


def _aware_utc(dt: datetime | None) -> bool:
    return dt is not None and dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


def test_open_creates_the_database_and_reports_path_and_schema(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "q.db"
    with Queue(db) as q:
        assert db.exists()
        assert Path(q.path).resolve() == db.resolve()
        assert q.schema_version >= 1
        info = q.info()
        assert info["schema_version"] == q.schema_version
        assert info["version"] == prismq_queue.version()
        assert str(info["pragmas"].get("journal_mode", "")).lower() == "wal"
    assert q.closed


def test_pragmas_can_be_overridden(make_queue: MakeQueue) -> None:
    q = make_queue(pragmas={"synchronous": "FULL", "busy_timeout": 1234})
    pragmas = {k: str(v).lower() for k, v in q.info()["pragmas"].items()}
    assert pragmas["busy_timeout"] == "1234"
    assert pragmas["synchronous"] in ("full", "2")


def test_enqueue_returns_the_stored_task_with_defaults(queue: Queue) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    task = queue.enqueue("email.send", {"to": "a@example.com", "n": [1, 2.5, None, True]})
    assert task.created is True
    assert task.id > 0
    assert task.type == "email.send"
    assert task.payload == {"to": "a@example.com", "n": [1, 2.5, None, True]}
    assert task.priority == 100
    assert task.max_attempts == 5
    assert task.attempts == 0
    assert task.status is TaskStatus.QUEUED
    assert task.requirements == {}
    assert task.lease_owner is None and task.lease_expires_at is None
    assert task.result is None and task.last_error is None
    assert task.cancel_requested is False
    for dt in (task.created_at, task.updated_at, task.run_after):
        assert _aware_utc(dt)
    assert before <= task.created_at <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert task.run_after <= task.created_at + timedelta(milliseconds=1)
    again = queue.get(task.id)
    assert again.created is None
    assert again.payload == task.payload and again.created_at == task.created_at


def test_enqueue_stores_every_option(queue: Queue) -> None:
    task = queue.enqueue(
        "render",
        {"frame": 7},
        priority=3,
        max_attempts=9,
        requirements={"gpu": True, "region": "us"},
        idempotency_key="render-7",
        retry=RetryConfig(base_seconds=2.5, cap_seconds=30),
    )
    got = queue.get(task.id)
    assert got.priority == 3
    assert got.max_attempts == 9
    assert got.requirements == {"gpu": True, "region": "us"}
    assert got.idempotency_key == "render-7"
    assert got.retry_base_seconds == 2.5
    assert got.retry_cap_seconds == 30.0


def test_delay_and_run_at_set_run_after(queue: Queue) -> None:
    delayed = queue.enqueue("t", delay=timedelta(minutes=5))
    assert delayed.run_after - delayed.created_at >= timedelta(minutes=5) - timedelta(milliseconds=5)
    delayed2 = queue.enqueue("t", delay=90.5)
    assert timedelta(seconds=90) <= delayed2.run_after - delayed2.created_at <= timedelta(seconds=91)
    at = datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=timezone(timedelta(hours=2)))
    scheduled = queue.enqueue("t", run_at=at)
    assert scheduled.run_after == at
    assert scheduled.run_after.tzinfo is not None and scheduled.run_after.utcoffset() == timedelta(0)


def test_idempotency_key_returns_the_existing_task(queue: Queue) -> None:
    first = queue.enqueue("t", {"v": 1}, idempotency_key="k1")
    second = queue.enqueue("t", {"v": 2}, idempotency_key="k1")
    assert first.created is True
    assert second.created is False
    assert second.id == first.id
    assert second.payload == {"v": 1}
    assert queue.stats().total == 1


def test_unicode_and_nested_payloads_round_trip(queue: Queue) -> None:
    payload = {"text": "Příliš žluťoučký kůň 🐎", "nested": {"a": [{"b": {"c": "\u0000x"}}]}, "big": 2**62}
    task = queue.enqueue("t", payload)
    assert queue.get(task.id).payload == payload


def test_enqueue_many_keeps_input_order_and_reports_created(queue: Queue) -> None:
    existing = queue.enqueue("t", idempotency_key="dup")
    tasks = queue.enqueue_many(
        [
            EnqueueRequest("a", {"i": 0}, priority=5),
            {"task_type": "b", "payload": {"i": 1}, "idempotency_key": "dup"},
            {"task_type": "c", "delay": 60},
        ]
    )
    assert [t.type for t in tasks] == ["a", "t", "c"]
    assert [t.created for t in tasks] == [True, False, True]
    assert tasks[0].priority == 5 and tasks[0].payload == {"i": 0}
    assert tasks[1].id == existing.id
    assert tasks[2].run_after > tasks[2].created_at
    assert queue.enqueue_many([]) == []


def test_enqueue_many_is_all_or_nothing(make_queue: MakeQueue) -> None:
    q = make_queue(max_payload_bytes=256)
    with pytest.raises(PayloadTooLargeError):
        q.enqueue_many([{"task_type": "ok"}, {"task_type": "big", "payload": {"x": "y" * 1000}}])
    assert q.stats().total == 0


def test_get_unknown_id_raises(queue: Queue) -> None:
    with pytest.raises(TaskNotFoundError):
        queue.get(424242)


def test_list_filters_by_status_and_type(queue: Queue, make_worker: MakeWorker) -> None:
    a1 = queue.enqueue("a")
    b1 = queue.enqueue("b")
    a2 = queue.enqueue("a")
    queue.cancel(b1.id)
    leased = make_worker("w", types=["a"]).claim()
    assert leased is not None and leased.id == a1.id

    assert [t.id for t in queue.list()] == [a1.id, b1.id, a2.id]
    assert [t.id for t in queue.list(task_type="a")] == [a1.id, a2.id]
    assert [t.id for t in queue.list(status="cancelled")] == [b1.id]
    assert [t.id for t in queue.list(status=TaskStatus.LEASED)] == [a1.id]
    assert [t.id for t in queue.list(status=["queued", TaskStatus.CANCELLED])] == [b1.id, a2.id]
    assert [t.id for t in queue.list(status="queued", task_type=["b"])] == []
    assert [t.id for t in queue.list(descending=True)] == [a2.id, b1.id, a1.id]


def test_list_pages_with_limit_and_after_id(queue: Queue) -> None:
    ids = [t.id for t in queue.enqueue_many([{"task_type": "t"} for _ in range(7)])]
    page1 = queue.list(limit=3)
    page2 = queue.list(limit=3, after_id=page1[-1].id)
    page3 = queue.list(limit=3, after_id=page2[-1].id)
    assert [t.id for t in page1 + page2 + page3] == ids
    assert len(page3) == 1
    down = queue.list(limit=3, descending=True)
    assert [t.id for t in down] == ids[::-1][:3]
    down2 = queue.list(limit=3, descending=True, after_id=down[-1].id)
    assert [t.id for t in down2] == ids[::-1][3:6]


def test_iter_tasks_visits_every_task_once(queue: Queue) -> None:
    ids = [t.id for t in queue.enqueue_many([{"task_type": "x" if i % 3 else "y"} for i in range(25)])]
    assert [t.id for t in queue.iter_tasks(page_size=4)] == ids
    assert [t.id for t in queue.iter_tasks(task_type="y", page_size=2)] == ids[::3]
    assert [t.id for t in queue.iter_tasks(page_size=10, descending=True)] == ids[::-1]


def test_cancel_a_queued_task_ends_it(queue: Queue) -> None:
    task = queue.enqueue("t")
    cancelled = queue.cancel(task.id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.finished_at is not None
    with pytest.raises(InvalidStateError):
        queue.cancel(task.id)


def test_cancel_a_leased_task_only_requests_it(queue: Queue, worker: prismq_queue.Worker) -> None:
    queue.enqueue("t")
    claimed = worker.claim()
    assert claimed is not None
    after = queue.cancel(claimed.id)
    assert after.status is TaskStatus.LEASED
    assert after.cancel_requested is True


def test_retry_requeues_failed_and_cancelled_tasks(queue: Queue, worker: prismq_queue.Worker) -> None:
    t1 = queue.enqueue("t", max_attempts=1)
    claimed = worker.claim()
    assert claimed is not None and claimed.id == t1.id
    failed = worker.fail(claimed, "boom")
    assert failed.status is TaskStatus.FAILED
    again = queue.retry(t1.id)
    assert again.status is TaskStatus.QUEUED
    assert again.attempts == 0
    with pytest.raises(InvalidStateError):
        queue.retry(t1.id)

    t2 = queue.enqueue("t")
    queue.cancel(t2.id)
    assert queue.retry(t2.id).status is TaskStatus.QUEUED


def test_stats_count_by_status_and_type(queue: Queue, make_worker: MakeWorker) -> None:
    empty = queue.stats()
    assert empty.total == 0 and empty.oldest_queued_at is None
    first = queue.enqueue("a")
    queue.enqueue("a")
    b = queue.enqueue("b")
    queue.cancel(b.id)
    make_worker("w1")
    stats = queue.stats()
    assert stats.total == 3
    assert stats.by_status.get("queued") == 2
    assert stats.by_status.get("cancelled") == 1
    assert stats.by_type["a"].get("queued") == 2
    assert stats.by_type["b"].get("cancelled") == 1
    assert stats.oldest_queued_at == first.created_at or stats.oldest_queued_at == first.run_after
    assert stats.workers == 1


def test_sweep_with_nothing_expired_changes_nothing(queue: Queue) -> None:
    queue.enqueue("t")
    result = queue.sweep()
    assert (result.requeued, result.failed, result.cancelled) == (0, 0, 0)
    assert queue.stats().by_status.get("queued") == 1


def test_log_and_logs_round_trip_in_order(queue: Queue) -> None:
    task = queue.enqueue("t")
    queue.log(task.id, "started")
    queue.log(task.id, "half way", level="warning", details={"pct": 50})
    queue.log(task.id, "done", level="error")
    logs = queue.logs(task.id)
    mine = [e for e in logs if e.message in ("started", "half way", "done")]
    assert [e.message for e in mine] == ["started", "half way", "done"]
    assert [e.level for e in mine] == ["info", "warning", "error"]
    assert mine[1].details == {"pct": 50}
    assert mine[0].details is None
    assert all(e.task_id == task.id and _aware_utc(e.at) for e in mine)
    assert len(queue.logs(task.id, limit=2)) == 2
    other = queue.enqueue("t")
    assert all(e.message not in ("started", "done") for e in queue.logs(other.id))


def test_workers_lists_registered_workers(queue: Queue) -> None:
    cfg = WorkerConfig(
        worker_id="wk-1", capabilities={"region": "eu"}, types=["a", "b"], scheduling_strategy="fifo"
    )
    with queue.worker(cfg) as w:
        assert w.worker_id == "wk-1"
        infos = {i.worker_id: i for i in queue.workers()}
        info = infos["wk-1"]
        assert info.pid == os.getpid()
        assert info.host
        assert info.capabilities == {"region": "eu"}
        assert sorted(info.types) == ["a", "b"]
        assert info.strategy == "fifo"
        assert info.stopped_at is None
        assert _aware_utc(info.heartbeat_at)
    stopped = {i.worker_id: i for i in queue.workers()}["wk-1"]
    assert stopped.stopped_at is not None


def test_data_survives_reopening(tmp_path: Path) -> None:
    db = tmp_path / "persist.db"
    with Queue(db) as q1:
        task = q1.enqueue("t", {"keep": True})
    with Queue(db) as q2:
        again = q2.get(task.id)
        assert again.payload == {"keep": True}
        assert again.created_at == task.created_at


def test_two_handles_on_one_file_see_each_other(make_queue: MakeQueue) -> None:
    q1 = make_queue("shared.db")
    q2 = make_queue("shared.db")
    task = q1.enqueue("t")
    assert q2.get(task.id).id == task.id


def test_close_is_idempotent_and_later_calls_raise(make_queue: MakeQueue) -> None:
    q = make_queue()
    task = q.enqueue("t")
    assert not q.closed
    q.close()
    q.close()
    assert q.closed
    with pytest.raises(QueueClosedError):
        q.get(task.id)


def test_context_manager_closes(tmp_path: Path) -> None:
    with Queue(tmp_path / "cm.db") as q:
        q.enqueue("t")
    assert q.closed
    with pytest.raises(QueueClosedError):
        q.stats()


def test_default_path_is_an_absolute_database_path() -> None:
    path = prismq_queue.default_path()
    assert path.endswith(".db")
    assert Path(path).is_absolute()


def test_to_dict_is_json_friendly(queue: Queue) -> None:
    import json

    task = queue.enqueue("t", {"a": 1})
    d = json.loads(json.dumps(task.to_dict()))
    assert d["status"] == "queued" and d["payload"] == {"a": 1} and d["created"] is True
    assert datetime.fromisoformat(d["created_at"]) == task.created_at


def test_task_from_json_sets_every_field_like_the_constructor(queue: Queue) -> None:
    import dataclasses

    task = queue.enqueue("t", {"a": 1}, delay=1)
    names = {f.name for f in dataclasses.fields(prismq_queue.Task)}
    assert set(vars(task)) == names
    rebuilt = prismq_queue.Task(**{n: getattr(task, n) for n in names})
    assert rebuilt == task
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.priority = 1  # type: ignore[misc]


def test_millisecond_timestamps_convert_exactly() -> None:
    from prismq_queue.models import _ms_to_dt

    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for ms in (0, 1, 999, 1_796_057_827_314, 4_102_444_799_999, -1, -86_400_001):
        assert _ms_to_dt(ms) == epoch + timedelta(milliseconds=ms)
        assert _ms_to_dt(ms).utcoffset() == timedelta(0)


def test_env_db_path_set_after_the_library_loaded_is_used(tmp_path, monkeypatch):
    import prismq_queue
    from prismq_queue import _lib

    _lib.load()  # the Go runtime copies the environment now
    target = tmp_path / "from-env" / "q.db"
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(target))
    assert prismq_queue.default_path() == str(target)
    with prismq_queue.Queue() as q:
        assert q.path == str(target)
    assert target.exists()
