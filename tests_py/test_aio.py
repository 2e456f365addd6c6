"""AsyncQueue / AsyncWorker: round trips, and blocking calls never run on the event-loop thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from prismq_queue import (
    AsyncQueue,
    AsyncWorker,
    LeaseLostError,
    QueueClosedError,
    TaskNotFoundError,
    TaskStatus,
    Worker,
    WorkerConfig,
)
from prismq_queue.queue import Queue


def test_async_round_trip(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncQueue(tmp_path / "aio.db", disable_sweeper=True) as q:
            assert Path(q.queue.path).name == "aio.db"
            task = await q.enqueue("email.send", {"to": "x"}, priority=5)
            assert task.created is True
            many = await q.enqueue_many([{"task_type": "b"}, {"task_type": "b"}])
            assert len(many) == 2
            assert (await q.get(task.id)).payload == {"to": "x"}
            assert [t.id for t in await q.list(task_type="b")] == [t.id for t in many]
            assert [t.id async for t in q.iter_tasks(page_size=1)] == [task.id] + [t.id for t in many]
            await q.log(task.id, "hello", details={"k": 1})
            assert [e.message for e in await q.logs(task.id)][-1] == "hello"

            async with await q.worker(WorkerConfig(worker_id="aw")) as w:
                assert w.strategy.value == "priority"
                claimed = await w.claim(timeout=1.0)
                assert claimed is not None and claimed.id == task.id
                await w.progress(claimed, percent=50, message="half")
                info = await w.renew(claimed, 30)
                assert info.cancel_requested is False
                assert await w.heartbeat() == []
                await w.complete(claimed, {"sent": True})
                rest = await w.claim_many(5)
                assert {t.id for t in rest} == {t.id for t in many}
                failed = await w.fail(rest[0], "nope", retryable=False)
                assert failed.status is TaskStatus.FAILED
                await w.release(rest[1])
                await w.set_strategy("lifo")
                assert w.strategy.value == "lifo"
                again = await w.claim()
                assert again is not None
                results = await w.ack_many([{"task": again, "op": "complete", "result": 1}])
                assert results[0].ok
                assert any(i.worker_id == "aw" for i in await q.workers())

            done = await q.get(task.id)
            assert done.status is TaskStatus.COMPLETED and done.result == {"sent": True}
            assert (await q.retry(failed.id)).status is TaskStatus.QUEUED
            assert (await q.cancel(failed.id)).status is TaskStatus.CANCELLED
            stats = await q.stats()
            assert stats.total == 3
            assert (await q.sweep()).requeued == 0
            assert (await q.info())["schema_version"] >= 1
            with pytest.raises(TaskNotFoundError):
                await q.get(10_000)
        assert q.closed
        with pytest.raises(QueueClosedError):
            await q.get(task.id)

    asyncio.run(main())


def test_async_ack_and_claim(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncQueue(tmp_path / "ac.db", disable_sweeper=True) as q:
            a, b = await q.enqueue_many([{"task_type": "t"}, {"task_type": "t"}])
            async with await q.worker(WorkerConfig(worker_id="aw")) as w:
                first = await w.ack_and_claim([], 1)
                assert first.acks == [] and [t.id for t in first.tasks] == [a.id]
                second = await w.ack_and_claim(
                    [
                        {"task": first.tasks[0], "op": "complete", "result": 1},
                        {"task": b.id, "lease_token": 99, "op": "complete"},
                    ],
                    5,
                )
                assert second.acks[0].ok and isinstance(second.acks[1].error, LeaseLostError)
                assert [t.id for t in second.tasks] == [b.id]
                last = await w.ack_and_claim([{"task": second.tasks[0], "op": "complete"}], 5)
                assert [r.ok for r in last.acks] == [True] and last.tasks == []
            assert [(await q.get(i)).status for i in (a.id, b.id)] == [TaskStatus.COMPLETED] * 2

    asyncio.run(main())


def test_blocking_calls_run_off_the_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, int] = {}
    real_get = Queue.get
    real_claim = Worker.claim_many

    def spy_get(self: Queue, task_id: int) -> Any:
        seen["get"] = threading.get_ident()
        return real_get(self, task_id)

    def spy_claim(self: Worker, max_tasks: int, timeout: Any = 0.0) -> Any:
        seen["claim"] = threading.get_ident()
        return real_claim(self, max_tasks, timeout)

    monkeypatch.setattr(Queue, "get", spy_get)
    monkeypatch.setattr(Worker, "claim_many", spy_claim)

    async def main() -> int:
        async with AsyncQueue(tmp_path / "t.db") as q:
            task = await q.enqueue("t")
            await q.get(task.id)
            async with AsyncWorker(q, WorkerConfig(worker_id="w")) as w:
                await w.claim()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert set(seen) == {"get", "claim"}
    assert seen["get"] != loop_thread
    assert seen["claim"] != loop_thread


def test_the_loop_keeps_running_during_a_blocking_claim(tmp_path: Path) -> None:
    async def main() -> tuple[int, float]:
        async with AsyncQueue(tmp_path / "tick.db") as q, await q.worker(WorkerConfig(worker_id="w")) as w:
            ticks = 0
            stop = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0.01)

            t = asyncio.create_task(ticker())
            loop = asyncio.get_running_loop()
            started = loop.time()
            got = await w.claim(timeout=0.3)  # nothing queued: waits the whole 0.3 s in the library
            waited = loop.time() - started
            during = ticks
            stop.set()
            await t
            assert got is None
            return during, waited

    during, waited = asyncio.run(main())
    assert waited >= 0.25  # the claim really waited
    assert during >= 5  # a blocked loop would not have ticked at all


def test_cancelled_async_claim_does_not_strand_a_task(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncQueue(tmp_path / "c.db", disable_sweeper=True) as q:
            w = await q.worker(WorkerConfig(worker_id="abandoning", lease_duration_seconds=600))
            pending = asyncio.create_task(w.claim(timeout=3))
            await asyncio.sleep(0.1)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            task = await q.enqueue("t")
            other = await q.worker(WorkerConfig(worker_id="other"))
            got = await other.claim(timeout=5)
            assert got is not None and got.id == task.id
            await other.complete(got)
            await other.close()
            await w.close()

    asyncio.run(main())


def test_from_queue_leaves_the_queue_open_by_default(tmp_path: Path) -> None:
    with Queue(tmp_path / "f.db") as sync_q:

        async def main() -> None:
            aq = AsyncQueue.from_queue(sync_q)
            task = await aq.enqueue("t")
            assert (await aq.get(task.id)).id == task.id
            await aq.close()
            await aq.close()
            with pytest.raises(QueueClosedError):
                await aq.stats()

        asyncio.run(main())
        assert not sync_q.closed
        assert sync_q.stats().total == 1


def test_async_worker_on_a_sync_queue(tmp_path: Path) -> None:
    with Queue(tmp_path / "s.db") as sync_q:
        sync_q.enqueue("t")

        async def main() -> None:
            async with AsyncWorker(sync_q, WorkerConfig(worker_id="w")) as w:
                got = await w.claim()
                assert got is not None
                await w.complete(got, "ok")
            with pytest.raises(QueueClosedError):
                await w.claim()

        asyncio.run(main())
        assert sync_q.stats().by_status.get("completed") == 1
