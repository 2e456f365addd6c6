"""The BackgroundTaskManager drop-in: one suite of the original's behaviours run against the
in-memory and the queue-backed managers, then what only the queue backend does (limits, handlers,
worker processes, restart recovery), shadow mode and backend selection."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app_standin import Run, RunRegistry, RunStatus, make_run, pydantic_run_class
from prismq_queue import (
    InMemoryTaskManager,
    Queue,
    QueuedTaskManager,
    QueueIOError,
    QueueRunRegistry,
    ShadowTaskManager,
    TaskStatus,
    create_task_manager,
)

HERE = Path(__file__).resolve().parent
DEADLINE = 30.0


class RecordingRegistry(RunRegistry):
    """The stand-in registry (in memory) that also remembers every status it was given."""

    def __init__(self) -> None:
        super().__init__(persist=False)
        self.history: list[tuple[str, str]] = []

    def update_run(self, run: Any) -> None:
        self.history.append((run.run_id, RunStatus(run.status).value))
        super().update_run(run)

    def statuses(self, run_id: str) -> list[str]:
        return [s for r, s in self.history if r == run_id]


RUN_CLASSES = ["dataclass"] + (["pydantic"] if pydantic_run_class() is not None else [])


@pytest.fixture(params=RUN_CLASSES)
def new_run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Factory of QUEUED runs of the stand-in dataclass or of the pydantic model."""
    if request.param == "dataclass":
        return make_run
    cls = pydantic_run_class()

    def factory(run_id: str, module_id: str = "mod.a", **fields: Any) -> Any:
        return cls(run_id=run_id, module_id=module_id, module_name=module_id.upper(), **fields)

    return factory


