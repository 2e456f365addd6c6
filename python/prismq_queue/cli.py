"""The ``prismq-queue`` command line (also ``python -m prismq_queue``).

Examples::

    prismq-queue --db queue.db enqueue email.send '{"to": "a@example.com"}' --priority 10
    prismq-queue --db queue.db list --status queued,leased
    prismq-queue --db queue.db --json stats
    prismq-queue --db queue.db worker --handlers myapp.tasks --concurrency 4
    prismq-queue demo --tasks 3000 --workers 4
    prismq-queue --db queue.db runs import data/run_history.json

Exit codes: 0 ok, 1 the operation failed (e.g. unknown task, wrong state), 2 usage error,
3 the database cannot be opened.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import logging
import multiprocessing
import os
import queue as queue_module
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from ._errors import (
    LibraryNotFoundError,
    NetworkPathError,
    QueueError,
    QueueIOError,
    SchemaError,
)
from .config import WorkerConfig
from .models import SchedulingStrategy, Task
from .queue import EnqueueRequest, Queue
from .runner import HandlerRegistry, handlers, run_worker

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_DATABASE = 3

_DEMO_STRATEGIES = (
    SchedulingStrategy.FIFO,
    SchedulingStrategy.LIFO,
    SchedulingStrategy.PRIORITY,
    SchedulingStrategy.WEIGHTED_RANDOM,
)


class _UsageError(Exception):
    """A command-line value that cannot be used (exit code 2)."""


class _OpenError(Exception):
    """The database could not be opened (exit code 3)."""


# ---- output helpers --------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Task):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, BaseException):
        return str(value)
    return value


def _print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _print_task(task: Task, out: TextIO) -> None:
    rows = [(name, getattr(task, name)) for name in task.__dataclass_fields__ if name != "created"]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.write(f"{name.ljust(width)}  {_cell(value) if name != 'last_error' else value or '-'}\n")


# ---- argument parsing -----------------------------------------------------------------------


def _json_arg(what: str, text: str | None, *, want_object: bool = True) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _UsageError(f"{what} is not valid JSON: {exc}") from None
    if want_object and not isinstance(value, dict):
        raise _UsageError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _build_parser() -> argparse.ArgumentParser:
    db_help = "database file (default: $PRISMQ_QUEUE_DB_PATH, else the per-user default)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=db_help)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")

    parser = argparse.ArgumentParser(
        prog="prismq-queue",
        description="Inspect, feed and run the PrismQ persistent task queue.",
        epilog="Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 database cannot be opened.",
    )
    parser.add_argument("--db", metavar="PATH", default=None, help=db_help)
    parser.add_argument("--json", action="store_true", default=False, help="print JSON instead of tables")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    p = add("worker", "run a worker for registered handlers until SIGINT/SIGTERM")
    p.add_argument(
        "--handlers",
        metavar="MODULE[:ATTR]",
        required=True,
        help="module (or .py file) that registers handlers; ATTR names a HandlerRegistry in it",
    )
    p.add_argument("--strategy", choices=[s.value for s in SchedulingStrategy], help="claim order")
    p.add_argument("--capabilities", metavar="JSON", help="worker capabilities, a JSON object")
    p.add_argument("--types", metavar="A,B", help="task types to take (default: the registered ones)")
    p.add_argument("--concurrency", type=int, metavar="N", help="tasks run at once")
    p.add_argument("--worker-id", help="worker id (default: <hostname>-<pid>)")
    p.add_argument("--config", metavar="FILE", help="worker config file (.json or .toml)")
    p.add_argument("--lease", type=float, metavar="SECONDS", help="lease duration")
    p.add_argument("--poll-interval", type=float, metavar="SECONDS", help="claim wait")
    p.add_argument("--max-tasks", type=int, metavar="N", help="stop after N tasks")
    p.add_argument("--idle-exit", type=float, metavar="SECONDS", help="stop after this long without work")
    p.add_argument("--grace", type=float, default=30.0, metavar="SECONDS", help="shutdown wait (default 30)")
    p.add_argument(
        "--maintenance-interval",
        type=float,
        metavar="SECONDS",
        help="also run scheduled maintenance (defaults of `maintain`) about this often, e.g. 3600",
    )

    p = add("enqueue", "add a task")
    p.add_argument("type", help="task type")
    p.add_argument("payload", nargs="?", help="payload, a JSON object (default {})")
    p.add_argument("--priority", type=int, default=100, help="lower runs first (default 100)")
    p.add_argument("--delay", type=float, metavar="SECONDS", help="earliest start from now")
    p.add_argument("--max-attempts", type=int, default=5, help="attempts before failing (default 5)")
    p.add_argument("--requirements", metavar="JSON", help="required worker capabilities, a JSON object")
    p.add_argument("--key", metavar="KEY", help="idempotency key")

    p = add("get", "show one task")
    p.add_argument("id", type=int)

    p = add("list", "list tasks")
    p.add_argument("--status", metavar="S1,S2", help="filter by status (comma list)")
    p.add_argument("--type", metavar="T1,T2", help="filter by type (comma list)")
    p.add_argument("--limit", type=int, default=50, help="rows (default 50)")
    p.add_argument("--after", type=int, metavar="ID", help="cursor: ids after this one")
    p.add_argument("--desc", action="store_true", help="newest first")

    p = add("cancel", "cancel a task (a running one gets a cancel request)")
    p.add_argument("id", type=int)

    p = add("retry", "queue a failed or cancelled task again")
    p.add_argument("id", type=int)

    add("stats", "task counts by status and type")
    add("workers", "registered workers")

    p = add("logs", "a task's log")
    p.add_argument("id", type=int)
    p.add_argument("--limit", type=int, default=0, help="lines (default all)")

    add("sweep", "requeue or fail tasks whose lease expired, now")

    p = add("runs", "move the app's run history between its JSON file and the database")
    runs_sub = p.add_subparsers(dest="runs_command", metavar="ACTION")
    runs_sub.required = True
    for action, help_text in (
        ("import", "store the runs of a RunRegistry JSON history file in the database"),
        ("export", "write the database's runs to a JSON history file RunRegistry reads"),
    ):
        rp = runs_sub.add_parser(action, help=help_text, description=help_text, parents=[common])
        rp.add_argument("file", help="the history file, e.g. data/run_history.json")
        bar = rp.add_mutually_exclusive_group()
        bar.add_argument("--progress", action="store_true", default=None, help="always show a progress bar")
        bar.add_argument("--no-progress", action="store_false", dest="progress", help="never show one")

    from . import cli_ops  # here, not at the top: cli_ops imports this module's helpers

    cli_ops.add_commands(add, _COMMANDS)

    p = add("demo", "enqueue tasks and run several worker processes with different strategies")
    p.add_argument("--tasks", type=int, default=3000, help="tasks to enqueue (default 3000)")
    p.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    p.add_argument("--concurrency", type=int, default=2, help="tasks at once per worker (default 2)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the generated tasks")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    return parser


# ---- commands -----------------------------------------------------------------------------------


@contextmanager
def _open(db: str | None, **options: Any) -> Iterator[Queue]:
    try:
        q = Queue(db, **options)
    except (QueueIOError, SchemaError, NetworkPathError, LibraryNotFoundError) as exc:
        raise _OpenError(f"cannot open the queue database: {exc}") from None
    try:
        yield q
    finally:
        q.close()


def _cmd_enqueue(args: argparse.Namespace, out: TextIO) -> int:
    payload = _json_arg("payload", args.payload) or {}
    requirements = _json_arg("--requirements", args.requirements)
    with _open(args.db) as q:
        task = q.enqueue(
            args.type,
            payload,
            priority=args.priority,
            delay=args.delay,
            max_attempts=args.max_attempts,
            requirements=requirements,
            idempotency_key=args.key,
        )
    if args.json:
        _print_json(task, out)
    elif task.created is False:
        out.write(f"task {task.id} already exists for key {args.key!r} (status {task.status.value})\n")
    else:
        out.write(f"enqueued task {task.id} ({task.type}, priority {task.priority})\n")
    return EXIT_OK


def _cmd_get(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        task = q.get(args.id)
    if args.json:
        _print_json(task, out)
    else:
        _print_task(task, out)
    return EXIT_OK


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit < 1:
        raise _UsageError("--limit must be >= 1")
    with _open(args.db) as q:
        tasks = q.list(
            status=_csv(args.status),
            task_type=_csv(args.type),
            limit=args.limit,
            after_id=args.after,
            descending=args.desc,
        )
    if args.json:
        _print_json(tasks, out)
        return EXIT_OK
    headers = ("ID", "TYPE", "STATUS", "PRIO", "ATTEMPTS", "CREATED", "PROGRESS", "LAST ERROR")
    rows = [
        (
            t.id,
            t.type,
            t.status,
            t.priority,
            f"{t.attempts}/{t.max_attempts}",
            t.created_at,
            None if t.progress_percent is None else f"{t.progress_percent:.0f}%",
            t.last_error,
        )
        for t in tasks
    ]
    _print_table(headers, rows, out)
    return EXIT_OK


def _cmd_cancel_or_retry(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        task = q.cancel(args.id) if args.command == "cancel" else q.retry(args.id)
    if args.json:
        _print_json(task, out)
    elif args.command == "cancel" and task.status.value == "leased":
        out.write(f"task {task.id}: cancel requested (its worker will stop it)\n")
    else:
        out.write(f"task {task.id}: {task.status.value}\n")
    return EXIT_OK


def _cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        stats = q.stats()
    if args.json:
        _print_json(stats, out)
        return EXIT_OK
    statuses = ("queued", "leased", "completed", "failed", "cancelled")
    out.write(
        f"total {stats.total}, live workers {stats.workers}, oldest queued {_cell(stats.oldest_queued_at)}\n"
    )
    _print_table(("STATUS", "COUNT"), [(s, stats.by_status.get(s, 0)) for s in statuses], out)
    if stats.by_type:
        out.write("\n")
        rows = [(t, *(counts.get(s, 0) for s in statuses)) for t, counts in sorted(stats.by_type.items())]
        _print_table(("TYPE", *(s.upper() for s in statuses)), rows, out)
    return EXIT_OK


def _cmd_workers(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        workers = q.metrics(recent_failures=0).workers  # with heartbeat age and state
    if args.json:
        _print_json(workers, out)
        return EXIT_OK
    headers = ("WORKER", "STATE", "HOST", "PID", "STRATEGY", "RUNNING", "HEARTBEAT", "AGE", "TYPES", "CAPS")
    rows = [
        (
            w.worker_id,
            w.state,
            w.host,
            w.pid,
            w.strategy,
            w.running,
            w.heartbeat_at,
            f"{w.heartbeat_age_seconds:.1f} s",
            ",".join(w.types),
            w.capabilities or None,
        )
        for w in workers
    ]
    _print_table(headers, rows, out)
    return EXIT_OK


def _cmd_logs(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        q.get(args.id)  # an unknown id is an error, not an empty log
        entries = q.logs(args.id, limit=args.limit)
    if args.json:
        _print_json(entries, out)
        return EXIT_OK
    _print_table(
        ("TIME", "LEVEL", "MESSAGE", "DETAILS"), [(e.at, e.level, e.message, e.details) for e in entries], out
    )
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        result = q.sweep()
    if args.json:
        _print_json(result, out)
    else:
        out.write(f"requeued {result.requeued}, failed {result.failed}, cancelled {result.cancelled}\n")
    return EXIT_OK


def _load_registry(spec: str) -> HandlerRegistry:
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise _UsageError("--handlers needs a module name or a .py file")
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            path = Path(module_name).resolve()
            if not path.is_file():
                raise _UsageError(f"--handlers: no such file {module_name}")
            name = f"_prismq_handlers_{path.stem}"
            file_spec = importlib.util.spec_from_file_location(name, path)
            if file_spec is None or file_spec.loader is None:
                raise _UsageError(f"--handlers: cannot import {module_name}")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[name] = module
            file_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _UsageError(f"--handlers: cannot import {module_name}: {exc}") from None
    if attr:
        registry = getattr(module, attr, None)
        if not isinstance(registry, HandlerRegistry):
            raise _UsageError(f"--handlers: {module_name}:{attr} is not a HandlerRegistry")
        return registry
    if len(handlers) > 0:
        return handlers
    found = [v for v in vars(module).values() if isinstance(v, HandlerRegistry) and len(v) > 0]
    if len(found) == 1:
        return found[0]
    raise _UsageError(
        f"--handlers: {module_name} registers no handlers (use @prismq_queue.task or MODULE:ATTR)"
    )


def _worker_config(args: argparse.Namespace) -> WorkerConfig:
    config = WorkerConfig.from_file(args.config) if args.config else WorkerConfig.from_env()
    changes: dict[str, Any] = {}
    if args.worker_id:
        changes["worker_id"] = args.worker_id
    if args.strategy:
        changes["scheduling_strategy"] = args.strategy
    if args.capabilities is not None:
        changes["capabilities"] = _json_arg("--capabilities", args.capabilities)
    types = _csv(args.types)
    if types is not None:
        changes["types"] = types
    if args.concurrency is not None:
        changes["concurrency"] = args.concurrency
    if args.lease is not None:
        changes["lease_duration_seconds"] = args.lease
    if args.poll_interval is not None:
        changes["poll_interval_seconds"] = args.poll_interval
    return dataclasses.replace(config, **changes) if changes else config


def _cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    registry = _load_registry(args.handlers)
    config = _worker_config(args)
    logging.getLogger("prismq_queue").info(
        "worker %s (%s) handling %s",
        config.worker_id,
        config.scheduling_strategy.value,
        ", ".join(registry.types()),
    )
    if args.maintenance_interval is not None and args.maintenance_interval < 60:
        raise _UsageError("--maintenance-interval must be at least 60 seconds")
    with _open(args.db) as q:
        if args.maintenance_interval is not None:
            q.schedule_maintenance(args.maintenance_interval)
        summary = run_worker(
            q,
            config,
            registry,
            max_tasks=args.max_tasks,
            idle_exit_seconds=args.idle_exit,
            grace_seconds=args.grace,
        )
    if args.json:
        _print_json(summary, out)
    else:
        out.write(
            f"worker {config.worker_id}: completed {summary.completed}, failed {summary.failed}, "
            f"cancelled {summary.cancelled}, released {summary.released} "
            f"in {summary.duration_seconds:.1f} s\n"
        )
    return EXIT_OK


# ---- runs import / export ------------------------------------------------------------------------

_PROGRESS_MIN_RUNS = 1000


def _progress_bar(label: str, show: bool | None, stream: TextIO) -> Callable[[int, int], None]:
    """A text progress bar on ``stream`` for files of at least 1,000 runs (or when ``show``)."""
    state = {"last": -1}

    def update(done: int, total: int) -> None:
        visible = show if show is not None else (stream.isatty() and total >= _PROGRESS_MIN_RUNS)
        if not visible or total <= 0:
            return
        width = 30
        filled = width * done // total
        percent = 100 * done // total
        if percent == state["last"] and done != total:
            return
        state["last"] = percent
        end = "\n" if done >= total else ""
        stream.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs{end}")
        stream.flush()

    return update


def _cmd_runs(args: argparse.Namespace, out: TextIO) -> int:
    from .runs import QueueRunRegistry, export_history, import_history

    path = Path(args.file)
    if args.runs_command == "import" and not path.is_file():
        raise _UsageError(f"no such file: {path}")
    with _open(args.db) as q:
        registry = QueueRunRegistry(queue=q)
        try:
            if args.runs_command == "import":
                try:
                    n = import_history(registry, path, _progress_bar("importing", args.progress, sys.stderr))
                except (ValueError, OSError) as exc:
                    raise _UsageError(f"cannot import {path}: {exc}") from None
                total = len(registry)
            else:
                try:
                    n = export_history(registry, path, _progress_bar("exporting", args.progress, sys.stderr))
                except OSError as exc:
                    raise _UsageError(f"cannot write {path}: {exc}") from None
                total = n
        finally:
            registry.close()
    if args.json:
        _print_json({"action": args.runs_command, "file": str(path), "runs": n, "total_runs": total}, out)
    elif args.runs_command == "import":
        out.write(f"imported {n} runs from {path} ({total} runs in {q.path})\n")
    else:
        out.write(f"exported {n} runs to {path}\n")
    return EXIT_OK


# ---- demo -------------------------------------------------------------------------------------


def _demo_worker(
    db: str,
    worker_id: str,
    strategy: str,
    concurrency: int,
    stop: Any,
    results: Any,
) -> None:
    """Body of one demo worker process (started with the ``spawn`` method).

    :param stop: a multiprocessing Event; set it to stop the worker.
    :param results: a multiprocessing Queue receiving this worker's report.
    """
    from . import demo_handlers

    # Failed attempts are part of the demo; keep the workers' stderr quiet about them.
    logging.getLogger("prismq_queue").setLevel(logging.ERROR)
    report: dict[str, Any] = {"worker_id": worker_id, "strategy": strategy, "error": None}
    local_stop = threading.Event()

    def watch() -> None:
        stop.wait()
        local_stop.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        with Queue(db) as q:
            config = WorkerConfig(
                worker_id=worker_id,
                scheduling_strategy=SchedulingStrategy.coerce(strategy),
                concurrency=concurrency,
                poll_interval_seconds=0.2,
                lease_duration_seconds=30,
            )
            summary = run_worker(q, config, demo_handlers.registry, stop_event=local_stop)
        report.update(dataclasses.asdict(summary))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        report["error"] = f"{type(exc).__name__}: {exc}"
    started = demo_handlers.started
    first = [p for _, p in started[:100]]
    report["started"] = len(started)
    report["mean_priority_first_100"] = round(sum(first) / len(first), 1) if first else None
    report["first_ids"] = [i for i, _ in started[:5]]
    report["last_ids"] = [i for i, _ in started[-5:]]
    results.put(report)


def _demo_tasks(n: int, seed: int) -> list[EnqueueRequest]:
    import random

    from .demo_handlers import DEMO_TYPES
    from .models import RetryConfig

    rnd = random.Random(seed)
    fast_retry = RetryConfig(base_seconds=0.05, cap_seconds=0.5, jitter=0.2)
    items: list[EnqueueRequest] = []
    for i in range(n):
        task_type = DEMO_TYPES[i % len(DEMO_TYPES)]
        priority = rnd.choice((0, 10, 50, 100, 100, 200))
        payload: dict[str, Any] = {"n": i}
        retry = None
        if task_type == "email.send":
            payload["to"] = f"user{i}@example.com"
        elif task_type == "image.resize":
            payload["rounds"] = rnd.randint(50, 400)
        elif task_type == "report.build":
            payload["pages"] = rnd.randint(1, 20)
        else:
            retry = fast_retry
            payload["fail_first"] = rnd.random() < 0.3
            payload["fail_always"] = rnd.random() < 0.02
        items.append(EnqueueRequest(task_type, payload, priority=priority, max_attempts=3, retry=retry))
    return items


def _progress_line(counts: dict[str, int], total: int, elapsed: float) -> str:
    done = counts.get("completed", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
    rate = done / elapsed if elapsed > 0 else 0.0
    return (
        f"{done}/{total} done  queued {counts.get('queued', 0)}  leased {counts.get('leased', 0)}  "
        f"completed {counts.get('completed', 0)}  failed {counts.get('failed', 0)}  "
        f"{elapsed:.1f} s  {rate:.0f} tasks/s"
    )


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.tasks < 1 or args.workers < 1 or args.concurrency < 1:
        raise _UsageError("--tasks, --workers and --concurrency must be >= 1")
    tmpdir: str | None = None
    db = args.db
    if db is None:
        tmpdir = tempfile.mkdtemp(prefix="prismq-demo-")
        db = os.path.join(tmpdir, "demo.db")
    try:
        return _run_demo(args, db, out)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _run_demo(args: argparse.Namespace, db: str, out: TextIO) -> int:
    quiet = bool(args.json)
    interactive = out.isatty() and not quiet

    def say(text: str) -> None:
        if not quiet:
            out.write(text + "\n")
            out.flush()

    with _open(db) as q:
        before = {t.id for t in q.iter_tasks(status=("queued", "leased"))}
        if before:
            say(f"note: {len(before)} unfinished tasks were already in {db}")
        items = _demo_tasks(args.tasks, args.seed)
        ids: list[int] = []
        for start in range(0, len(items), 500):
            ids.extend(t.id for t in q.enqueue_many(items[start : start + 500]))
        say(f"enqueued {len(ids)} tasks of {len({i.task_type for i in items})} types into {q.path}")
        wanted = set(ids)

        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        results = ctx.Queue()
        procs = []
        for n in range(args.workers):
            strategy = _DEMO_STRATEGIES[n % len(_DEMO_STRATEGIES)].value
            worker_id = f"demo-{n + 1}-{strategy}"
            proc = ctx.Process(
                target=_demo_worker,
                args=(q.path, worker_id, strategy, args.concurrency, stop, results),
                name=worker_id,
            )
            procs.append(proc)
        started = time.monotonic()
        for proc in procs:
            proc.start()
        say(f"started {len(procs)} worker processes: " + ", ".join(p.name for p in procs))

        finished = False
        last_print = 0.0
        counts: dict[str, int] = {}
        try:
            while True:
                counts = _demo_counts(q)
                elapsed = time.monotonic() - started
                open_tasks = counts.get("queued", 0) + counts.get("leased", 0)
                if open_tasks == 0:
                    finished = True
                if interactive:
                    out.write("\r" + _progress_line(counts, len(wanted), elapsed) + "   ")
                    out.flush()
                elif not quiet and (finished or elapsed - last_print >= 1.0):
                    say(_progress_line(counts, len(wanted), elapsed))
                    last_print = elapsed
                if finished or elapsed > args.timeout or not any(p.is_alive() for p in procs):
                    break
                time.sleep(0.25)
        except KeyboardInterrupt:
            say("\ninterrupted: stopping the workers")
        total_time = time.monotonic() - started
        if interactive:
            out.write("\n")
        stop.set()
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60.0
        while len(reports) < len(procs) and time.monotonic() < deadline:
            if not any(p.is_alive() for p in procs) and results.empty():
                break
            try:
                reports.append(results.get(timeout=0.5))
            except queue_module.Empty:
                continue
        for proc in procs:
            proc.join(10.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(5.0)

        counts = _demo_counts(q)
        retried = 0
        dead = 0
        for t in q.iter_tasks(task_type="sync.flaky"):
            if t.id in wanted:
                retried += t.attempts > 1
                dead += t.status.value == "failed"

    reports.sort(key=lambda r: str(r["worker_id"]))
    done = counts.get("completed", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
    summary = {
        "database": db,
        "tasks": len(wanted),
        "workers": len(procs),
        "finished": finished,
        "status": counts,
        "retried_tasks": retried,
        "dead_letter_tasks": dead,
        "total_seconds": round(total_time, 3),
        "tasks_per_second": round(done / total_time, 1) if total_time > 0 else None,
        "per_worker": reports,
    }
    if quiet:
        _print_json(summary, out)
    else:
        _print_demo_summary(summary, out)
    errors = [r for r in reports if r.get("error")]
    return EXIT_OK if finished and not errors and len(reports) == len(procs) else EXIT_FAILED


def _demo_counts(q: Queue) -> dict[str, int]:
    """Task counts by status over the demo's task types."""
    from .demo_handlers import DEMO_TYPES

    counts: dict[str, int] = {}
    by_type = q.stats().by_type
    for task_type in DEMO_TYPES:
        for status, n in by_type.get(task_type, {}).items():
            counts[status] = counts.get(status, 0) + n
    return counts


