"""Operator commands of ``prismq-queue``: metrics, top, doctor, maintain, backup, restore, purge, requeue.

Registered by :mod:`prismq_queue.cli`; every command takes ``--db`` and ``--json`` like the others.

Examples::

    prismq-queue top                        # live view until Ctrl-C (--once: one frame)
    prismq-queue metrics --prometheus       # the text a /metrics endpoint serves
    prismq-queue doctor --integrity quick   # findings with what to do; exit 1 on warnings
    prismq-queue maintain --retention-days 14 --checkpoint truncate
    prismq-queue backup /backups/queue.db ; prismq-queue restore /backups/queue.db --yes
    prismq-queue purge --status completed --older-than-days 7          # dry run: prints the count
    prismq-queue requeue --status failed --error "timeout" --yes
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from .cli import _cell, _csv, _open, _print_json, _UsageError
from .ops import BackupProgress, BulkResult, Metrics, _default_target, restore

__all__ = ["add_commands", "render_top"]

EXIT_OK = 0
EXIT_FAILED = 1

Command = Callable[[argparse.Namespace, TextIO], int]
AddParser = Callable[[str, str], argparse.ArgumentParser]

_STATUSES = ("queued", "leased", "completed", "failed", "cancelled")


def add_commands(add: AddParser, commands: dict[str, Command]) -> None:
    """Add the operator subcommands with ``add`` and their handlers to ``commands``."""
    p = add("metrics", "queue health: depth, throughput, latency percentiles, workers")
    p.add_argument("--window", type=float, default=60.0, metavar="SECONDS", help="window (default 60)")
    p.add_argument("--prometheus", action="store_true", help="print the Prometheus text exposition format")
    commands["metrics"] = _cmd_metrics

    p = add("top", "live view of the queue, refreshed until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="refresh (default 1)")
    p.add_argument(
        "--window", type=float, default=60.0, metavar="SECONDS", help="throughput window (default 60)"
    )
    p.add_argument("--failures", type=int, default=5, metavar="N", help="recent failures shown (default 5)")
    p.add_argument(
        "--once", action="store_true", help="print one frame without terminal control codes and exit"
    )
    commands["top"] = _cmd_top

    p = add("doctor", "check the database and say what to do about each finding (exit 1 on warnings)")
    p.add_argument(
        "--integrity", choices=("none", "quick", "full"), default="none", help="also check the file"
    )
    p.add_argument("--wal-warn-mb", type=float, metavar="MB", help="warn above this -wal size (default 64)")
    p.add_argument("--min-free-mb", type=float, metavar="MB", help="warn below this free disk (default 512)")
    commands["doctor"] = _cmd_doctor

    p = add("maintain", "retention, vacuum, optimize, checkpoint and integrity check, now")
    p.add_argument(
        "--retention-days",
        type=float,
        default=30.0,
        metavar="N",
        help="delete completed and cancelled tasks finished more than N days ago (default 30; 0 keeps)",
    )
    p.add_argument("--purge-failed", action="store_true", help="delete old failed tasks too")
    p.add_argument(
        "--prune-workers-days",
        type=float,
        default=7.0,
        metavar="N",
        help="forget workers gone for N days (default 7; 0 keeps)",
    )
    p.add_argument("--no-vacuum", action="store_true", help="skip the incremental vacuum")
    p.add_argument(
        "--vacuum-full",
        action="store_true",
        help="rewrite the whole file (stop workers first; switches old files to incremental vacuum)",
    )
    p.add_argument("--no-optimize", action="store_true", help="skip PRAGMA optimize")
    p.add_argument(
        "--recount",
        action="store_true",
        help="rebuild the depth counters from the tasks table (only after other programs wrote to it)",
    )
    p.add_argument(
        "--checkpoint",
        choices=("none", "passive", "full", "restart", "truncate"),
        default="passive",
        help="WAL checkpoint mode (default passive; truncate shrinks the -wal when quiet)",
    )
    p.add_argument(
        "--integrity",
        choices=("none", "quick", "full"),
        default="quick",
        help="integrity check at the end (default quick)",
    )
    commands["maintain"] = _cmd_maintain

    p = add("backup", "write a consistent, verified copy of the database while workers run")
    p.add_argument("dest", help="backup file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--quick-check", action="store_true", help="verify with quick_check (faster on big files)")
    commands["backup"] = _cmd_backup

    p = add("restore", "replace the database (--db) with a backup; refused while it is in use")
    p.add_argument("backup", help="backup file written by `prismq-queue backup`")
    p.add_argument("--yes", action="store_true", help="replace an existing database without asking")
    commands["restore"] = _cmd_restore

    for name, verb in (("purge", "delete"), ("requeue", "queue again")):
        default = "completed,failed,cancelled" if name == "purge" else "failed"
        p = add(name, f"{verb} the tasks matching a filter (without --yes: a dry run that counts them)")
        p.add_argument("--status", metavar="S1,S2", help=f"statuses (default {default})")
        p.add_argument("--type", metavar="T1,T2", help="task types")
        p.add_argument("--older-than-days", type=float, metavar="N", help="finished more than N days ago")
        p.add_argument(
            "--created-before", metavar="ISO", help="enqueued before this time (ISO 8601; UTC if naive)"
        )
        p.add_argument("--error", metavar="TEXT", help="last error contains TEXT")
        p.add_argument("--limit", type=int, metavar="N", help="at most N tasks")
        p.add_argument("--dry-run", action="store_true", help="only count (the default without --yes)")
        p.add_argument("--yes", action="store_true", help=f"{verb} them")
        commands[name] = _cmd_bulk


# ---- formatting ---------------------------------------------------------------------------------


def _secs(s: float) -> str:
    """Format a duration compactly: 850ms, 3.2s, 4m05s, 2h03m."""
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _num(n: int) -> str:
    return f"{n:,}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs]
        return "  ".join(parts).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def render_top(
    m: Metrics,
    path: str,
    *,
    width: int = 120,
    height: int = 40,
    interval: float | None = None,
    previous: Metrics | None = None,
) -> list[str]:
    """Render one frame of ``prismq-queue top`` as lines (at most ``height``, each at most ``width``).

    :param previous: the last frame's metrics; retries per second come from the difference.
    """
    when = m.at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    head = f"prismq-queue top  {when}"
    if interval is not None:
        head += f"  every {interval:g} s, Ctrl-C quits"
    head += f"  {path}"  # last: a long path is what gets cut on a narrow terminal
    s = m.by_status
    oldest = (
        "" if m.oldest_eligible is None else f" (oldest eligible {_secs(m.oldest_eligible.waiting_seconds)})"
    )
    tp = m.throughput
    rate = "-" if tp.failure_rate is None else f"{tp.failure_rate * 100:.1f}%"
    retries = f"retries {_num(m.totals.retried)} total"
    if previous is not None and m.at > previous.at:
        per_s = (m.totals.retried - previous.totals.retried) / (m.at - previous.at).total_seconds()
        retries += f" ({per_s:.1f}/s)"
    lines = [
        head,
        f"TASKS {_num(m.total)}  queued {_num(s.get('queued', 0))}{oldest}  "
        f"leased {_num(s.get('leased', 0))}  completed {_num(s.get('completed', 0))}  "
        f"failed {_num(s.get('failed', 0))}  cancelled {_num(s.get('cancelled', 0))}",
        f"LAST {_secs(tp.span_seconds)}  {tp.per_second:.1f} tasks/s  completed {_num(tp.completed)}  "
        f"failed {_num(tp.failed)}  failure rate {rate}  {retries}  "
        f"expired leases {m.expired_leases}  busy retries {m.busy_retries}",
        "",
    ]
    types = sorted(set(m.by_type) | set(tp.by_type) | set(m.latency))
    rows = []
    for t in types:
        counts = m.by_type.get(t, {})
        ev = tp.by_type.get(t)
        lat = m.latency.get(t)
        done = 0 if ev is None else ev.completed + ev.failed
        wait = "-" if lat is None or not lat.wait.count else f"{_secs(lat.wait.p50)}/{_secs(lat.wait.p95)}"
        run = "-" if lat is None or not lat.run.count else f"{_secs(lat.run.p50)}/{_secs(lat.run.p95)}"
        rows.append([t, *(_num(counts.get(st, 0)) for st in _STATUSES), _num(done), wait, run])
    lines += _table(
        (
            "TYPE",
            "QUEUED",
            "LEASED",
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "DONE",
            "WAIT p50/p95",
            "RUN p50/p95",
        ),
        rows,
        right={1, 2, 3, 4, 5, 6},
    )
    ws = m.workers_by_state
    lines += [
        "",
        f"WORKERS  {ws.get('active', 0)} active  {ws.get('stale', 0)} stale  {ws.get('gone', 0)} gone",
    ]
    live = [w for w in m.workers if w.state != "gone"] + [w for w in m.workers if w.state == "gone"]
    lines += _table(
        ("WORKER", "STATE", "STRATEGY", "RUNNING", "HEARTBEAT", "HOST", "PID"),
        [
            [
                w.worker_id,
                w.state,
                str(w.strategy),
                str(w.running),
                _secs(w.heartbeat_age_seconds) + " ago",
                w.host,
                str(w.pid),
            ]
            for w in live
        ],
        right={3},
    )
    lines += ["", "RECENT FAILURES"]
    lines += _table(
        ("TASK", "TYPE", "FINISHED", "ATTEMPTS", "ERROR"),
        [
            [
                str(f.task_id),
                f.type,
                "-" if f.finished_at is None else f.finished_at.astimezone().strftime("%H:%M:%S"),
                str(f.attempts),
                " ".join(f.error.split()),
            ]
            for f in m.recent_failures
        ],
        right={0, 3},
    )
    if len(lines) > height:
        lines = lines[: height - 1] + [f"... {len(lines) - height + 1} more lines (enlarge the terminal)"]
    return [ln if len(ln) <= width else ln[: max(width - 1, 0)] + "…" for ln in lines]


# ---- commands -----------------------------------------------------------------------------------


def _cmd_metrics(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        if args.prometheus:
            out.write(q.metrics_text(args.window))
            return EXIT_OK
        m = q.metrics(args.window)
        path = q.path
    if args.json:
        _print_json(m, out)
    else:
        out.write("\n".join(render_top(m, path, width=10_000, height=10_000)) + "\n")
    return EXIT_OK


def _enable_vt(stream: TextIO) -> None:
    """Let a Windows console interpret ANSI control codes (Windows 10 and later)."""
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.GetStdHandle(-11)  # STD_OUTPUT_HANDLE
        mode = wintypes.DWORD()
        if kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            kernel32.SetConsoleMode(handle, mode.value | 0x0004)  # ENABLE_VIRTUAL_TERMINAL_PROCESSING


def _cmd_top(args: argparse.Namespace, out: TextIO) -> int:
    if args.interval <= 0 or args.window <= 0 or args.failures < 0:
        raise _UsageError("--interval and --window must be > 0, --failures >= 0")
    with _open(args.db) as q:
        if args.once:
            # On a terminal fit its width; piped to a file or a script, keep whole lines.
            width = shutil.get_terminal_size((120, 40)).columns if out.isatty() else 10_000
            m = q.metrics(args.window, recent_failures=args.failures)
            out.write("\n".join(render_top(m, q.path, width=width, height=10_000)) + "\n")
            return EXIT_OK
        _enable_vt(out)
        out.write("\x1b[?1049h\x1b[?25l")  # alternate screen, hide the cursor
        previous: Metrics | None = None
        try:
            while True:
                size = shutil.get_terminal_size((120, 40))
                m = q.metrics(args.window, recent_failures=args.failures)
                lines = render_top(
                    m,
                    q.path,
                    width=size.columns,
                    height=size.lines - 1,
                    interval=args.interval,
                    previous=previous,
                )
                previous = m
                out.write("\x1b[H" + "".join(ln + "\x1b[K\n" for ln in lines) + "\x1b[J")
                out.flush()
                time.sleep(args.interval)
        except KeyboardInterrupt:
            pass
        finally:
            out.write("\x1b[?25h\x1b[?1049l")  # cursor back, main screen back
            out.flush()
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    options: dict[str, Any] = {"integrity": args.integrity}
    if args.wal_warn_mb is not None:
        options["wal_warn_bytes"] = max(1, int(args.wal_warn_mb * (1 << 20)))
    if args.min_free_mb is not None:
        options["min_free_bytes"] = max(1, int(args.min_free_mb * (1 << 20)))
    # The doctor diagnoses a network path instead of refusing to open it.
    with _open(args.db, allow_network_path=True) as q:
        report = q.doctor(**options)
    if args.json:
        _print_json(report, out)
        return EXIT_OK if report.ok else EXIT_FAILED
    out.write(f"prismq-queue doctor  {report.path}  (schema version {report.schema_version})\n")
    width = max(len(f.check) for f in report.findings)
    for f in report.findings:
        label = f.severity.upper() if f.severity in ("warning", "error") else f.severity
        out.write(f"  {label:<8} {f.check:<{width}}  {f.message}\n")
        if f.advice:
            out.write(f"  {'':<8} {'':<{width}}  -> {f.advice}\n")
    warnings = sum(f.severity == "warning" for f in report.findings)
    errors = sum(f.severity == "error" for f in report.findings)
    out.write(f"{errors} errors, {warnings} warnings\n")
    return EXIT_OK if report.ok else EXIT_FAILED


def _cmd_maintain(args: argparse.Namespace, out: TextIO) -> int:
    if args.retention_days < 0 or args.prune_workers_days < 0:
        raise _UsageError("--retention-days and --prune-workers-days must be >= 0")
    with _open(args.db) as q:
        r = q.maintain(
            retention_days=args.retention_days,
            purge_failed=args.purge_failed,
            prune_workers_days=args.prune_workers_days,
            incremental_vacuum=not args.no_vacuum,
            vacuum_full=args.vacuum_full,
            optimize=not args.no_optimize,
            recount=args.recount,
            checkpoint=args.checkpoint,
            integrity=args.integrity,
        )
    if args.json:
        _print_json(r, out)
        return EXIT_OK if r.integrity is None or r.integrity.ok else EXIT_FAILED
    if r.retention is not None:
        out.write(
            f"retention: deleted {_num(r.retention.tasks_deleted)} tasks ({', '.join(r.retention.statuses)}) "
            f"finished before {_cell(r.retention.cutoff)} and {_num(r.retention.logs_deleted)} log lines\n"
        )
    out.write(f"pruned {r.workers_pruned} gone workers from the registry\n")
    if r.vacuum is not None:
        kind = "full vacuum" if r.vacuum.full else "incremental vacuum"
        out.write(f"{kind}: freed {_num(r.vacuum.pages_freed)} pages (auto_vacuum {r.vacuum.auto_vacuum})\n")
    if r.optimized:
        out.write("optimize: planner statistics refreshed\n")
    if r.recounted is not None:
        out.write(f"recount: {_num(r.recounted)} counter rows corrected\n")
    if r.checkpoint is not None:
        c = r.checkpoint
        state = "could not finish (busy)" if c.busy else "done"
        out.write(f"checkpoint ({c.mode}): {c.checkpointed}/{c.wal_frames} WAL frames copied, {state}\n")
    if r.integrity is not None:
        out.write(f"integrity ({r.integrity.mode}): {'; '.join(r.integrity.messages)}\n")
    mb = 1 << 20
    out.write(
        f"database {r.db_bytes_before / mb:.1f} -> {r.db_bytes_after / mb:.1f} MiB, "
        f"-wal {r.wal_bytes_before / mb:.1f} -> {r.wal_bytes_after / mb:.1f} MiB, "
        f"{r.duration_seconds:.2f} s\n"
    )
    return EXIT_OK if r.integrity is None or r.integrity.ok else EXIT_FAILED


class _ProgressPrinter:
    """Shows backup or restore progress on stderr: a bar on a terminal, a line per phase otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.phase = ""

    def __call__(self, p: BackupProgress) -> None:
        if not self.enabled:
            return
        if self.tty:
            bar = "#" * int(p.fraction * 30)
            sys.stderr.write(
                f"\r{p.phase:<6} [{bar:<30}] {p.fraction:6.1%} {p.pages_done}/{p.pages_total} pages"
            )
            if p.phase == "done":
                sys.stderr.write("\n")
        elif p.phase != self.phase:
            sys.stderr.write(f"{p.phase} {p.pages_done}/{p.pages_total} pages\n")
        self.phase = p.phase
        sys.stderr.flush()