@pytest.fixture(params=["memory", "queue"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_manager(tmp_path: Path, backend: str) -> Iterator[Callable[..., Any]]:
    """``make_manager(registry, **options)``: the backend under test, closed after the test."""
    made: list[Any] = []

    def factory(registry: Any, **options: Any) -> Any:
        if backend == "memory":
            m: Any = InMemoryTaskManager(registry)
        else:
            m = QueuedTaskManager(registry, tmp_path / "queue.db", **options)
        made.append(m)
        return m

    yield factory
    for m in made:
        m.close()


def run_async(coro: Awaitable[Any], timeout: float = DEADLINE) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


def db_task(db: Path, run_id: str) -> Any:
    with Queue(db) as q:
        for t in q.iter_tasks():
            if t.idempotency_key == run_id:
                return t
    return None


# ---- the original's behaviours, on both backends ------------------------------------------------


def test_a_successful_run_goes_running_then_completed_with_exit_code_0(
    make_manager: Callable[..., Any], new_run: Callable[..., Any], backend: str, tmp_path: Path
) -> None:
    registry = RecordingRegistry()
    run = new_run("ok-1")

    async def main() -> str:
        m = make_manager(registry)
        seen: list[str] = []

        async def work() -> str:
            seen.append(RunStatus(run.status).value)
            return "done"

        run_id = m.start_task(run, work())
        assert run_id == "ok-1"
        assert m.is_task_active("ok-1")
        assert m.get_active_task_ids() == ["ok-1"]
        await m.wait_all()
        assert seen == ["running"]
        assert m.get_active_task_count() == 0 and not m.is_task_active("ok-1")
        if backend == "queue":
            await m.aflush()
            return str(await m.aget_task_status("ok-1"))
        return "completed"

    assert run_async(main()) == "completed"
    assert run.status == RunStatus.COMPLETED and run.exit_code == 0
    assert registry.statuses("ok-1") == ["running", "completed"]
    assert registry.get_run("ok-1") is run
    if backend == "queue":
        assert run.started_at is not None and run.completed_at is not None
        assert run.duration_seconds is not None and run.duration_seconds >= 0
        task = db_task(tmp_path / "queue.db", "ok-1")
        assert task.type == "mod.a" and task.status is TaskStatus.COMPLETED
        assert task.payload["run"]["parameters"] == {} and task.payload["run"]["module_id"] == "mod.a"
        assert task.result["run"]["exit_code"] == 0 and task.result["run"]["status"] == "completed"
        assert task.started_at is not None and task.finished_at is not None
    else:
        assert run.started_at is None  # the original leaves it empty


def test_a_failing_run_ends_failed_with_the_error_message_and_nothing_is_raised(
    make_manager: Callable[..., Any], new_run: Callable[..., Any], backend: str, tmp_path: Path
) -> None:
    registry = RecordingRegistry()
    run = new_run("bad-1")

    async def main() -> None:
        m = make_manager(registry)

        async def work() -> None:
            raise ValueError("disk full")

        m.start_task(run, work())
        await m.wait_all()
        assert not m.tasks
        if backend == "queue":
            await m.aflush()

    run_async(main())
    assert run.status == RunStatus.FAILED and run.error_message == "disk full"
    assert registry.statuses("bad-1") == ["running", "failed"]
    if backend == "queue":
        task = db_task(tmp_path / "queue.db", "bad-1")
        assert task.status is TaskStatus.FAILED and task.last_error == "disk full"


def test_cancel_stops_a_running_run_and_refuses_finished_or_unknown_ones(
    make_manager: Callable[..., Any], new_run: Callable[..., Any], backend: str, tmp_path: Path
) -> None:
    registry = RecordingRegistry()
    slow, quick = new_run("slow"), new_run("quick")

    async def main() -> tuple[bool, bool, bool]:
        m = make_manager(registry)
        started = asyncio.Event()
        cleaned = []

        async def work() -> None:
            started.set()
            try:
                await asyncio.sleep(DEADLINE)
            finally:
                cleaned.append(True)

        async def nothing() -> None:
            return None

        m.start_task(slow, work())
        m.start_task(quick, nothing())
        await started.wait()
        await asyncio.sleep(0)
        cancelled = await m.cancel_task("slow")
        assert cleaned == [True] and not m.is_task_active("slow")
        await m.wait_all()
        again = await m.cancel_task("quick")
        unknown = await m.cancel_task("no-such-run")
        if backend == "queue":
            await m.aflush()
        return cancelled, again, unknown

    assert run_async(main()) == (True, False, False)
    assert slow.status == RunStatus.CANCELLED and registry.statuses("slow") == ["running", "cancelled"]
    assert quick.status == RunStatus.COMPLETED
    if backend == "queue":
        assert db_task(tmp_path / "queue.db", "slow").status is TaskStatus.CANCELLED


def test_runs_started_together_all_run_at_once(
    make_manager: Callable[..., Any], new_run: Callable[..., Any], backend: str
) -> None:
    registry = RecordingRegistry()
    n = 25
    runs = [new_run(f"c{i}", module_id=f"mod.{i % 3}") for i in range(n)]

    async def main() -> int:
        m = make_manager(registry)
        running = 0
        peak = 0
        gate = asyncio.Event()

        async def work() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if peak == n:
                gate.set()
            await gate.wait()
            running -= 1

        for r in runs:
            m.start_task(r, work())
        assert m.get_active_task_count() == n
        await m.wait_all()
        return peak

    assert run_async(main()) == n
    assert all(r.status == RunStatus.COMPLETED for r in runs)


def test_wait_all_swallows_failures_and_waits_for_every_run(
    make_manager: Callable[..., Any], new_run: Callable[..., Any]
) -> None:
    registry = RecordingRegistry()
    runs = [new_run(f"w{i}") for i in range(10)]

    async def main() -> None:
        m = make_manager(registry)

        async def work(i: int) -> None:
            await asyncio.sleep(0.001 * i)
            if i % 2:
                raise RuntimeError(f"failure {i}")

        for i, r in enumerate(runs):
            m.start_task(r, work(i))
        await m.wait_all()
        assert m.get_active_task_count() == 0

    run_async(main())
    for i, r in enumerate(runs):
        if i % 2:
            assert r.status == RunStatus.FAILED and r.error_message == f"failure {i}"
        else:
            assert r.status == RunStatus.COMPLETED and r.exit_code == 0


def test_reusing_a_run_id_runs_again_and_keeps_both_records(
    make_manager: Callable[..., Any], new_run: Callable[..., Any], backend: str, tmp_path: Path
) -> None:
    registry = RecordingRegistry()

    async def main() -> str | None:
        m = make_manager(registry)

        async def fail() -> None:
            raise ValueError("first try")

        async def succeed() -> None:
            return None

        first = new_run("again")
        m.start_task(first, fail())
        await m.wait_all()
        second = new_run("again")
        m.start_task(second, succeed())
        await m.wait_all()
        assert first.status == RunStatus.FAILED and second.status == RunStatus.COMPLETED
        if backend == "queue":
            return str(await m.aget_task_status("again"))
        return None

    status = run_async(main())
    assert registry.statuses("again") == ["running", "failed", "running", "completed"]
    if backend == "queue":
        assert status == "completed"
        with Queue(tmp_path / "queue.db") as q:
            keys = {t.idempotency_key: t.status for t in q.iter_tasks()}
        assert keys == {"again": TaskStatus.FAILED, "again~2": TaskStatus.COMPLETED}


def test_a_run_cancelled_before_its_first_step_leaves_tasks_and_ends_cancelled(
    make_manager: Callable[..., Any], new_run: Callable[..., Any], backend: str, tmp_path: Path
) -> None:
    registry = RecordingRegistry()
    run = new_run("early")

    async def main() -> None:
        m = make_manager(registry)

        async def work() -> None:
            raise AssertionError("never runs")

        m.start_task(run, work())
        assert await m.cancel_task("early")
        assert not m.tasks
        if backend == "queue":
            await m.aflush()

    run_async(main())
    assert run.status == RunStatus.CANCELLED
    if backend == "queue":
        assert db_task(tmp_path / "queue.db", "early").status is TaskStatus.CANCELLED


def test_start_task_needs_a_running_event_loop(make_manager: Callable[..., Any]) -> None:
    m = make_manager(RecordingRegistry())

    async def work() -> None:
        return None

    coro = work()
    with pytest.raises(RuntimeError):
        m.start_task(make_run("no-loop"), coro)
    coro.close()


# ---- queue backend only -----------------------------------------------------------------------------


def test_max_concurrent_holds_runs_queued_and_the_strategy_picks_the_next(tmp_path: Path) -> None:
    registry = RecordingRegistry()
    order: list[str] = []

    async def main() -> list[str]:
        m = QueuedTaskManager(registry, tmp_path / "q.db", max_concurrent=1)
        try:
            release = asyncio.Event()
            started = asyncio.Event()

            async def blocker() -> None:
                started.set()
                await release.wait()

            async def work(name: str) -> None:
                order.append(name)

            m.start_task(make_run("blocker"), blocker())
            await started.wait()
            for name, prio in (("low", 50), ("urgent", 1), ("mid", 10)):
                m.start_task(make_run(name), work(name), priority=prio)
            await m.aflush()
            waiting = [RunStatus(registry.get_run(n).status).value for n in ("low", "urgent", "mid")]
            assert m.get_active_task_count() == 4
            release.set()
            await m.wait_all()
            return waiting
        finally:
            await m.aclose()

    for name in ("low", "urgent", "mid"):
        registry.add_run(make_run(name))
    waiting = run_async(main())
    assert waiting == ["queued", "queued", "queued"]
    assert order == ["urgent", "mid", "low"]


def test_a_queued_run_cancelled_while_waiting_never_starts(tmp_path: Path) -> None:
    registry = RecordingRegistry()
    ran: list[str] = []

    async def main() -> None:
        m = QueuedTaskManager(registry, tmp_path / "q.db", max_concurrent=1)
        try:
            release = asyncio.Event()

            async def blocker() -> None:
                await release.wait()

            async def work() -> None:
                ran.append("waiter")

            m.start_task(make_run("blocker"), blocker())
            m.start_task(make_run("waiter"), work())
            await asyncio.sleep(0.05)
            assert await m.cancel_task("waiter")
            release.set()
            await m.wait_all()
            await m.aflush()
        finally:
            await m.aclose()

    run_async(main())
    assert ran == []
    assert registry.get_run("waiter").status == RunStatus.CANCELLED
    assert db_task(tmp_path / "q.db", "waiter").status is TaskStatus.CANCELLED


def test_a_run_without_coroutine_is_executed_by_the_registered_handler(tmp_path: Path) -> None:
    registry = RecordingRegistry()
    run = make_run("persist-1", "mod.report", parameters={"pages": 3})

    async def main() -> str | None:
        m = QueuedTaskManager(registry, tmp_path / "q.db", poll_interval=0.05)
        try:
            seen: list[Any] = []

            async def build(r: Any) -> None:
                seen.append((r.parameters["pages"], RunStatus(r.status).value))

            m.register_handler("mod.report", build)
            m.start_task(run)
            await m.wait_all()
            assert seen == [(3, "running")]
            return await m.aget_task_status("persist-1")
        finally:
            await m.aclose()

    assert run_async(main()) == "completed"
    assert run.status == RunStatus.COMPLETED and run.exit_code == 0
    assert registry.statuses("persist-1") == ["running", "completed"]


def test_a_worker_process_executes_a_run_and_its_status_flows_back(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    registry = RecordingRegistry()
    run = make_run("remote-1", "mod.remote", parameters={"n": 7})

    async def main() -> None:
        m = QueuedTaskManager(registry, db, poll_interval=0.05)
        try:
            m.start_task(run)
            await m.aflush()
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
            cmd = [
                sys.executable, "-m", "prismq_queue", "--db", str(db), "worker",
                "--handlers", str(HERE / "run_handlers.py"), "--max-tasks", "1", "--idle-exit", "10",
                "--poll-interval", "0.05",
            ]  # fmt: skip
            proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=subprocess.DEVNULL)
            await m.wait_all()
            assert await proc.wait() == 0
        finally:
            await m.aclose()

    run_async(main())
    assert run.status == RunStatus.COMPLETED and run.exit_code == 0
    assert registry.statuses("remote-1")[-1] == "completed"
    assert run.items_processed == 7  # set by the handler in the worker process
    task = db_task(db, "remote-1")
    assert task.result["run"]["items_processed"] == 7 and task.lease_owner != ""


def _owner_process(db: str, ready: Any, mode: str) -> None:
    """A manager in a child process: starts runs, reports ready once they are RUNNING in the db."""

    async def main() -> None:
        registry = QueueRunRegistry(db)
        m = QueuedTaskManager(registry, db)

        async def forever() -> None:
            await asyncio.sleep(3600)

        async def short() -> None:
            await asyncio.sleep(1.0)

        if mode == "killed":
            registry.add_run(make_run("h-running", "mod.h"))
            m.start_task(registry.get_run("h-running"), forever())
            registry.add_run(make_run("x-running", "mod.x"))
            m.start_task(registry.get_run("x-running"), forever())
        else:
            registry.add_run(make_run("alive-run", "mod.x"))
            m.start_task(registry.get_run("alive-run"), short())
        await m.aflush()
        ready.set()
        await m.wait_all()
        await m.aclose()
        registry.close()

    asyncio.run(main())


def test_runs_of_a_killed_process_are_rerun_with_a_handler_or_failed_with_a_reason(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_owner_process, args=(db, ready, "killed"), daemon=True)
    proc.start()
    assert ready.wait(DEADLINE)
    with Queue(db) as q:
        assert {t.idempotency_key: t.status for t in q.iter_tasks(task_type=["mod.h", "mod.x"])} == {
            "h-running": TaskStatus.LEASED,
            "x-running": TaskStatus.LEASED,
        }
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(DEADLINE)

    reran: list[str] = []

    async def rerun(run: Any) -> None:
        reran.append(run.run_id)

    async def main() -> list[Any]:
        registry = QueueRunRegistry(db)
        assert registry.get_run("h-running").status == RunStatus.RUNNING  # as the dead process left it
        m = QueuedTaskManager(registry, db, handlers={"mod.h": rerun})
        try:
            await m.wait_all()
            await m.aflush()
            return [m.recovered, registry.get_run("h-running"), registry.get_run("x-running")]
        finally:
            await m.aclose()
            registry.close()

    recovered, h_run, x_run = run_async(main())
    actions = sorted((r.run_id, r.action) for r in recovered)
    assert actions == [("h-running", "rerun"), ("x-running", "failed")]
    assert reran == ["h-running"]
    assert h_run.status == "completed" and h_run.exit_code == 0
    assert x_run.status == "failed" and "died" in x_run.error_message and "mod.x" in x_run.error_message
    with Queue(db) as q:
        statuses = {t.idempotency_key: t.status for t in q.iter_tasks(task_type=["mod.h", "mod.x"])}
        reason = next(t.last_error for t in q.iter_tasks(task_type="mod.x"))
    assert statuses == {"h-running": TaskStatus.COMPLETED, "x-running": TaskStatus.FAILED}
    assert reason == x_run.error_message


def test_two_managers_in_two_processes_do_not_take_each_others_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_owner_process, args=(db, ready, "alive"), daemon=True)
    proc.start()
    assert ready.wait(DEADLINE)

    async def main() -> list[Any]:
        m = QueuedTaskManager(RecordingRegistry(), db, handlers={"mod.x": _never})
        try:
            return list(m.recovered)
        finally:
            await m.aclose()

    assert run_async(main()) == []
    proc.join(DEADLINE)
    assert proc.exitcode == 0
    task = db_task(Path(db), "alive-run")
    assert task.status is TaskStatus.COMPLETED and task.result["run"]["exit_code"] == 0


async def _never(run: Any) -> None:
    raise AssertionError(f"{run.run_id} was taken from a live manager")


# ---- shadow mode and backend selection --------------------------------------------------------------


def test_shadow_mode_on_a_mixed_workload_reports_no_divergence(tmp_path: Path) -> None:
    registry = RecordingRegistry()
    runs = [make_run(f"s{i}", f"mod.{i % 4}") for i in range(60)]

    async def main() -> list[Any]:
        m = ShadowTaskManager(registry, tmp_path / "q.db")
        try:

            async def work(i: int) -> None:
                await asyncio.sleep(0.001 * (i % 5))
                if i % 11 == 5:
                    await asyncio.sleep(DEADLINE)
                if i % 7 == 3:
                    raise ValueError(f"bad input {i}")

            for i, r in enumerate(runs):
                m.start_task(r, work(i))
            await asyncio.sleep(0.05)
            for i in range(len(runs)):
                if i % 11 == 5:
                    assert await m.cancel_task(f"s{i}")
            await m.wait_all()
            return await m.averify()
        finally:
            m.close()

    assert run_async(main()) == []
    assert {RunStatus(r.status).value for r in runs} == {"completed", "failed", "cancelled"}
    with Queue(tmp_path / "q.db") as q:
        by_key = {t.idempotency_key: t for t in q.iter_tasks()}
    assert len(by_key) == len(runs)
    for r in runs:
        assert by_key[r.run_id].status.value == RunStatus(r.status).value


def test_shadow_verify_reports_a_divergence(tmp_path: Path) -> None:
    registry = RecordingRegistry()
    run = make_run("div-1")

    async def main() -> list[Any]:
        m = ShadowTaskManager(registry, tmp_path / "q.db")
        try:

            async def work() -> None:
                return None

            m.start_task(run, work())
            await m.tasks["div-1"]  # not wait_all: that verifies (and forgets) finished runs
            run.status = RunStatus.FAILED  # the memory side changes behind the mirror's back
            run.error_message = "late"
            return await m.averify()
        finally:
            m.close()

    found = run_async(main())
    assert [(d.run_id, d.field, d.memory, d.queue) for d in found][:1] == [
        ("div-1", "status", "failed", "completed")
    ]


def test_create_task_manager_picks_the_backend_from_the_argument_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(tmp_path / "env.db"))
    registry = RecordingRegistry()
    monkeypatch.delenv("PRISMQ_TASK_BACKEND", raising=False)
    assert isinstance(create_task_manager(registry), InMemoryTaskManager)
    monkeypatch.setenv("PRISMQ_TASK_BACKEND", "queue")
    m = create_task_manager(registry)
    assert isinstance(m, QueuedTaskManager) and m.queue.path == str(tmp_path / "env.db")
    m.close()
    s = create_task_manager(registry, "shadow")
    assert isinstance(s, ShadowTaskManager)
    s.close()
    with pytest.raises(ValueError):
        create_task_manager(registry, "redis")


