"""The run loop: handlers, progress, cancellation, retries and graceful shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from prismq_queue import (
    HandlerRegistry,
    InvalidArgumentError,
    Queue,
    RetryConfig,
    RunSummary,
    TaskContext,
    TaskStatus,
    Worker,
    WorkerConfig,
    handlers,
    run_worker,
    task,
)

DEADLINE = 30.0


def wait_for(condition: Callable[[], bool], timeout: float = DEADLINE, what: str = "condition") -> None:
    """Poll ``condition`` until it is true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Running:
    """run_worker on a background thread, stopped through its stop_event."""

    def __init__(self, q: Queue, config: WorkerConfig, registry: HandlerRegistry, **options: Any) -> None:
        self.stop = threading.Event()
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None

        def body() -> None:
            try:
                self.summary = run_worker(
                    q, config, registry, stop_event=self.stop, install_signal_handlers=False, **options
                )
            except BaseException as exc:  # reported by join()
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def join(self, stop: bool = True) -> RunSummary:
        if stop:
            self.stop.set()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "run_worker did not return"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


@pytest.fixture
def q(make_queue: Callable[..., Queue]) -> Queue:
    return make_queue(sweep_interval_seconds=0.05)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        r.stop.set()
        r.thread.join(DEADLINE)


def config(worker_id: str = "w1", **options: Any) -> WorkerConfig:
    options.setdefault("poll_interval_seconds", 0.05)
    return WorkerConfig(worker_id=worker_id, **options)


def test_sync_and_async_handlers_complete_with_their_results(q: Queue) -> None:
    reg = HandlerRegistry()

    @reg.task("add")
    def add(ctx: TaskContext) -> dict[str, int]:
        return {"sum": ctx.payload["a"] + ctx.payload["b"]}

    @reg.task("mul")
    async def mul(ctx: TaskContext) -> dict[str, int]:
        await asyncio.sleep(0.001)
        return {"product": ctx.payload["a"] * ctx.payload["b"]}

    adds = [q.enqueue("add", {"a": i, "b": 1}) for i in range(30)]
    muls = [q.enqueue("mul", {"a": i, "b": 3}) for i in range(30)]
    summary = run_worker(q, config(concurrency=4), reg, max_tasks=60, install_signal_handlers=False)

    assert summary.completed == 60
    assert (summary.failed, summary.cancelled, summary.released) == (0, 0, 0)
    for i, t in enumerate(adds):
        got = q.get(t.id)
        assert got.status is TaskStatus.COMPLETED
        assert got.result == {"sum": i + 1}
        assert got.attempts == 1
    for i, t in enumerate(muls):
        got = q.get(t.id)
        assert got.status is TaskStatus.COMPLETED
        assert got.result == {"product": i * 3}


