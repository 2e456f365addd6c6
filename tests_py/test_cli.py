"""The ``prismq-queue`` command line, run as ``python -m prismq_queue`` in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from prismq_queue import Queue, SchedulingStrategy, Worker, WorkerConfig


def cli(*args: str, db: Path | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "prismq_queue"]
    if db is not None:
        argv += ["--db", str(db)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)


def cli_json(*args: str, db: Path, expect: int = 0) -> Any:
    proc = cli("--json", *args, db=db)
    assert proc.returncode == expect, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def test_enqueue_then_get_and_list_show_the_task(db: Path) -> None:
    created = cli_json("enqueue", "email.send", '{"to": "a@example.com"}', "--priority", "7", db=db)
    assert created["type"] == "email.send"
    assert created["payload"] == {"to": "a@example.com"}
    assert created["priority"] == 7
    assert created["status"] == "queued"
    assert created["created"] is True

    got = cli_json("get", str(created["id"]), db=db)
    assert got["id"] == created["id"] and got["priority"] == 7

    listed = cli_json("list", "--status", "queued", db=db)
    assert [t["id"] for t in listed] == [created["id"]]
    assert cli_json("list", "--status", "completed", db=db) == []

    table = cli("list", db=db)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "TYPE", "STATUS"]
    assert "email.send" in table.stdout


def test_enqueue_with_an_existing_key_returns_the_same_task(db: Path) -> None:
    first = cli_json("enqueue", "job", "--key", "k-1", db=db)
    again = cli_json("enqueue", "job", "--key", "k-1", db=db)
    assert again["id"] == first["id"]
    assert again["created"] is False


def test_cancel_and_retry_change_the_status_and_refuse_wrong_states(db: Path) -> None:
    task_id = str(cli_json("enqueue", "job", db=db)["id"])
    assert cli_json("cancel", task_id, db=db)["status"] == "cancelled"
    again = cli_json("cancel", task_id, db=db, expect=1)
    assert again["type"] == "InvalidStateError"
    assert cli_json("retry", task_id, db=db)["status"] == "queued"
    assert cli_json("retry", task_id, db=db, expect=1)["type"] == "InvalidStateError"


def test_unknown_task_id_exits_1(db: Path) -> None:
    cli_json("stats", db=db)
    for command in ("get", "cancel", "retry", "logs"):
        proc = cli(command, "424242", db=db)
        assert proc.returncode == 1, (command, proc.stderr)
        assert "TaskNotFoundError" in proc.stderr


def test_stats_counts_by_status_and_type(db: Path) -> None:
    for _ in range(3):
        cli_json("enqueue", "a", db=db)
    b = cli_json("enqueue", "b", db=db)
    cli_json("cancel", str(b["id"]), db=db)
    stats = cli_json("stats", db=db)
    assert stats["total"] == 4
    assert stats["by_status"]["queued"] == 3
    assert stats["by_status"]["cancelled"] == 1
    assert stats["by_type"]["a"]["queued"] == 3
    table = cli("stats", db=db)
    assert table.returncode == 0 and "queued" in table.stdout


def test_workers_and_logs_show_what_the_api_recorded(db: Path) -> None:
    with Queue(db) as q:
        t = q.enqueue("job")
        q.log(t.id, "first line", details={"n": 1})
        q.log(t.id, "second line", level="warning")
        with Worker(q, WorkerConfig(worker_id="cli-w", scheduling_strategy=SchedulingStrategy.LIFO)):
            workers = cli_json("workers", db=db)
    assert [w["worker_id"] for w in workers] == ["cli-w"]
    assert workers[0]["strategy"] == "lifo"
    logs = cli_json("logs", str(t.id), db=db)
    assert [(e["level"], e["message"]) for e in logs] == [("info", "first line"), ("warning", "second line")]
    assert logs[0]["details"] == {"n": 1}


def test_sweep_reports_counts(db: Path) -> None:
    result = cli_json("sweep", db=db)
    assert result == {"requeued": 0, "failed": 0, "cancelled": 0}


def test_usage_errors_exit_2(db: Path) -> None:
    assert cli(db=db).returncode == 2
    assert cli("enqueue", db=db).returncode == 2
    assert cli("enqueue", "job", "{not json", db=db).returncode == 2
    assert cli("enqueue", "job", "[1, 2]", db=db).returncode == 2
    assert cli("get", "not-a-number", db=db).returncode == 2
    assert not db.exists() or cli_json("stats", db=db)["total"] == 0


def test_database_that_cannot_be_opened_exits_3(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = cli("stats", db=blocker / "queue.db")
    assert proc.returncode == 3, proc.stderr
    assert "cannot open" in proc.stderr


def test_worker_command_runs_handlers_from_a_file(db: Path, tmp_path: Path) -> None:
    handlers_file = tmp_path / "my_handlers.py"
    handlers_file.write_text(
        "from prismq_queue import HandlerRegistry\n"
        "registry = HandlerRegistry()\n"
        "@registry.task('double')\n"
        "def double(ctx):\n"
        "    return ctx.payload['x'] * 2\n"
    )
    ids = [cli_json("enqueue", "double", json.dumps({"x": x}), db=db)["id"] for x in (1, 2, 3)]
    summary = cli_json(
        "worker",
        "--handlers",
        f"{handlers_file}:registry",
        "--max-tasks",
        "3",
        "--worker-id",
        "file-w",
        db=db,
    )
    assert summary["completed"] == 3
    results = [cli_json("get", str(i), db=db)["result"] for i in ids]
    assert results == [2, 4, 6]


def test_demo_runs_workers_with_each_strategy_and_prints_a_summary(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = cli("demo", "--tasks", "300", "--workers", "2", db=db, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tasks/s" in proc.stdout
    assert "fifo" in proc.stdout and "lifo" in proc.stdout
    with Queue(db) as q:
        stats = q.stats()
    assert stats.total == 300
    assert stats.by_status.get("queued", 0) == stats.by_status.get("leased", 0) == 0


def test_demo_json_summary_accounts_for_every_task(tmp_path: Path) -> None:
    proc = cli("--json", "demo", "--tasks", "200", "--workers", "2", db=tmp_path / "d.db", timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["finished"] is True
    status = summary["status"]
    assert status.get("completed", 0) + status.get("failed", 0) == 200
    assert sorted(w["strategy"] for w in summary["per_worker"]) == ["fifo", "lifo"]
    assert sum(w["completed"] for w in summary["per_worker"]) == status["completed"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is not deliverable this way on Windows")
def test_worker_command_stops_gracefully_on_sigterm(db: Path) -> None:
    with Queue(db) as q:
        t = q.enqueue("email.send", {"to": "a@example.com"})
        argv = [sys.executable, "-m", "prismq_queue", "--db", str(db), "--json", "worker"]
        argv += ["--handlers", "prismq_queue.demo_handlers:registry", "--worker-id", "sig-w"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while q.get(t.id).status.value != "completed":
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the worker did not run the task"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert json.loads(out)["completed"] == 1
        (info,) = [w for w in q.workers() if w.worker_id == "sig-w"]
        assert info.stopped_at is not None
