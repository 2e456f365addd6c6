"""Cost per run of the BackgroundTaskManager drop-in, and of QueueRunRegistry vs the JSON RunRegistry.

Prints a Markdown table (medians of --repeats runs):

1. Per run, from ``start_task`` to the end of a trivial coroutine with every registry update
   included, for --runs runs started at once: the in-memory manager (the original behaviour) vs
   the queue-backed one, with the same registry. "done" stops the clock when every coroutine has
   finished (what the app waits for); "durable" also waits until the queue backend has committed
   every transition.
2. One registry operation when the registry holds --runs runs: the app's JSON ``RunRegistry``
   (rewrites the whole file on every change) vs ``QueueRunRegistry``.

Run: ``PYTHONPATH=python python bench/bench_manager.py`` (``--runs 10000 --repeats 3`` by default).
The app's ``Run``/``RunRegistry`` are the test stand-ins (tests_py/app_standin.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests_py"))

from app_standin import RunRegistry, RunStatus, make_run  # noqa: E402
from prismq_queue import InMemoryTaskManager, QueuedTaskManager, QueueRunRegistry  # noqa: E402


async def _noop() -> None:
    return None


async def _drive(manager: Any, n: int) -> tuple[float, float]:
    runs = [make_run(f"run-{i}") for i in range(n)]
    t0 = time.perf_counter()
    for run in runs:
        manager.start_task(run, _noop())
    await manager.wait_all()
    t1 = time.perf_counter()
    if isinstance(manager, QueuedTaskManager):
        await manager.aflush()
    t2 = time.perf_counter()
    assert all(r.status == "completed" for r in runs)
    return (t1 - t0) / n * 1e6, (t2 - t0) / n * 1e6


def _per_run(backend: str, registry_kind: str, n: int, workdir: Path) -> tuple[float, float]:
    db = workdir / f"{backend}-{registry_kind}-{time.monotonic_ns()}.db"
    registry: Any
    if registry_kind == "dict":
        registry = RunRegistry(persist=False)
    else:
        registry = QueueRunRegistry(workdir / f"registry-{time.monotonic_ns()}.db")
    manager: Any
    if backend == "memory":
        manager = InMemoryTaskManager(registry)
    else:
        manager = QueuedTaskManager(registry, db)
    try:
        return asyncio.run(_drive(manager, n))
    finally:
        manager.close()
        if isinstance(registry, QueueRunRegistry):
            registry.close()


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} [{min(values):,.1f}-{max(values):,.1f}]"


def _time_each(fn: Callable[[], Any], count: int) -> list[float]:
    out = []
    for _ in range(count):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def _registry_ops(kind: str, n: int, workdir: Path, ops: int) -> dict[str, float]:
    """Median microseconds of update_run / get_run / get_runs_by_status on a registry of n runs."""
    runs = [make_run(f"run-{i:06d}", f"mod.{i % 7}") for i in range(n)]
    registry: Any
    if kind == "json":
        registry = RunRegistry(workdir / f"history-{time.monotonic_ns()}.json", persist=False)
        registry.runs = {r.run_id: r for r in runs}
        registry.persist = True
    else:
        registry = QueueRunRegistry(workdir / f"reg-{time.monotonic_ns()}.db")
        for start in range(0, n, 500):  # load through the API, in batches like an import
            chunk = runs[start : start + 500]
            registry.import_records({r.run_id: r.to_json() for r in chunk})
        for r in runs[:1]:
            registry.update_run(r)  # learn the Run class
    try:
        i = iter(range(10**9))

        def update() -> None:
            run = runs[next(i) % n]
            run.status = RunStatus.RUNNING
            registry.update_run(run)

        upd = _time_each(update, ops)
        get = _time_each(lambda: registry.get_run(runs[n // 2].run_id), ops)
        by_status = _time_each(lambda: registry.get_runs_by_status("running"), max(3, ops // 10))
        return {
            "update_run": statistics.median(upd),
            "get_run": statistics.median(get),
            "get_runs_by_status": statistics.median(by_status),
        }
    finally:
        if isinstance(registry, QueueRunRegistry):
            registry.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ops", type=int, default=30, help="registry operations timed per kind")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="prismq-bench-manager-"))
    try:
        load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
        started = time.monotonic()
        print("# BackgroundTaskManager drop-in: cost per run\n")
        print(f"- Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
        if load0 is not None:
            print(f"- Load average at start: {load0[0]:.2f}, {load0[1]:.2f}, {load0[2]:.2f}")
        print(f"- {args.runs:,} runs started at once, trivial coroutine; medians [min-max] of {args.repeats}")
        print()
        print(
            "| registry | manager | per run, done (us) | per run, durable (us) "
            "| ratio to in-memory (done / durable) |"
        )
        print("|---|---|---|---|---|")
        kinds = (("dict", "in-memory dict (no persistence)"), ("queue", "QueueRunRegistry"))
        for registry_kind, label in kinds:
            results: dict[str, tuple[list[float], list[float]]] = {}
            for backend in ("memory", "queue"):
                done, durable = [], []
                for _ in range(args.repeats):
                    d, u = _per_run(backend, registry_kind, args.runs, workdir)
                    done.append(d)
                    durable.append(u)
                results[backend] = (done, durable)
            base_done = statistics.median(results["memory"][0])
            base_durable = statistics.median(results["memory"][1])
            for backend, name in (("memory", "InMemoryTaskManager"), ("queue", "QueuedTaskManager")):
                done, durable = results[backend]
                r_done = statistics.median(done) / base_done
                r_durable = statistics.median(durable) / base_durable
                ratio = f"{r_done:.2f}x / {r_durable:.2f}x"
                print(f"| {label} | {name} | {_median(done)} | {_median(durable)} | {ratio} |")
        print(f"\n## Registry operations with {args.runs:,} runs stored (median us per call)\n")
        print("| registry | update_run | get_run | get_runs_by_status |")
        print("|---|---|---|---|")
        rows = {}
        for kind, name in (("json", "JSON RunRegistry (app)"), ("queue", "QueueRunRegistry")):
            reps = [_registry_ops(kind, args.runs, workdir, args.ops) for _ in range(args.repeats)]
            rows[kind] = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
            r = rows[kind]
            cells = f"{r['update_run']:,.1f} | {r['get_run']:,.1f} | {r['get_runs_by_status']:,.1f}"
            print(f"| {name} | {cells} |")
        speed = rows["json"]["update_run"] / rows["queue"]["update_run"]
        print(
            f"\nQueueRunRegistry.update_run is {speed:.1f}x faster than the JSON RunRegistry's "
            f"at {args.runs:,} runs."
        )
        print(f"\nWall time {time.monotonic() - started:.0f} s.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