def test_the_queue_backend_falls_back_to_memory_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PRISMQ_QUEUE_DB_PATH", str(blocker / "queue.db"))
    registry = RecordingRegistry()
    monkeypatch.delenv("PRISMQ_QUEUE_FALLBACK", raising=False)
    with pytest.warns(RuntimeWarning, match="in-memory"):
        m = create_task_manager(registry, "queue")
    assert isinstance(m, InMemoryTaskManager)
    monkeypatch.setenv("PRISMQ_QUEUE_FALLBACK", "0")
    with pytest.raises(QueueIOError):
        create_task_manager(registry, "queue")


def test_the_original_json_registry_works_with_the_queue_backend(tmp_path: Path) -> None:
    history = tmp_path / "data" / "run_history.json"
    registry = RunRegistry(history)
    run = make_run("json-1")
    registry.add_run(run)

    async def main() -> None:
        m = QueuedTaskManager(registry, tmp_path / "q.db")
        try:

            async def work() -> None:
                return None

            m.start_task(run, work())
            await m.wait_all()
        finally:
            await m.aclose()

    run_async(main())
    reloaded = RunRegistry(history).get_run("json-1")
    assert isinstance(reloaded, Run) and reloaded.status == RunStatus.COMPLETED
    assert reloaded.started_at is not None and reloaded.duration_seconds is not None


def test_closing_a_manager_with_slow_writes_pending_waits_for_them(tmp_path: Path) -> None:
    registry = RecordingRegistry()

    async def main() -> None:
        m = QueuedTaskManager(registry, tmp_path / "q.db")

        async def work() -> None:
            return None

        for i in range(300):
            m.start_task(make_run(f"p{i}"), work())
        await m.wait_all()
        await m.aclose()

    started = time.monotonic()
    run_async(main())
    assert time.monotonic() - started < DEADLINE
    with Queue(tmp_path / "q.db") as q:
        assert q.stats().by_type["mod.a"] == {"completed": 300}
