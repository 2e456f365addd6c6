"""Worker operations: claim, settle, leases and fencing, strategies, cross-process claims."""

from __future__ import annotations

import ctypes
import multiprocessing
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from prismq_queue import (
    AckAndClaimResult,
    InvalidArgumentError,
    LeaseLostError,
    Queue,
    QueueClosedError,
    RetryConfig,
    SchedulingStrategy,
    Task,
    TaskStatus,
    Worker,
    WorkerConfig,
    _lib,
)

MakeQueue = Callable[..., Queue]
MakeWorker = Callable[..., Worker]

FAST_RETRY = RetryConfig(base_seconds=0.001, cap_seconds=0.001, jitter=0)


def _claim(w: Worker) -> Task:
    task = w.claim()
    assert task is not None, "expected a task to claim"
    return task


def test_claim_leases_the_task_to_the_worker(queue: Queue, worker: Worker) -> None:
    queued = queue.enqueue("t", {"x": 1})
    task = _claim(worker)
    assert task.id == queued.id
    assert task.status is TaskStatus.LEASED
    assert task.lease_owner == "w1"
    assert task.lease_token > 0
    assert task.attempts == 1
    assert task.payload == {"x": 1}
    assert task.lease_expires_at is not None
    assert task.lease_expires_at > datetime.now(timezone.utc) + timedelta(seconds=30)
    assert task.claimed_at is not None
    assert worker.claim() is None


def test_claim_on_an_empty_queue_returns_none(worker: Worker) -> None:
    assert worker.claim() is None
    assert worker.claim_many(5) == []


def test_claim_many_returns_up_to_max_tasks(queue: Queue, worker: Worker) -> None:
    queue.enqueue_many([{"task_type": "t"} for _ in range(5)])
    first = worker.claim_many(3)
    second = worker.claim_many(3)
    assert len(first) == 3 and len(second) == 2
    assert len({t.id for t in first + second}) == 5
    assert all(t.status is TaskStatus.LEASED for t in first + second)


def test_a_leased_task_is_not_claimed_by_another_worker(queue: Queue, make_worker: MakeWorker) -> None:
    queue.enqueue("t")
    a, b = make_worker("a"), make_worker("b")
    assert a.claim() is not None
    assert b.claim() is None


