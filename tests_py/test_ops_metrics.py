"""Queue.metrics() and Queue.metrics_text() on a prepared workload."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from prismq_queue import AsyncQueue, InvalidArgumentError, Metrics, Queue, Worker, WorkerConfig
from prismq_queue.ops import Percentiles


def _prepare(queue: Queue, worker: Worker) -> None:
    """email: 3 at priority 10 and 1 at 100; report: 2 at 100. Then: complete 2 emails, fail one
    email for good, fail one report with a retry (requeued), cancel nothing. Result:
    email completed 2, failed 1, queued 1; report queued 2 (one of them retried once)."""
    for _ in range(3):
        queue.enqueue("email", priority=10)
    queue.enqueue("email")
    queue.enqueue("report")
    queue.enqueue("report", max_attempts=3)
    tasks = worker.claim_many(4)
    assert [t.id for t in tasks] == [1, 2, 3, 4]  # priority 10 first, then by id
    worker.complete(tasks[0])
    worker.complete(tasks[1])
    worker.fail(tasks[2], "smtp down", retryable=False)
    worker.release(tasks[3])
    t5 = worker.claim_many(2)
    assert [t.id for t in t5] == [4, 5]
    worker.release(t5[0])
    worker.fail(t5[1], "try later", retryable=True)


def test_metrics_match_hand_computed_values(queue: Queue, make_worker: object) -> None:
    w = make_worker("w1", lease_duration_seconds=30)  # type: ignore[operator]
    _prepare(queue, w)
    m = queue.metrics()
    assert isinstance(m, Metrics)
    assert m.total == 6
    assert m.by_status == {"queued": 3, "leased": 0, "completed": 2, "failed": 1, "cancelled": 0}
    assert m.by_type == {"email": {"completed": 2, "failed": 1, "queued": 1}, "report": {"queued": 2}}
    assert m.by_priority == {10: {"completed": 2, "failed": 1}, 100: {"queued": 3}}
    assert sorted((r.status.value, r.type, r.priority, r.count) for r in m.depth) == [
        ("completed", "email", 10, 2),
        ("failed", "email", 10, 1),
        ("queued", "email", 100, 1),
        ("queued", "report", 100, 2),
    ]
    tp = m.throughput
    assert (tp.completed, tp.failed, tp.cancelled) == (2, 1, 0)
    assert tp.by_type["email"].completed == 2 and "report" not in tp.by_type
    assert tp.failure_rate == pytest.approx(1 / 3)
    assert tp.window_seconds == tp.span_seconds == 60
    assert tp.per_second == pytest.approx(3 / 60)
    assert (m.totals.completed, m.totals.failed, m.totals.cancelled, m.totals.retried) == (2, 1, 0, 1)
    assert m.totals_by_type["report"].retried == 1 and m.totals_by_type["email"].retried == 0
    assert m.latency["email"].wait.count == 3 and m.latency["email"].run.count == 3
    assert "report" not in m.latency  # nothing of it finished
    assert m.latency_all.run.count == 3
    lat = m.latency["email"].wait
    assert 0 <= lat.p50 <= lat.p95 <= lat.p99 < 5
    assert m.dead_letters == 1
    assert [(f.task_id, f.error) for f in m.recent_failures] == [(3, "smtp down")]
    assert m.oldest_eligible is not None and m.oldest_eligible.task_id == 4
    assert m.expired_leases == 0
    assert [(x.worker_id, x.state, x.running, x.strategy.value) for x in m.workers] == [  # type: ignore[union-attr]
        ("w1", "active", 0, "priority")
    ]
    assert m.workers_by_state == {"active": 1, "stale": 0, "gone": 0}
    assert m.busy_retries >= 0 and m.duration_seconds >= 0


def test_metrics_text_is_prometheus_exposition(queue: Queue, make_worker: object) -> None:
    _prepare(queue, make_worker("w1"))  # type: ignore[operator]
    text = queue.metrics_text()
    assert 'prismq_tasks{status="completed",type="email"} 2\n' in text
    assert 'prismq_task_retries_total{type="report"} 1\n' in text
    assert 'prismq_window_tasks{status="failed",type="email"} 1\n' in text
    assert 'prismq_workers{state="active"} 1\n' in text
    assert "prismq_dead_letter_tasks 1\n" in text
    assert re.search(r'^prismq_task_run_seconds\{type="email",quantile="0\.95"\} [0-9.e+-]+$', text, re.M)
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{.*\})? -?[0-9.e+-]+", line), line


def test_metrics_options_are_checked(queue: Queue) -> None:
    with pytest.raises(InvalidArgumentError):
        queue.metrics(0)
    with pytest.raises(InvalidArgumentError):
        queue.metrics(10 * 86400)
    with pytest.raises(InvalidArgumentError):
        queue.metrics(sample_limit=0)
    m = queue.metrics(5, sample_limit=1, recent_failures=0)
    assert m.total == 0 and m.oldest_eligible is None and m.throughput.failure_rate is None
    assert m.latency_all.wait == Percentiles(0, 0.0, 0.0, 0.0, 0.0)


def test_async_queue_serves_metrics_for_an_endpoint(tmp_path: Path) -> None:
    async def main() -> tuple[str, int]:
        async with AsyncQueue(tmp_path / "a.db") as aq:
            await aq.enqueue("job")
            text = await aq.metrics_text()
            m = await aq.metrics()
            return text, m.total

    text, total = asyncio.run(main())
    assert total == 1
    assert 'prismq_tasks{status="queued",type="job"} 1' in text


def test_a_stale_worker_shows_as_stale(queue: Queue) -> None:
    w = Worker(queue, WorkerConfig(worker_id="slow", lease_duration_seconds=0.2))
    try:
        queue.enqueue("job")
        assert w.claim() is not None
        deadline = 50
        m = queue.metrics()
        while m.workers[0].state == "active" and deadline:
            import time

            time.sleep(0.05)
            deadline -= 1
            m = queue.metrics()
        assert m.workers[0].state == "stale"
        assert m.workers[0].running == 1 and m.workers[0].heartbeat_age_seconds > 0.2
    finally:
        w.close()
