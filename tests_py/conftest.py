"""Shared fixtures: a fresh queue database per test, always on tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prismq_queue import Queue, Worker, WorkerConfig

MakeQueue = Callable[..., Queue]
MakeWorker = Callable[..., Worker]


@pytest.fixture
def make_queue(tmp_path: Path) -> Iterator[MakeQueue]:
    """Factory: ``make_queue(name="queue.db", **options)`` opens a queue under tmp_path.

    Every queue it opened is closed after the test.
    """
    opened: list[Queue] = []

    def factory(name: str = "queue.db", **options: Any) -> Queue:
        q = Queue(tmp_path / name, **options)
        opened.append(q)
        return q

    yield factory
    for q in opened:
        q.close()


@pytest.fixture
def queue(make_queue: MakeQueue) -> Queue:
    """An open queue on a fresh database (the sweeper is off so tests drive it)."""
    return make_queue(disable_sweeper=True)


@pytest.fixture
def make_worker(queue: Queue) -> Iterator[MakeWorker]:
    """Factory: ``make_worker(worker_id="w1", q=None, **config)`` registers a worker; all are closed after."""
    opened: list[Worker] = []

    def factory(worker_id: str = "w1", q: Queue | None = None, **config: Any) -> Worker:
        w = Worker(q if q is not None else queue, WorkerConfig(worker_id=worker_id, **config))
        opened.append(w)
        return w

    yield factory
    for w in opened:
        w.close()


@pytest.fixture
def worker(make_worker: MakeWorker) -> Worker:
    """A worker with default settings on the ``queue`` fixture."""
    return make_worker("w1")
