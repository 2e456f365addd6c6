"""Maintenance, the doctor, bulk purge/requeue, backup and restore through the Python API."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from prismq_queue import (
    BackupProgress,
    InvalidArgumentError,
    Queue,
    QueueBusyError,
    QueueIOError,
    SchemaError,
    TaskNotFoundError,
    Worker,
    restore,
)


def _finish(queue: Queue, worker: Worker, n: int, *, fail: bool = False) -> list[int]:
    tasks = worker.claim_many(n)
    for t in tasks:
        if fail:
            worker.fail(t, "boom", retryable=False)
        else:
            worker.complete(t)
    return [t.id for t in tasks]


def _age_finished(path: Path, ids: list[int], days: float) -> None:
    """Move the finish time of tasks back (the engine's clock cannot be faked from Python)."""
    con = sqlite3.connect(path)
    try:
        shift = int(days * 86400_000)
        con.executemany(
            "UPDATE tasks SET finished_at = finished_at - ?, updated_at = updated_at - ? WHERE id = ?",
            [(shift, shift, i) for i in ids],
        )
        con.commit()
    finally:
        con.close()


def test_retention_keeps_what_it_should(queue: Queue, worker: Worker) -> None:
    for _ in range(6):
        queue.enqueue("job", max_attempts=1)
    old_done = _finish(queue, worker, 2)
    old_failed = _finish(queue, worker, 1, fail=True)
    old_cancelled = queue.cancel(queue.enqueue("job").id).id
    recent_done = _finish(queue, worker, 1)
    queue.log(old_done[0], "old line")
    queue.log(recent_done[0], "recent line")
    _age_finished(Path(queue.path), [*old_done, *old_failed, old_cancelled], days=10)

    r = queue.maintain(retention_days=7, integrity="quick")
    assert r.retention is not None
    assert (r.retention.tasks_deleted, r.retention.logs_deleted) == (3, 1)
    assert r.retention.statuses == ["completed", "cancelled"]
    assert r.integrity is not None and r.integrity.ok
    for tid in [*old_done, old_cancelled]:
        with pytest.raises(TaskNotFoundError):
            queue.get(tid)
    assert queue.get(old_failed[0]).status.value == "failed"  # kept unless asked
    assert queue.get(recent_done[0]).status.value == "completed"
    assert [e.message for e in queue.logs(recent_done[0])] == ["recent line"]
    assert queue.stats().by_status["queued"] == 2  # never touched by retention

    r = queue.maintain(retention_days=7, purge_failed=True, checkpoint="truncate")
    assert r.retention is not None and r.retention.tasks_deleted == 1
    assert r.checkpoint is not None and r.checkpoint.mode == "truncate" and not r.checkpoint.busy
    assert r.wal_bytes_after == 0
    assert queue.metrics().total == queue.stats().total == 3


def test_maintain_and_schedule_check_their_options(queue: Queue) -> None:
    with pytest.raises(InvalidArgumentError):
        queue.maintain(checkpoint="sometimes")
    with pytest.raises(InvalidArgumentError):
        queue.maintain(retention_days=-1)
    with pytest.raises(InvalidArgumentError):
        queue.schedule_maintenance(5)  # under a minute
    queue.schedule_maintenance(3600, retention_days=14)
    queue.schedule_maintenance(None)
    r = queue.maintain(retention_days=None, prune_workers_days=None, optimize=False, incremental_vacuum=False)
    assert r.retention is None and r.vacuum is None and not r.optimized


def _depth_in_table(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())
    finally:
        con.close()


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def test_recount_rebuilds_depth_counters_after_outside_writes(tmp_path: Path) -> None:
    path = tmp_path / "drift.db"
    with Queue(path, disable_sweeper=True) as q:
        q.enqueue_many([{"task_type": "a"} for _ in range(5)] + [{"task_type": "b"} for _ in range(3)])
        assert q.maintain(retention_days=None, optimize=False, incremental_vacuum=False).recounted is None
    con = sqlite3.connect(path)  # another program writes to the tasks table behind the engine's back
    try:
        con.execute("UPDATE tasks SET status = 'cancelled', finished_at = created_at WHERE id <= 3")
        con.execute("DELETE FROM tasks WHERE id = 8")
        con.commit()
    finally:
        con.close()
    truth = _depth_in_table(path)
    assert truth == {"queued": 4, "cancelled": 3}

    with Queue(path, disable_sweeper=True) as q:
        assert _nonzero(q.stats().by_status) != truth, "the counters should have drifted"
        r = q.maintain(
            recount=True,
            retention_days=None,
            prune_workers_days=None,
            incremental_vacuum=False,
            optimize=False,
            checkpoint="none",
        )
        assert r.recounted is not None and r.recounted > 0
        assert r.retention is None and r.vacuum is None and not r.optimized and r.checkpoint is None
        stats = q.stats()
        assert _nonzero(stats.by_status) == truth
        assert stats.total == sum(truth.values())
        assert _nonzero(q.metrics().by_status) == truth
        assert _nonzero(stats.by_type["a"]) == {"queued": 2, "cancelled": 3}
        assert _nonzero(stats.by_type.get("b", {})) == {"queued": 2}
        again = q.maintain(recount=True, retention_days=None, optimize=False, incremental_vacuum=False)
        assert again.recounted == 0
        with pytest.raises(InvalidArgumentError):
            q.maintain(recount="yes")  # type: ignore[arg-type]


def test_doctor_reports_a_misconfigured_database(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    Queue(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA auto_vacuum = NONE")
    con.execute("VACUUM")  # what a file made by an older version looks like
    con.close()
    with Queue(path, pragmas={"journal_mode": "DELETE", "synchronous": "OFF"}, disable_sweeper=True) as q:
        report = q.doctor(min_free_bytes=1 << 62)
    assert not report.ok
    severities = {f.check: f.severity for f in report.findings}
    assert severities["journal_mode"] == "error"
    assert severities["auto_vacuum"] == "warning"
    assert severities["pragma synchronous"] == "warning"
    assert severities["disk_space"] == "warning"
    assert severities["path"] == severities["schema"] == "ok"
    for f in report.findings:
        assert f.severity == "ok" or f.advice, f
    with Queue(path, disable_sweeper=True) as q:
        report = q.doctor()
        assert report.finding("journal_mode") is not None
        assert report.finding("journal_mode").severity == "ok"  # type: ignore[union-attr]


def test_purge_and_requeue_by_filter_with_a_dry_run(queue: Queue, worker: Worker) -> None:
    for _ in range(4):
        queue.enqueue("a", max_attempts=1)
    queue.enqueue("b")
    tasks = worker.claim_many(4)
    for t in tasks[:2]:
        worker.fail(t, "timeout after 30 s", retryable=False)
    for t in tasks[2:]:
        worker.fail(t, "bad input", retryable=False)

    dry = queue.requeue(error_contains="timeout", dry_run=True)
    assert (dry.dry_run, dry.matched, dry.affected, dry.sample_ids) == (True, 2, 0, [1, 2])
    assert queue.get(1).status.value == "failed"
    done = queue.requeue(error_contains="timeout")
    assert (done.matched, done.affected) == (2, 2)
    assert queue.get(1).status.value == "queued" and queue.get(1).attempts == 0

    with pytest.raises(InvalidArgumentError):
        queue.purge(status="leased")
    with pytest.raises(InvalidArgumentError):
        queue.requeue(status="completed")
    assert queue.purge(task_type="a", dry_run=True).matched == 2  # the two failed for good
    assert queue.purge(task_type="a").affected == 2
    future = datetime.now(timezone.utc) + timedelta(seconds=5)
    gone = queue.purge(status=["queued"], created_before=future, limit=1)
    assert gone.affected == 1
    assert [t.id for t in queue.list()] == [2, 5]
    assert queue.purge(older_than=timedelta(days=1)).matched == 0


def test_backup_while_writing_restores_every_task_committed_before(tmp_path: Path) -> None:
    src = tmp_path / "live.db"
    dest = tmp_path / "backups" / "snap.db"
    with Queue(src) as q:
        before = {t.id for t in q.enqueue_many([{"task_type": "before"} for _ in range(2000)])}
        stop = threading.Event()
        written: list[int] = []

        def writer() -> None:
            while not stop.is_set():
                written.append(q.enqueue("during").id)

        t = threading.Thread(target=writer)
        t.start()
        seen: list[BackupProgress] = []
        try:
            result = q.backup(dest, progress=seen.append, step_pages=8)
        finally:
            stop.set()
            t.join()
        assert result.integrity == ["ok"] and result.tasks >= len(before)
        assert seen and seen[-1].phase == "done" and seen[-1].fraction == 1.0
        with pytest.raises(InvalidArgumentError):
            q.backup(dest)  # exists
        with pytest.raises(QueueBusyError):
            restore(dest, src)  # src is open right here
    assert written, "the writer committed during the backup"
    target = tmp_path / "restored.db"
    r = restore(dest, target)
    assert r.tasks == result.tasks
    for suffix in ("-wal", "-shm", "-journal"):
        assert not Path(str(target) + suffix).exists()
    with Queue(target, disable_sweeper=True) as rq:
        ids = {t.id for t in rq.iter_tasks()}
        assert before <= ids
        in_copy = [i for i in written if i in ids]
        assert in_copy == written[: len(in_copy)], "a snapshot holds a prefix of the writer's tasks"
        assert rq.maintain(integrity="full", retention_days=None).integrity.ok  # type: ignore[union-attr]


def test_restore_refuses_a_database_open_in_another_process(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    backup = tmp_path / "b.db"
    with Queue(db) as q:
        q.enqueue("job")
        q.backup(backup)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from prismq_queue import Queue
                q = Queue({str(db)!r})
                print("open", flush=True)
                sys.stdin.read()
                q.close()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(QueueBusyError, match="in use"):
            restore(backup, db)
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    r = restore(backup, db, progress=lambda p: None)
    assert r.tasks == 1


def test_restore_refuses_what_is_not_a_queue_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite database at all, sorry")
    with pytest.raises(SchemaError):
        restore(junk, tmp_path / "t.db")
    assert not (tmp_path / "t.db").exists()
    with pytest.raises(QueueIOError):
        restore(tmp_path / "missing.db", tmp_path / "t.db")
    with pytest.raises(InvalidArgumentError):
        restore("", tmp_path / "t.db")
