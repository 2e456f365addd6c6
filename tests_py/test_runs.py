"""QueueRunRegistry (the RunRegistry API in the queue database) and the JSON history migration."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from app_standin import Run, RunRegistry, RunStatus, make_run, pydantic_run_class
from prismq_queue import Queue, QueueRunRegistry, RunRecord, export_history, import_history
from prismq_queue.cli import main as cli_main
from prismq_queue.runs import RUN_EVENT_TYPE, read_history, run_to_record

DEADLINE = 30.0


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    with QueueRunRegistry(tmp_path / "q.db") as reg:
        yield reg


def _history(path: Path, n: int) -> RunRegistry:
    """A history file of ``n`` runs written by the stand-in RunRegistry (all statuses, odd values)."""
    reg = RunRegistry(path, persist=False)
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    statuses = list(RunStatus)
    for i in range(n):
        status = statuses[i % len(statuses)]
        run = make_run(
            f"run-{i:05d}",
            f"mod.{i % 7}",
            status=status,
            created_at=base + timedelta(seconds=i),
            parameters={"i": i, "ratio": 1.0, "text": "naïve ✓", "nested": {"a": [1, None, 2.5]}},
        )
        if status in (RunStatus.COMPLETED, RunStatus.FAILED):
            run.started_at = run.created_at + timedelta(seconds=1)
            run.completed_at = run.created_at + timedelta(seconds=3, microseconds=250)
            run.duration_seconds = 2.00025
            run.exit_code = 0 if status is RunStatus.COMPLETED else 1
        if status is RunStatus.FAILED:
            run.error_message = f"error {i}: \"quoted\"\nsecond line"
        reg.runs[run.run_id] = run
    reg.persist = True
    reg._save_history()
    return reg


def test_the_registry_api_matches_the_json_registry(registry: QueueRunRegistry, tmp_path: Path) -> None:
    original = RunRegistry(tmp_path / "history.json")
    now = datetime.now(timezone.utc)
    for reg in (original, registry):
        runs = [
            make_run("a", "mod.x", created_at=now - timedelta(minutes=3)),
            make_run("b", "mod.y", created_at=now - timedelta(minutes=2)),
            make_run("c", "mod.x", created_at=now - timedelta(minutes=1)),
            make_run("old", "mod.y", created_at=now - timedelta(days=40)),
        ]
        for r in runs:
            reg.add_run(r)
        runs[0].status = RunStatus.RUNNING
        reg.update_run(runs[0])
        runs[1].status = RunStatus.COMPLETED
        runs[1].completed_at = now
        reg.update_run(runs[1])
        runs[3].status = RunStatus.FAILED
        runs[3].completed_at = now - timedelta(days=39)
        reg.update_run(runs[3])

    def ids(items: list[Any]) -> list[str]:
        return [r.run_id for r in items]

    for reg in (original, registry):
        assert reg.get_run("a").status == RunStatus.RUNNING
        assert reg.get_run("missing") is None
        assert sorted(ids(reg.get_active_runs())) == ["a", "c"]
        assert sorted(ids(reg.get_runs_by_module("mod.x"))) == ["a", "c"]
        assert ids(reg.get_runs_by_status(RunStatus.COMPLETED)) == ["b"]
        assert ids(reg.get_recent_runs(limit=2)) == ["c", "b"]
        reg.cleanup_old_runs(days=30)
        assert reg.get_run("old") is None and len(reg.runs) == 3
    assert registry.get_runs_by_status("running")[0].run_id == "a"  # the value works too


def test_runs_added_here_come_back_as_the_same_objects(registry: QueueRunRegistry) -> None:
    run = make_run("same")
    registry.add_run(run)
    assert registry.get_run("same") is run
    run.progress_percent = 50.0
    registry.update_run(run)
    assert registry.records()["same"]["progress_percent"] == 50.0


def test_two_registries_on_one_database_see_each_others_changes(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    with QueueRunRegistry(db) as first, QueueRunRegistry(db) as second:
        mine = make_run("from-second", "mod.b")
        second.add_run(mine)  # second learns the app's Run class from it
        run = make_run("shared")
        first.add_run(run)
        seen = second.get_run("shared")
        assert isinstance(seen, Run) and seen is not run  # rebuilt with the class it learned
        assert seen.created_at == run.created_at and seen.status is RunStatus.QUEUED
        run.status = RunStatus.RUNNING
        first.update_run(run)
        assert second.get_run("shared") is seen and seen.status == RunStatus.RUNNING  # updated in place
        assert first.get_runs_by_module("mod.b")[0].run_id == "from-second"


def test_a_fresh_registry_without_a_run_class_returns_run_records(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    with QueueRunRegistry(db) as writer:
        writer.add_run(make_run("r1", parameters={"k": 1}))
    with QueueRunRegistry(db) as reader:
        r = reader.get_run("r1")
    assert isinstance(r, RunRecord)
    assert r.status == RunStatus.QUEUED and r.parameters == {"k": 1}
    assert r.created_at is not None and r.created_at.tzinfo is not None


@pytest.mark.skipif(pydantic_run_class() is None, reason="pydantic v2 is not installed")
def test_pydantic_runs_are_stored_as_their_model_dump_and_rebuilt_as_models(tmp_path: Path) -> None:
    cls = pydantic_run_class()
    db = tmp_path / "q.db"
    run = cls(run_id="p1", module_id="mod.p", module_name="P", parameters={"a": [1, 2]})
    with QueueRunRegistry(db) as writer:
        writer.add_run(run)
        assert writer.records()["p1"] == run.model_dump(mode="json")
    with QueueRunRegistry(db, run_factory=cls) as reader:
        again = reader.get_run("p1")
    assert isinstance(again, cls) and again == run


def _writer_process(db: str, n: int) -> None:
    with QueueRunRegistry(db) as reg:
        for i in range(n):
            run = make_run(f"child-{i}", "mod.child")
            reg.add_run(run)
            run.status = RunStatus.COMPLETED
            reg.update_run(run)


def test_runs_written_by_other_processes_are_all_seen(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    with QueueRunRegistry(db) as reg:
        reg.add_run(make_run("parent"))
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_writer_process, args=(db, 50)) for _ in range(2)]
        for p in procs:
            p.start()
        for i in range(50):
            reg.update_run(make_run(f"parent-{i}"))
        for p in procs:
            p.join(DEADLINE)
            assert p.exitcode == 0
        done = reg.get_runs_by_status(RunStatus.COMPLETED)
        assert len(done) == 50  # both children wrote the same 50 ids
        assert len(reg) == 101
    with Queue(db) as q:  # every event was settled, none left in the claim indexes
        assert q.stats().by_type[RUN_EVENT_TYPE] == {"completed": 1 + 50 + 2 * 100}


def test_a_large_history_round_trips_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "data" / "run_history.json"
    original = _history(source, 6000)
    db = tmp_path / "q.db"
    progress: list[tuple[int, int]] = []
    with QueueRunRegistry(db) as reg:
        assert import_history(reg, source, lambda done, total: progress.append((done, total))) == 6000
        assert progress[0] == (0, 6000) and progress[-1] == (6000, 6000)
        assert reg.get_run("run-00003").status == "failed"
        assert len(reg.get_runs_by_status("running")) == 1200
    out = tmp_path / "export" / "run_history.json"
    with QueueRunRegistry(db) as reg:  # a new process's view: replayed from the database
        assert export_history(reg, out) == 6000
    assert out.read_bytes() == source.read_bytes()
    back = RunRegistry(out)  # the app's registry reads the export
    assert back.runs.keys() == original.runs.keys()
    assert back.get_run("run-00003") == original.get_run("run-00003")


def test_importing_twice_keeps_one_copy_of_each_run(tmp_path: Path) -> None:
    source = tmp_path / "run_history.json"
    _history(source, 50)
    with QueueRunRegistry(tmp_path / "q.db") as reg:
        import_history(reg, source)
        import_history(reg, source)
        assert len(reg) == 50
        assert list(reg.records()) == list(read_history(source))


def test_the_cli_imports_and_exports_with_a_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "run_history.json"
    _history(source, 2500)
    db = str(tmp_path / "q.db")
    assert cli_main(["--db", db, "runs", "import", str(source), "--progress"]) == 0
    captured = capsys.readouterr()
    assert "imported 2500 runs" in captured.out
    assert "[##############################] 2500/2500 runs" in captured.err
    out = tmp_path / "back.json"
    assert cli_main(["--db", db, "--json", "runs", "export", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["runs"] == 2500 and captured.err == ""
    assert out.read_bytes() == source.read_bytes()


def test_the_cli_refuses_a_missing_or_malformed_history(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    assert cli_main(["--db", db, "runs", "import", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"r1": 5}')
    assert cli_main(["--db", db, "runs", "import", str(bad)]) == 2
    bad.write_text("[1, 2")
    assert cli_main(["--db", db, "runs", "import", str(bad)]) == 2


def test_run_to_record_writes_what_pydantic_json_mode_writes() -> None:
    run = make_run("r", created_at=datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc))
    rec = run_to_record(run)
    assert rec["created_at"] == "2025-05-01T12:00:00Z" and rec["status"] == "queued"
    cls = pydantic_run_class()
    if cls is not None:
        model = cls(**{k: getattr(run, k) for k in rec})
        assert run_to_record(model) == rec
    with pytest.raises(ValueError):
        run_to_record({"module_id": "no id"})