def _cmd_backup(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args.db) as q:
        r = q.backup(
            args.dest,
            overwrite=args.overwrite,
            quick_check=args.quick_check,
            progress=_ProgressPrinter(not args.json),
        )
    if args.json:
        _print_json(r, out)
    else:
        out.write(
            f"backup {r.path}: {r.bytes / (1 << 20):.1f} MiB, {_num(r.tasks)} tasks, "
            f"schema {r.schema_version}, integrity {'; '.join(r.integrity)}, {r.duration_seconds:.2f} s\n"
        )
    return EXIT_OK


def _cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    target = args.db if args.db is not None else _default_target()
    if os.path.exists(target) and not args.yes:
        if not sys.stdin.isatty():
            raise _UsageError(f"{target} exists: pass --yes to replace it with {args.backup}")
        answer = input(f"replace {target} with {args.backup}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.write("not restored\n")
            return EXIT_FAILED
    r = restore(args.backup, target, progress=_ProgressPrinter(not args.json))
    if args.json:
        _print_json(r, out)
    else:
        out.write(
            f"restored {r.path} from {args.backup}: {_num(r.tasks)} tasks, schema {r.schema_version}, "
            f"integrity {'; '.join(r.integrity)}\n"
        )
        for f in r.stale_files_removed:
            out.write(f"removed stale {f}\n")
    return EXIT_OK


def _parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"--created-before: not an ISO 8601 time: {text!r}") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _cmd_bulk(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit is not None and args.limit < 1:
        raise _UsageError("--limit must be >= 1")
    if args.older_than_days is not None and args.older_than_days < 0:
        raise _UsageError("--older-than-days must be >= 0")
    dry = args.dry_run or not args.yes
    flt: dict[str, Any] = {
        "status": _csv(args.status),
        "task_type": _csv(args.type),
        "created_before": None if args.created_before is None else _parse_time(args.created_before),
        "older_than": None if args.older_than_days is None else timedelta(days=args.older_than_days),
        "error_contains": args.error,
        "limit": args.limit,
        "dry_run": dry,
    }
    with _open(args.db) as q:
        r: BulkResult = q.purge(**flt) if args.command == "purge" else q.requeue(**flt)
    if args.json:
        _print_json(r, out)
        return EXIT_OK
    verb = "delete" if args.command == "purge" else "requeue"
    sample = ", ".join(map(str, r.sample_ids)) + (", ..." if r.matched > len(r.sample_ids) else "")
    if dry:
        out.write(f"would {verb} {_num(r.matched)} tasks" + (f" (ids {sample})" if r.matched else "") + "\n")
        if r.matched and not args.dry_run:
            out.write(f"dry run: pass --yes to {verb} them\n")
    else:
        done = "deleted" if args.command == "purge" else "requeued"
        out.write(f"{done} {_num(r.affected)} of {_num(r.matched)} matching tasks\n")
    return EXIT_OK
