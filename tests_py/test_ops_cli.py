"""Operator commands of the CLI: metrics, top (in a real terminal), doctor, maintain, backup, restore,
purge and requeue."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prismq_queue import Queue, SchedulingStrategy, Worker, WorkerConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def cli(*args: str, db: Path | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "prismq_queue"]
    if db is not None:
        argv += ["--db", str(db)]
    return subprocess.run(
        argv + list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def cli_json(*args: str, db: Path, expect: int = 0) -> Any:
    proc = cli("--json", *args, db=db)
    assert proc.returncode == expect, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def busy_db(tmp_path: Path) -> Iterator[Path]:
    """A database with 3 email tasks (one failed with "smtp down"), 1 report, and a live worker."""
    db = tmp_path / "ops.db"
    with Queue(db) as q:
        for _ in range(3):
            q.enqueue("email.send", max_attempts=1)
        q.enqueue("report.build", priority=5)
        with Worker(
            q, WorkerConfig(worker_id="top-worker", scheduling_strategy=SchedulingStrategy.FIFO)
        ) as w:
            task = w.claim_many(1)[0]
            w.fail(task, "smtp down", retryable=False)
    yield db


def wait_for(what: str, get: Callable[[], str], ok: Callable[[str], bool], timeout: float = 30.0) -> str:
    """Poll ``get`` until ``ok`` holds for its value; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = get()
    while not ok(value):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last screen:\n{value}")
        time.sleep(0.05)
        value = get()
    return value