def test_complete_stores_the_result(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t")
    task = _claim(worker)
    worker.complete(task, {"answer": 42, "list": [1, "two"]})
    done = queue.get(task.id)
    assert done.status is TaskStatus.COMPLETED
    assert done.result == {"answer": 42, "list": [1, "two"]}
    assert done.finished_at is not None
    assert done.lease_expires_at is None


def test_complete_accepts_any_json_value_or_none(queue: Queue, worker: Worker) -> None:
    queue.enqueue_many([{"task_type": "t"} for _ in range(3)])
    t1, t2, t3 = worker.claim_many(3)
    worker.complete(t1)
    worker.complete(t2, [1, 2, 3])
    worker.complete(t3, "text")
    assert queue.get(t1.id).result is None
    assert queue.get(t2.id).result == [1, 2, 3]
    assert queue.get(t3.id).result == "text"


def test_completing_twice_is_a_lost_lease(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t")
    task = _claim(worker)
    worker.complete(task)
    with pytest.raises(LeaseLostError):
        worker.complete(task)


def test_settling_by_id_needs_the_lease_token(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t")
    task = _claim(worker)
    with pytest.raises(InvalidArgumentError):
        worker.complete(task.id)
    with pytest.raises(LeaseLostError):
        worker.complete(task.id, lease_token=task.lease_token + 1)
    worker.complete(task.id, "ok", lease_token=task.lease_token)
    assert queue.get(task.id).result == "ok"


def test_retryable_failure_requeues_with_backoff(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t", retry=RetryConfig(base_seconds=60, cap_seconds=120, jitter=0))
    task = _claim(worker)
    after = worker.fail(task, "temporary glitch")
    assert after.status is TaskStatus.QUEUED
    assert after.attempts == 1
    assert after.last_error is not None and "temporary glitch" in after.last_error
    assert after.run_after >= datetime.now(timezone.utc) + timedelta(seconds=50)
    assert worker.claim() is None  # not eligible before run_after


def test_failure_from_an_exception_records_its_type(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t")
    task = _claim(worker)
    after = worker.fail(task, KeyError("missing"), retryable=False)
    assert after.status is TaskStatus.FAILED
    assert after.last_error is not None and "KeyError" in after.last_error
    assert after.finished_at is not None


def test_failure_ends_the_task_when_attempts_are_exhausted(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t", max_attempts=2, retry=FAST_RETRY)
    first = _claim(worker)
    assert worker.fail(first, "1").status is TaskStatus.QUEUED
    second = worker.claim(timeout=2.0)
    assert second is not None and second.attempts == 2
    assert worker.fail(second, "2").status is TaskStatus.FAILED


def test_renew_extends_the_lease(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t")
    task = _claim(worker)
    assert task.lease_expires_at is not None
    info = worker.renew(task, lease_seconds=600)
    assert info.cancel_requested is False
    assert info.lease_expires_at > task.lease_expires_at + timedelta(seconds=400)
    assert queue.get(task.id).lease_expires_at == info.lease_expires_at
    short = worker.renew(task, timedelta(seconds=5))
    assert short.lease_expires_at < info.lease_expires_at
    default = worker.renew(task)
    assert default.lease_expires_at > short.lease_expires_at + timedelta(seconds=30)


def test_progress_is_recorded_and_renews_the_lease(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t")
    task = _claim(worker)
    worker.renew(task, lease_seconds=5)
    info = worker.progress(task, percent=42.5, current=17, total=40, message="crunching")
    assert info.lease_expires_at > datetime.now(timezone.utc) + timedelta(seconds=30)
    got = queue.get(task.id)
    assert got.progress_percent == 42.5
    assert got.progress_current == 17
    assert got.progress_total == 40
    assert got.progress_message == "crunching"


def test_heartbeat_reports_cancel_requests_and_ack_cancel_ends_the_task(queue: Queue, worker: Worker) -> None:
    queue.enqueue_many([{"task_type": "t"}, {"task_type": "t"}])
    t1, t2 = worker.claim_many(2)
    assert worker.heartbeat() == []
    queue.cancel(t2.id)
    assert worker.heartbeat() == [t2.id]
    assert worker.renew(t2).cancel_requested is True
    assert worker.progress(t1, percent=1).cancel_requested is False
    worker.ack_cancel(t2)
    assert queue.get(t2.id).status is TaskStatus.CANCELLED
    assert worker.heartbeat() == []


def test_heartbeat_renews_every_held_lease(queue: Queue, worker: Worker) -> None:
    queue.enqueue("t")
    task = _claim(worker)
    short = worker.renew(task, lease_seconds=2)
    worker.heartbeat()
    renewed = queue.get(task.id).lease_expires_at
    assert renewed is not None and renewed > short.lease_expires_at + timedelta(seconds=30)


def test_release_gives_the_task_back_without_counting_the_attempt(
    queue: Queue, make_worker: MakeWorker
) -> None:
    queue.enqueue("t")
    a, b = make_worker("a"), make_worker("b")
    task = _claim(a)
    a.release(task)
    released = queue.get(task.id)
    assert released.status is TaskStatus.QUEUED
    assert released.attempts == 0
    again = _claim(b)
    assert again.id == task.id and again.attempts == 1
    assert again.lease_token != task.lease_token
    with pytest.raises(LeaseLostError):
        a.complete(task)


def test_ack_many_settles_each_ack_independently(queue: Queue, worker: Worker) -> None:
    queue.enqueue_many([{"task_type": "t", "max_attempts": 1} for _ in range(5)])
    t_ok, t_fail, t_rel, t_cancel, t_stale = worker.claim_many(5)
    queue.cancel(t_cancel.id)
    results = worker.ack_many(
        [
            {"task": t_ok, "op": "complete", "result": {"n": 1}},
            {"task": t_fail, "op": "fail", "error": "bad", "retryable": False},
            {"task": t_rel.id, "lease_token": t_rel.lease_token, "op": "release"},
            {"task": t_cancel, "op": "cancel"},
            {"task": t_stale.id, "lease_token": t_stale.lease_token + 7, "op": "complete"},
        ]
    )
    assert [r.id for r in results] == [t_ok.id, t_fail.id, t_rel.id, t_cancel.id, t_stale.id]
    assert [r.ok for r in results] == [True, True, True, True, False]
    assert isinstance(results[4].error, LeaseLostError)
    assert queue.get(t_ok.id).result == {"n": 1}
    assert queue.get(t_ok.id).status is TaskStatus.COMPLETED
    assert queue.get(t_fail.id).status is TaskStatus.FAILED
    assert queue.get(t_rel.id).status is TaskStatus.QUEUED
    assert queue.get(t_cancel.id).status is TaskStatus.CANCELLED
    assert queue.get(t_stale.id).status is TaskStatus.LEASED
    assert worker.ack_many([]) == []


def test_ack_and_claim_settles_and_claims_the_next_batch(queue: Queue, worker: Worker) -> None:
    ids = [t.id for t in queue.enqueue_many([{"task_type": "t", "max_attempts": 1} for _ in range(10)])]
    first = worker.ack_and_claim([], 4)
    assert isinstance(first, AckAndClaimResult)
    assert first.acks == []
    assert [t.id for t in first.tasks] == ids[:4]
    assert all(queue.get(t.id).status is TaskStatus.LEASED for t in first.tasks)

    t_ok, t_fail, t_rel, t_stale = first.tasks
    second = worker.ack_and_claim(
        [
            {"task": t_ok, "op": "complete", "result": {"n": 1}},
            {"task": t_fail, "op": "fail", "error": "bad", "retryable": False},
            {"task": t_rel.id, "lease_token": t_rel.lease_token, "op": "release"},
            {"task": t_stale.id, "lease_token": t_stale.lease_token + 7, "op": "complete"},
        ],
        4,
    )
    assert [r.id for r in second.acks] == [t_ok.id, t_fail.id, t_rel.id, t_stale.id]
    assert [r.ok for r in second.acks] == [True, True, True, False]
    assert isinstance(second.acks[3].error, LeaseLostError)
    # The claim runs after the acks in the same transaction: the released task is claimable again.
    assert [t.id for t in second.tasks] == [t_rel.id, *ids[4:7]]
    assert all(t.status is TaskStatus.LEASED and t.lease_owner == "w1" for t in second.tasks)
    assert queue.get(t_ok.id).status is TaskStatus.COMPLETED
    assert queue.get(t_ok.id).result == {"n": 1}
    assert queue.get(t_fail.id).status is TaskStatus.FAILED
    assert queue.get(t_stale.id).status is TaskStatus.LEASED
    for t in second.tasks:
        assert queue.get(t.id).status is TaskStatus.LEASED
        assert queue.get(t.id).lease_token == t.lease_token

    done = [t_stale, *second.tasks]
    third = worker.ack_and_claim([{"task": t, "op": "complete"} for t in done], 10)
    assert all(r.ok for r in third.acks)
    assert [t.id for t in third.tasks] == ids[7:]
    last = worker.ack_and_claim([{"task": t, "op": "complete"} for t in third.tasks], 5)
    assert [r.ok for r in last.acks] == [True, True, True]
    assert last.tasks == []  # nothing left: an empty claim, no wait
    counts = queue.stats().by_status
    assert (counts["completed"], counts["failed"], counts["queued"], counts["leased"]) == (9, 1, 0, 0)


def test_ack_and_claim_rejects_a_bad_max_without_settling_anything(queue: Queue, worker: Worker) -> None:
    queue.enqueue_many([{"task_type": "t"} for _ in range(2)])
    task = _claim(worker)
    ack = [{"task": task, "op": "complete"}]
    for bad in (0, -1, 1001):  # 1001: over the engine's claim limit, refused by the library
        with pytest.raises(InvalidArgumentError):
            worker.ack_and_claim(ack, bad)
    with pytest.raises(InvalidArgumentError):
        worker.ack_and_claim(ack, True)
    assert queue.get(task.id).status is TaskStatus.LEASED
    counts = queue.stats().by_status
    assert (counts["leased"], counts["queued"], counts["completed"]) == (1, 1, 0)
    assert [t.id for t in worker.ack_and_claim(ack, 1000).tasks] == [task.id + 1]


def test_ack_and_claim_native_errors_are_codes_not_panics(queue: Queue, worker: Worker) -> None:
    fn = _lib.FUNCTIONS["pq_ack_and_claim"]
    h = worker._h()
    with pytest.raises(InvalidArgumentError):
        _lib.call_json(fn, h, b"[{not json", 1)
    with pytest.raises(InvalidArgumentError):
        _lib.call_json(fn, h, None, 1)
    with pytest.raises(InvalidArgumentError):
        _lib.call_json(fn, h, b'[{"id":1,"token":1,"op":"complete","extra":1}]', 1)
    with pytest.raises(InvalidArgumentError):
        _lib.call_json(fn, h, b'[{"id":1,"token":1,"op":"fail","error":"\xff"}]', 1)
    with pytest.raises(QueueClosedError):
        _lib.call_json(fn, 0, b"[]", 1)
    with pytest.raises(QueueClosedError):
        _lib.call_json(fn, 987654321, b"[]", 1)
    err = ctypes.c_void_p()
    assert fn(h, b"[]", 1, None, ctypes.byref(err)) == 1  # NULL out_json
    assert err.value
    _lib.FUNCTIONS["pq_free"](err.value)
    # An unknown op is a per-ack error, as in pq_ack_many; the claim still happens.
    queued = queue.enqueue("t")
    out = _lib.call_json(fn, h, b'[{"id":1,"token":1,"op":"explode"}]', 3)
    assert set(out) == {"results", "tasks"}
    assert [r["status"] for r in out["results"]] == [1] and out["results"][0]["error"]
    assert [t["id"] for t in out["tasks"]] == [queued.id]
    assert out["tasks"][0]["lease_token"] > 0


def test_strategies_order_claims_and_can_change_at_run_time(queue: Queue, make_worker: MakeWorker) -> None:
    low = queue.enqueue("t", priority=50)
    old = queue.enqueue("t", priority=200)
    urgent = queue.enqueue("t", priority=1)
    new = queue.enqueue("t", priority=200)
    w = make_worker("s", scheduling_strategy="fifo")
    assert w.strategy is SchedulingStrategy.FIFO
    assert _claim(w).id == low.id  # oldest
    w.set_strategy(SchedulingStrategy.LIFO)
    assert w.strategy is SchedulingStrategy.LIFO
    assert _claim(w).id == new.id  # newest
    w.set_strategy("priority")
    assert w.strategy is SchedulingStrategy.PRIORITY
    assert _claim(w).id == urgent.id  # lowest number
    w.set_strategy("weighted_random")
    assert _claim(w).id == old.id  # the only one left


def test_priority_strategy_is_fifo_within_a_level(queue: Queue, worker: Worker) -> None:
    ids = [t.id for t in queue.enqueue_many([{"task_type": "t", "priority": 7} for _ in range(4)])]
    assert [_claim(worker).id for _ in ids] == ids


def test_requirements_are_matched_against_capabilities(queue: Queue, make_worker: MakeWorker) -> None:
    needs_us = queue.enqueue("job", requirements={"region": "us"})
    eu = make_worker("eu", capabilities={"region": "eu"})
    assert eu.claim() is None
    multi = make_worker("multi", capabilities={"region": ["eu", "us"]})
    got = multi.claim()
    assert got is not None and got.id == needs_us.id


def test_types_filter_claims(queue: Queue, make_worker: MakeWorker) -> None:
    queue.enqueue("b")
    a_task = queue.enqueue("a")
    only_a = make_worker("only-a", types=["a"])
    got = only_a.claim()
    assert got is not None and got.id == a_task.id
    assert only_a.claim() is None


def test_fencing_a_worker_whose_lease_expired_cannot_complete(make_queue: MakeQueue) -> None:
    q = make_queue(disable_sweeper=True, default_lease_seconds=30, retry=FAST_RETRY)
    q.enqueue("t")
    slow = Worker(q, WorkerConfig(worker_id="slow"))
    fast = Worker(q, WorkerConfig(worker_id="fast"))
    first = _claim(slow)
    slow.renew(first, lease_seconds=0.001)  # let the lease lapse at once instead of waiting 30 s
    deadline = time.monotonic() + 5
    while q.sweep().requeued == 0:
        assert time.monotonic() < deadline, "the sweeper never requeued the expired lease"
        time.sleep(0.005)
    requeued = q.get(first.id)
    assert requeued.status is TaskStatus.QUEUED
    assert requeued.last_error is not None
    second = fast.claim(timeout=5)
    assert second is not None and second.id == first.id
    assert second.lease_token != first.lease_token
    assert second.attempts == 2
    with pytest.raises(LeaseLostError):
        slow.complete(first, "late")
    with pytest.raises(LeaseLostError):
        slow.fail(first, "late")
    with pytest.raises(LeaseLostError):
        slow.renew(first)
    with pytest.raises(LeaseLostError):
        slow.progress(first, percent=10)
    fast.complete(second, "on time")
    done = q.get(first.id)
    assert done.status is TaskStatus.COMPLETED and done.result == "on time"


def test_sweep_fails_an_expired_task_without_attempts_left(make_queue: MakeQueue) -> None:
    q = make_queue(disable_sweeper=True)
    q.enqueue("t", max_attempts=1)
    w = Worker(q, WorkerConfig(worker_id="w"))
    task = _claim(w)
    w.renew(task, lease_seconds=0.001)
    deadline = time.monotonic() + 5
    while True:
        result = q.sweep()
        if result.failed:
            break
        assert result.requeued == 0
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert q.get(task.id).status is TaskStatus.FAILED


def test_a_waiting_claim_wakes_up_for_a_new_task(queue: Queue, worker: Worker) -> None:
    got: list[Task | None] = []
    waiting = threading.Thread(target=lambda: got.append(worker.claim(timeout=10)))
    waiting.start()
    task = queue.enqueue("t")
    waiting.join(timeout=15)
    assert not waiting.is_alive()
    assert got and got[0] is not None and got[0].id == task.id


def test_closing_the_queue_ends_a_waiting_claim(make_queue: MakeQueue) -> None:
    q = make_queue()
    w = Worker(q, WorkerConfig(worker_id="w"))
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            w.claim(timeout=30)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.1)  # unavoidable: let the claim start waiting inside the library
    q.close()
    t.join(timeout=10)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], QueueClosedError)
    assert w.closed


def test_worker_close_is_idempotent(queue: Queue) -> None:
    w = Worker(queue, WorkerConfig(worker_id="c"))
    w.close()
    w.close()
    assert w.closed
    with pytest.raises(QueueClosedError):
        w.claim()


def test_worker_context_manager_stops_the_worker(queue: Queue) -> None:
    with queue.worker(WorkerConfig(worker_id="ctx")) as w:
        assert not w.closed
    assert w.closed
    info = {i.worker_id: i for i in queue.workers()}["ctx"]
    assert info.stopped_at is not None


def _claim_all_in_child(db: str, worker_id: str, out: multiprocessing.Queue[list[int]]) -> None:
    q = Queue(db)
    try:
        w = Worker(q, WorkerConfig(worker_id=worker_id))
        got: list[int] = []
        while True:
            batch = w.claim_many(7, timeout=0.2)
            if not batch:
                break
            for t in batch:
                w.complete(t, worker_id)
                got.append(t.id)
        out.put(got)
    finally:
        q.close()


def test_each_task_is_claimed_once_across_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "mp.db")
    with Queue(db) as q:
        ids = {t.id for t in q.enqueue_many([{"task_type": "t"} for _ in range(300)])}
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[int]] = ctx.Queue()
    procs = [ctx.Process(target=_claim_all_in_child, args=(db, f"p{i}", results)) for i in range(3)]
    for p in procs:
        p.start()
    claimed: list[int] = []
    for _ in procs:
        claimed.extend(results.get(timeout=120))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(claimed) == len(set(claimed)), "a task was claimed twice"
    assert set(claimed) == ids
    with Queue(db) as q:
        assert q.stats().by_status.get("completed") == 300