def _print_demo_summary(summary: dict[str, Any], out: TextIO) -> None:
    out.write("\nper worker (order evidence: mean priority of the first 100 tasks started; first/last ids)\n")
    rows = [
        (
            r["worker_id"],
            r["strategy"],
            r.get("completed"),
            r.get("failed"),
            r.get("mean_priority_first_100"),
            ",".join(map(str, r.get("first_ids") or [])),
            ",".join(map(str, r.get("last_ids") or [])),
            r.get("error"),
        )
        for r in summary["per_worker"]
    ]
    headers = ("WORKER", "STRATEGY", "COMPLETED", "FAILED", "MEAN PRIO 100", "FIRST IDS", "LAST IDS", "ERROR")
    _print_table(headers, rows, out)
    status = summary["status"]
    out.write(
        f"\n{summary['tasks']} tasks, {summary['workers']} workers: "
        f"completed {status.get('completed', 0)}, failed (dead letter) {status.get('failed', 0)}, "
        f"still open {status.get('queued', 0) + status.get('leased', 0)}\n"
        f"retried after a failure: {summary['retried_tasks']} tasks; "
        f"failures reported by workers: {sum(int(r.get('failed') or 0) for r in summary['per_worker'])}\n"
        f"total time {summary['total_seconds']:.2f} s, {summary['tasks_per_second']} tasks/s\n"
    )
    if not summary["finished"]:
        out.write("the demo did not finish: some tasks are still open\n")