def test_worker_run_method_runs_the_default_registry(q: Queue) -> None:
    @task("test.default-registry")
    def handler(ctx: TaskContext) -> str:
        return f"hello {ctx.payload['name']} from {ctx.worker_id}"

    try:
        t = q.enqueue("test.default-registry", {"name": "ada"})
        with Worker(q, config("runner-w")) as w:
            summary = w.run(max_tasks=1, install_signal_handlers=False)
        assert summary.completed == 1
        assert q.get(t.id).result == "hello ada from runner-w"
    finally:
        handlers.unregister("test.default-registry")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_progress_reported_by_a_handler_is_visible_while_it_runs(
    q: Queue, running: list[Running], kind: str
) -> None:
    reg = HandlerRegistry()
    release = threading.Event()

    if kind == "sync":

        @reg.task("job")
        def job(ctx: TaskContext) -> str:
            ctx.progress(percent=40.0, current=4, total=10, message="four of ten")
            ctx.log("working", details={"step": 4})
            release.wait(DEADLINE)
            return "done"

    else:

        @reg.task("job")
        async def ajob(ctx: TaskContext) -> str:
            ctx.progress(percent=40.0, current=4, total=10, message="four of ten")
            ctx.log("working", details={"step": 4})
            while not release.is_set():
                await asyncio.sleep(0.01)
            return "done"

    t = q.enqueue("job")
    r = Running(q, config(), reg)
    running.append(r)
    wait_for(lambda: q.get(t.id).progress_percent == 40.0, what="progress")
    seen = q.get(t.id)
    assert seen.status is TaskStatus.LEASED
    assert (seen.progress_current, seen.progress_total, seen.progress_message) == (4, 10, "four of ten")
    wait_for(lambda: len(q.logs(t.id)) >= 1, what="log entry")
    entry = q.logs(t.id)[-1]
    assert (entry.message, entry.details) == ("working", {"step": 4})
    release.set()
    wait_for(lambda: q.get(t.id).status is TaskStatus.COMPLETED, what="completion")
    assert q.get(t.id).result == "done"
    assert r.join().completed == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cancel_request_stops_a_running_handler_and_the_task_ends_cancelled(
    q: Queue, running: list[Running], kind: str
) -> None:
    reg = HandlerRegistry()
    started = threading.Event()
    stopped = threading.Event()

    if kind == "sync":

        @reg.task("long")
        def long(ctx: TaskContext) -> str:
            started.set()
            try:
                for _ in range(int(DEADLINE * 100)):
                    ctx.raise_if_cancelled()
                    time.sleep(0.01)
                return "ran to the end"
            finally:
                stopped.set()

    else:

        @reg.task("long")
        async def along(ctx: TaskContext) -> str:
            started.set()
            try:
                await asyncio.sleep(DEADLINE)
                return "ran to the end"
            finally:
                stopped.set()

    t = q.enqueue("long")
    # A short lease makes the heartbeat, which delivers the cancel request, frequent.
    r = Running(q, config(lease_duration_seconds=0.6), reg)
    running.append(r)
    assert started.wait(DEADLINE)
    assert q.cancel(t.id).cancel_requested
    assert stopped.wait(DEADLINE), "the handler was not stopped"
    wait_for(lambda: q.get(t.id).status is TaskStatus.CANCELLED, what="cancelled status")
    assert q.get(t.id).result is None
    summary = r.join()
    assert (summary.cancelled, summary.completed) == (1, 0)


def test_failing_handler_is_retried_with_backoff_then_ends_failed(q: Queue) -> None:
    reg = HandlerRegistry()
    seen: list[tuple[int, float]] = []

    @reg.task("flaky")
    def flaky(ctx: TaskContext) -> None:
        seen.append((ctx.task.attempts, time.monotonic()))
        raise ValueError(f"boom on attempt {ctx.task.attempts}")

    retry = RetryConfig(base_seconds=0.1, cap_seconds=0.4, jitter=0.2)
    t = q.enqueue("flaky", retry=retry, max_attempts=10)
    # max_retries=2: attempts 1 and 2 are retried, attempt 3 is final.
    summary = run_worker(q, config(max_retries=2), reg, max_tasks=3, install_signal_handlers=False)

    got = q.get(t.id)
    assert got.status is TaskStatus.FAILED
    assert got.attempts == 3
    assert got.last_error is not None and "boom on attempt 3" in got.last_error
    assert [a for a, _ in seen] == [1, 2, 3]
    # Backoff: base * 2**(attempt-1) minus at most 20% jitter between attempts.
    assert seen[1][1] - seen[0][1] >= 0.1 * 0.8 - 0.01
    assert seen[2][1] - seen[1][1] >= 0.2 * 0.8 - 0.01
    assert summary.failed == 3


def test_task_of_a_type_without_handler_fails_without_retry(q: Queue) -> None:
    reg = HandlerRegistry()
    reg.register("known", lambda ctx: None)
    t = q.enqueue("unknown", max_attempts=5)
    summary = run_worker(
        q, config(types=["known", "unknown"]), reg, max_tasks=1, install_signal_handlers=False
    )
    got = q.get(t.id)
    assert got.status is TaskStatus.FAILED
    assert got.attempts == 1
    assert got.last_error is not None and "no handler for type 'unknown'" in got.last_error
    assert summary.failed == 1


def test_worker_without_types_claims_only_registered_types(q: Queue) -> None:
    reg = HandlerRegistry()
    reg.register("mine", lambda ctx: "ok")
    other = q.enqueue("someone-elses")
    mine = q.enqueue("mine")
    summary = run_worker(q, config(), reg, idle_exit_seconds=0.3, install_signal_handlers=False)
    assert summary.completed == 1
    assert q.get(mine.id).status is TaskStatus.COMPLETED
    assert q.get(other.id).status is TaskStatus.QUEUED