def test_top_once_prints_one_plain_frame(busy_db: Path) -> None:
    proc = cli("top", "--once", db=busy_db)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b" not in out
    lines = out.splitlines()
    assert lines[0].startswith("prismq-queue top") and str(busy_db) in lines[0]
    assert lines[1].startswith("TASKS 4  queued 3")
    row = next(line for line in lines if line.startswith("email.send"))
    assert row.split()[1:6] == ["2", "0", "0", "1", "0"]  # queued, leased, completed, failed, cancelled
    assert any(line.startswith("WORKERS  0 active") for line in lines)  # closed: gone
    failure = lines[lines.index("RECENT FAILURES") + 2]
    assert failure.split()[:2] == ["1", "email.send"] and failure.endswith("smtp down")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_top_refreshes_in_a_terminal_until_ctrl_c(busy_db: Path) -> None:
    server = f"prismq-test-{os.getpid()}"
    env = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in os.environ.items() if k in ("PYTHONPATH", "PRISMQ_QUEUE_LIB")
    )
    command = (
        f"env {env} {shlex.quote(sys.executable)} -m prismq_queue --db {shlex.quote(str(busy_db))} "
        "top --interval 0.2; echo EXIT=$?; sleep 60"
    )
    tmux = ["tmux", "-L", server, "-f", os.devnull]
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "40", "-s", "top", command], check=True)

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True, check=True
        ).stdout

    try:
        first = wait_for("the first frame", screen, lambda s: "RECENT FAILURES" in s and "smtp down" in s)
        assert "prismq-queue top" in first and "Ctrl-C quits" in first
        assert "TASKS 4  queued 3" in first
        assert "report.build" in first
        with Queue(busy_db) as q, Worker(q, WorkerConfig(worker_id="live-worker")) as w:
            q.enqueue("email.send")
            q.enqueue("email.send")
            w.heartbeat()
            again = wait_for("a refreshed frame", screen, lambda s: "TASKS 6  queued 5" in s)
            assert "WORKERS  1 active" in again and "live-worker" in again
        subprocess.run([*tmux, "send-keys", "-t", "top", "C-c"], check=True)
        after = wait_for("the exit", screen, lambda s: "EXIT=" in s)
        assert "EXIT=0" in after
        assert "RECENT FAILURES" not in after, "the main screen is back"
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_top_in_a_pseudo_terminal_draws_frames_and_restores_the_screen(busy_db: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "prismq_queue", "--db", str(busy_db), "top", "--interval", "0.1"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(
            "two frames",
            lambda: b"".join(chunks).decode("utf-8", "replace"),
            lambda s: s.count("prismq-queue top") >= 2,
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert out.startswith("\x1b[?1049h"), "switches to the alternate screen"
    assert out.rstrip().endswith("\x1b[?1049l"), "and back on exit"
    frame = out.split("\x1b[H")[1]
    assert all(len(line) <= 100 for line in frame.replace("\x1b[K", "").split("\n"))
    assert "email.send" in frame


def test_metrics_command_prints_prometheus_text_and_json(busy_db: Path) -> None:
    text = cli("metrics", "--prometheus", db=busy_db)
    assert text.returncode == 0
    assert 'prismq_tasks{status="failed",type="email.send"} 1' in text.stdout
    m = cli_json("metrics", "--window", "30", db=busy_db)
    assert m["total"] == 4 and m["throughput"]["window_seconds"] == 30
    assert m["recent_failures"][0]["error"] == "smtp down"
    workers = cli_json("workers", db=busy_db)
    assert [(w["worker_id"], w["state"]) for w in workers] == [("top-worker", "gone")]


def test_doctor_findings_drive_the_exit_code_and_the_advice_works(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    Queue(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA auto_vacuum = NONE")
    con.execute("VACUUM")
    con.close()
    proc = cli("doctor", db=db)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "WARNING  auto_vacuum" in proc.stdout
    assert "-> run `prismq-queue maintain --vacuum-full`" in proc.stdout
    report = cli_json("doctor", db=db, expect=1)
    assert report["ok"] is False

    done = cli("maintain", "--vacuum-full", "--integrity", "full", db=db)
    assert done.returncode == 0, done.stderr
    assert "full vacuum" in done.stdout and "integrity (full): ok" in done.stdout
    proc = cli("doctor", "--integrity", "quick", db=db)
    assert proc.returncode == 0, proc.stdout
    assert "0 errors, 0 warnings" in proc.stdout


def test_maintain_recount_command(busy_db: Path) -> None:
    con = sqlite3.connect(busy_db)  # a write the engine does not see: the counters drift
    try:
        con.execute("UPDATE tasks SET status = 'cancelled', finished_at = created_at WHERE status = 'queued'")
        con.commit()
    finally:
        con.close()
    assert cli_json("stats", db=busy_db)["by_status"].get("queued", 0) > 0
    r = cli_json("maintain", "--recount", "--integrity", "none", db=busy_db)
    assert r["recounted"] > 0
    by_status = {k: v for k, v in cli_json("stats", db=busy_db)["by_status"].items() if v}
    assert by_status == {"failed": 1, "cancelled": 3}
    proc = cli("maintain", "--recount", "--integrity", "none", db=busy_db)
    assert proc.returncode == 0, proc.stderr
    assert "recount: 0 counter rows corrected" in proc.stdout
    assert "recount" not in cli("maintain", "--integrity", "none", db=busy_db).stdout
    assert cli_json("maintain", "--integrity", "none", db=busy_db)["recounted"] is None


def test_backup_and_restore_commands(busy_db: Path, tmp_path: Path) -> None:
    dest = tmp_path / "b.db"
    b = cli_json("backup", str(dest), db=busy_db)
    assert b["tasks"] == 4 and b["integrity"] == ["ok"]
    assert cli("backup", str(dest), db=busy_db).returncode == 1  # exists
    with Queue(busy_db) as q:
        q.enqueue("after.backup")
    refused = cli("restore", str(dest), db=busy_db)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    r = cli_json("restore", str(dest), "--yes", db=busy_db)
    assert r["tasks"] == 4
    assert cli_json("stats", db=busy_db)["total"] == 4


def test_purge_and_requeue_commands_count_first(busy_db: Path) -> None:
    dry = cli("requeue", db=busy_db)
    assert dry.returncode == 0
    assert "would requeue 1 tasks (ids 1)" in dry.stdout and "--yes" in dry.stdout
    assert cli_json("get", "1", db=busy_db)["status"] == "failed"
    done = cli_json("requeue", "--error", "smtp", "--yes", db=busy_db)
    assert (done["matched"], done["affected"]) == (1, 1)
    assert cli_json("get", "1", db=busy_db)["status"] == "queued"

    assert cli_json("purge", "--status", "queued", "--type", "email.send", db=busy_db)["dry_run"] is True
    purged = cli_json(
        "purge", "--status", "queued", "--type", "email.send", "--limit", "2", "--yes", db=busy_db
    )
    assert purged["affected"] == 2
    assert cli_json("stats", db=busy_db)["total"] == 2
    assert cli("purge", "--status", "leased", "--yes", db=busy_db).returncode == 1


def test_worker_refuses_a_too_short_maintenance_interval(busy_db: Path) -> None:
    proc = cli(
        "worker", "--handlers", "prismq_queue.demo_handlers", "--maintenance-interval", "5", db=busy_db
    )
    assert proc.returncode == 2
    assert "at least 60" in proc.stderr
