"""Several worker processes on one database file (started with the spawn method)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from prismq_queue import HandlerRegistry, Queue, TaskContext, TaskStatus, WorkerConfig, run_worker

DEADLINE = 60.0

registry = HandlerRegistry()


@registry.task("record")
def record(ctx: TaskContext) -> dict[str, Any]:
    return {"pid": os.getpid(), "worker": ctx.worker_id, "attempt": ctx.task.attempts}


@registry.task("slow")
def slow(ctx: TaskContext) -> dict[str, Any]:
    if ctx.task.attempts == 1:
        marker = Path(ctx.payload["started_file"])
        marker.write_text(str(os.getpid()))
        time.sleep(DEADLINE)  # killed here
    return {"pid": os.getpid(), "worker": ctx.worker_id, "attempt": ctx.task.attempts}


def _worker_process(db: str, worker_id: str, lease: float, results: Any) -> None:
    with Queue(db, sweep_interval_seconds=0.1) as q:
        config = WorkerConfig(
            worker_id=worker_id,
            poll_interval_seconds=0.1,
            lease_duration_seconds=lease,
            concurrency=2,
        )
        summary = run_worker(q, config, registry, idle_exit_seconds=1.5)
    if results is not None:
        results.put((worker_id, summary.completed, summary.failed))


def test_four_spawned_workers_complete_every_task_exactly_once(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    n = 2000
    with Queue(db) as q:
        ids = [t.id for t in q.enqueue_many([{"task_type": "record", "payload": {"i": i}} for i in range(n)])]

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker_process, args=(db, f"proc-{i}", 30.0, results), daemon=True)
        for i in range(4)
    ]
    for p in procs:
        p.start()
    reports = [results.get(timeout=DEADLINE * 2) for _ in procs]
    for p in procs:
        p.join(DEADLINE)
        assert p.exitcode == 0

    # Every completion acknowledged by some worker, counted once: the sum is exactly n.
    assert sum(completed for _, completed, _ in reports) == n
    assert sum(failed for _, _, failed in reports) == 0
    with Queue(db) as q:
        workers_seen = set()
        for task_id in ids:
            t = q.get(task_id)
            assert t.status is TaskStatus.COMPLETED
            assert t.attempts == 1, f"task {task_id} ran {t.attempts} times"
            assert t.result["attempt"] == 1
            workers_seen.add(t.result["worker"])
        assert workers_seen <= {f"proc-{i}" for i in range(4)}
        stats = q.stats()
        assert stats.total == n
        assert stats.by_status["completed"] == n


@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or sys.platform == "win32", reason="needs SIGKILL")
def test_task_of_a_killed_worker_is_finished_by_another_after_its_lease_expires(tmp_path: Path) -> None:
    db = str(tmp_path / "kill.db")
    marker = tmp_path / "started"
    with Queue(db, sweep_interval_seconds=0.1) as q:
        t = q.enqueue("slow", {"started_file": str(marker)})

        ctx = multiprocessing.get_context("spawn")
        victim = ctx.Process(target=_worker_process, args=(db, "victim", 1.0, None), daemon=True)
        victim.start()
        deadline = time.monotonic() + DEADLINE
        while not marker.exists():
            assert time.monotonic() < deadline, "the victim never started the task"
            assert victim.is_alive(), "the victim died before starting the task"
            time.sleep(0.02)
        leased = q.get(t.id)
        assert leased.status is TaskStatus.LEASED
        assert leased.lease_owner == "victim"

        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(DEADLINE)
        assert victim.exitcode == -signal.SIGKILL

        stop = threading.Event()
        config = WorkerConfig(worker_id="rescuer", poll_interval_seconds=0.1, lease_duration_seconds=5)
        summary_box: list[Any] = []

        def rescue() -> None:
            summary_box.append(
                run_worker(q, config, registry, stop_event=stop, install_signal_handlers=False)
            )

        thread = threading.Thread(target=rescue, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + DEADLINE
            while q.get(t.id).status is not TaskStatus.COMPLETED:
                assert time.monotonic() < deadline, f"task not rescued: {q.get(t.id)}"
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(DEADLINE)
        done = q.get(t.id)
        assert done.attempts == 2
        assert done.result["worker"] == "rescuer"
        assert done.result["pid"] == os.getpid()
        assert summary_box and summary_box[0].completed == 1
