"""A stand-in for the app's ``Run``, ``RunStatus`` and ``RunRegistry``, written from SPEC.md.

The app uses pydantic; the package must work with any object that has the ``Run`` attributes, so
the stand-in is a plain dataclass (no pydantic). :func:`pydantic_run_class` builds the pydantic
variant when pydantic is installed. ``RunRegistry`` keeps runs in a dict and rewrites its JSON
history file on every change, as the app's does (``history_file=None``: ``./data/run_history.json``;
pass ``persist=False`` to keep it in memory only, for benchmarks of the managers themselves).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any


class RunStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


@dataclasses.dataclass
class Run:
    run_id: str
    module_id: str
    module_name: str
    status: RunStatus = RunStatus.QUEUED
    created_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(timezone.utc))
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    progress_percent: float = 0.0
    items_processed: int = 0
    items_total: int | None = None
    exit_code: int | None = None
    error_message: str | None = None
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        for name in ("created_at", "started_at", "completed_at"):
            out[name] = _iso(getattr(self, name))
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        values = dict(data)
        values["status"] = RunStatus(values["status"])
        for name in ("created_at", "started_at", "completed_at"):
            values[name] = _parse(values.get(name))
        return cls(**values)


class RunRegistry:
    """The app's registry: a dict of runs, the JSON history file rewritten on every change."""

    def __init__(self, history_file: Path | None = None, *, persist: bool = True) -> None:
        self.runs: dict[str, Any] = {}
        self.history_file = history_file or Path("./data/run_history.json")
        self.persist = persist
        self._load_history()

    def add_run(self, run: Any) -> None:
        self.runs[run.run_id] = run
        self._save_history()

    def update_run(self, run: Any) -> None:
        self.runs[run.run_id] = run
        self._save_history()

    def get_run(self, run_id: str) -> Any | None:
        return self.runs.get(run_id)

    def get_active_runs(self) -> list[Any]:
        return [r for r in self.runs.values() if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)]

    def get_runs_by_module(self, module_id: str) -> list[Any]:
        return [r for r in self.runs.values() if r.module_id == module_id]

    def get_runs_by_status(self, status: RunStatus) -> list[Any]:
        return [r for r in self.runs.values() if r.status == status]

    def get_recent_runs(self, limit: int = 50) -> list[Any]:
        return sorted(self.runs.values(), key=lambda r: r.created_at, reverse=True)[:limit]

    def cleanup_old_runs(self, days: int = 30) -> None:
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        old = [i for i, r in self.runs.items() if r.completed_at and r.completed_at < cutoff]
        for run_id in old:
            del self.runs[run_id]
        if old:
            self._save_history()

    def _dump(self, run: Any) -> dict[str, Any]:
        dump = getattr(run, "model_dump", None)
        return dump(mode="json") if callable(dump) else run.to_json()

    def _save_history(self) -> None:
        if not self.persist:
            return
        self.history_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.history_file, "w") as f:
            json.dump({run_id: self._dump(run) for run_id, run in self.runs.items()}, f, indent=2)

    def _load_history(self) -> None:
        if not self.persist or not self.history_file.exists():
            return
        with open(self.history_file) as f:
            data = json.load(f)
        self.runs = {run_id: Run.from_json(rec) for run_id, rec in data.items()}


def make_run(run_id: str, module_id: str = "mod.a", **fields: Any) -> Run:
    """A QUEUED run as the app creates it."""
    return Run(run_id=run_id, module_id=module_id, module_name=module_id.upper(), **fields)


def pydantic_run_class() -> Any:
    """The app's pydantic ``Run`` (same fields), or None when pydantic v2 is not installed."""
    try:
        import pydantic
    except ImportError:
        return None
    if not hasattr(pydantic.BaseModel, "model_dump"):
        return None

    class PydanticRun(pydantic.BaseModel):
        run_id: str
        module_id: str
        module_name: str
        status: RunStatus = RunStatus.QUEUED
        created_at: datetime = pydantic.Field(default_factory=lambda: datetime.now(timezone.utc))
        started_at: datetime | None = None
        completed_at: datetime | None = None
        duration_seconds: float | None = None
        progress_percent: float = 0.0
        items_processed: int = 0
        items_total: int | None = None
        exit_code: int | None = None
        error_message: str | None = None
        parameters: dict[str, Any] = pydantic.Field(default_factory=dict)

    return PydanticRun