def test_result_that_is_not_json_fails_only_its_own_task(q: Queue) -> None:
    reg = HandlerRegistry()

    @reg.task("bad")
    def bad(ctx: TaskContext) -> object:
        return object() if ctx.payload["bad"] else {"fine": True}

    tasks = [q.enqueue("bad", {"bad": i == 3}) for i in range(8)]
    run_worker(q, config(concurrency=4), reg, max_tasks=8, install_signal_handlers=False)
    statuses = [q.get(t.id).status for t in tasks]
    assert statuses[3] is TaskStatus.FAILED
    assert "JSON" in (q.get(tasks[3].id).last_error or "")
    assert [s for i, s in enumerate(statuses) if i != 3] == [TaskStatus.COMPLETED] * 7


def test_stop_event_shutdown_loses_no_task(q: Queue, running: list[Running]) -> None:
    reg = HandlerRegistry()

    @reg.task("work")
    def work(ctx: TaskContext) -> int:
        time.sleep(0.01)
        return int(ctx.payload["i"])

    tasks = q.enqueue_many([{"task_type": "work", "payload": {"i": i}} for i in range(400)])
    r = Running(q, config(concurrency=4), reg)
    running.append(r)
    wait_for(lambda: q.stats().by_status.get("completed", 0) >= 50, what="50 completions")
    summary = r.join()

    by_status: dict[TaskStatus, int] = {}
    for t in tasks:
        got = q.get(t.id)
        by_status[got.status] = by_status.get(got.status, 0) + 1
        if got.status is TaskStatus.COMPLETED:
            assert got.result == t.payload["i"]
        else:
            assert got.status is TaskStatus.QUEUED
            assert got.lease_expires_at is None
            assert got.attempts == 0
    assert by_status.get(TaskStatus.COMPLETED, 0) == summary.completed
    assert by_status.get(TaskStatus.COMPLETED, 0) + by_status.get(TaskStatus.QUEUED, 0) == 400
    assert summary.completed < 400, "stopped too late to test anything"


def test_handler_still_running_after_the_grace_period_has_its_task_released(
    q: Queue, running: list[Running]
) -> None:
    reg = HandlerRegistry()
    started = threading.Event()
    unblock = threading.Event()

    @reg.task("stuck")
    def stuck(ctx: TaskContext) -> str:
        started.set()
        unblock.wait(DEADLINE)  # ignores cancellation on purpose
        return "late"

    t = q.enqueue("stuck")
    r = Running(q, config(), reg, grace_seconds=0.2)
    running.append(r)
    assert started.wait(DEADLINE)
    summary = r.join()
    unblock.set()
    assert summary.released == 1
    got = q.get(t.id)
    assert got.status is TaskStatus.QUEUED
    assert got.attempts == 0  # a release does not count the attempt
    assert got.lease_expires_at is None


def test_registry_rejects_bad_registrations_and_detects_async_handlers() -> None:
    reg = HandlerRegistry()

    async def coro(ctx: TaskContext) -> None:
        return None

    reg.register("a", coro)
    reg.register("s", lambda ctx: None)
    assert reg.is_async("a") and not reg.is_async("s")
    assert reg.types() == ["a", "s"] and "a" in reg and len(reg) == 2
    with pytest.raises(InvalidArgumentError):
        reg.register("", lambda ctx: None)
    with pytest.raises(InvalidArgumentError):
        reg.register("x", "not callable")  # type: ignore[type-var]
    reg.unregister("a")
    assert reg.get("a") is None


def test_run_worker_rejects_bad_options(q: Queue) -> None:
    with pytest.raises(InvalidArgumentError):
        run_worker(q, config(), HandlerRegistry(), concurrency=0, install_signal_handlers=False)
    with pytest.raises(InvalidArgumentError):
        run_worker(q, config(), HandlerRegistry(), grace_seconds=-1, install_signal_handlers=False)


def test_result_over_the_size_limit_fails_the_task_instead_of_leaving_it_leased(
    make_queue: Callable[..., Queue],
) -> None:
    q = make_queue("small.db", max_payload_bytes=1000)
    reg = HandlerRegistry()
    reg.register("big", lambda ctx: "x" * 5000)
    t = q.enqueue("big")
    summary = run_worker(q, config(), reg, max_tasks=1, install_signal_handlers=False)
    got = q.get(t.id)
    assert got.status is TaskStatus.FAILED
    assert got.last_error is not None and "result not recorded" in got.last_error
    assert (summary.completed, summary.failed) == (0, 1)