# ---- entry point ----------------------------------------------------------------------------

_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "worker": _cmd_worker,
    "enqueue": _cmd_enqueue,
    "get": _cmd_get,
    "list": _cmd_list,
    "cancel": _cmd_cancel_or_retry,
    "retry": _cmd_cancel_or_retry,
    "stats": _cmd_stats,
    "workers": _cmd_workers,
    "logs": _cmd_logs,
    "sweep": _cmd_sweep,
    "runs": _cmd_runs,
    "demo": _cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    :param argv: arguments without the program name (default ``sys.argv[1:]``).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    out = sys.stdout
    try:
        return _COMMANDS[args.command](args, out)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"prismq-queue: error: {exc}\n")
        return EXIT_USAGE
    except _OpenError as exc:
        _report_error(args, str(exc), out)
        return EXIT_NO_DATABASE
    except QueueError as exc:
        _report_error(args, f"{type(exc).__name__}: {exc}", out, exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _report_error(args: argparse.Namespace, message: str, out: TextIO, exc: QueueError | None = None) -> None:
    if args.json:
        body: dict[str, Any] = {"error": message}
        if exc is not None:
            body["type"] = type(exc).__name__
            body["code"] = exc.code
        _print_json(body, out)
    sys.stderr.write(f"prismq-queue: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
