#!/usr/bin/env python3
"""Run the side-by-side benchmarks (our engine and the queues users would pick instead) and
publish them: tables between the ``<!-- peers:begin -->`` / ``<!-- peers:end -->`` markers of
``BENCHMARKS.md`` (the rest of the file is left as it is) and PNG charts in ``bench/charts/``.

Steps: install the Python peers from the package index (pinned versions, ``pip install``); build
the Go suite (``bench/go``, its own module, so the engine's module never depends on River or
goqite; ``go build`` fetches them from the module proxy); run the Go suite, then the Python suite
(``bench/peers_python.py``), one after the other on the same machine; keep the raw results in
``bench/results_peers.json``; write the report. Usage::

    python bench/run_all.py            # full suite (about 10 minutes on 2 cores)
    python bench/run_all.py --quick    # smaller sizes, one repetition (about 3 minutes)
    python bench/run_all.py --report-only   # rewrite BENCHMARKS.md and charts from the JSON
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
GO_DIR = BENCH / "go"
CHARTS = BENCH / "charts"
RESULTS = BENCH / "results_peers.json"
REPORT = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"

PEER_PACKAGES = ("litequeue==0.9", "persist-queue==1.1.0", "huey==3.5.4", "matplotlib")

OURS = ("prismq", "prismq-batch")
LABELS = {
    "prismq": "**prismq** (1 per call)",
    "prismq-batch": "**prismq** (batch 64)",
    "goqite": "goqite",
    "river": "River (riversqlite)",
    "sqlite3": "textbook sqlite3",
    "litequeue": "litequeue",
    "persist-queue": "persist-queue (SQLiteAckQueue)",
    "huey": "huey (SqliteHuey)",
}
ORDER = {
    "go": ("prismq", "prismq-batch", "goqite", "river"),
    "python": ("prismq", "prismq-batch", "sqlite3", "litequeue", "persist-queue", "huey"),
}
LEVEL_TITLE = {"go": "Go (engine API)", "python": "Python (package API)"}

Rec = dict[str, Any]


def log(msg: str) -> None:
    print(f"[run_all {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd: Sequence[str], cwd: Path | None = None) -> str:
    return subprocess.run(list(cmd), cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def try_sh(cmd: Sequence[str]) -> str:
    try:
        return sh(cmd)
    except (OSError, subprocess.CalledProcessError):
        return "?"


# --------------------------------------------------------------------------- running


def install_peers() -> str:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES]
    log("installing the Python peers: " + shlex.join(cmd))
    subprocess.run(cmd, check=True)
    return shlex.join(["python3", *cmd[1:]])


def build_go(workdir: str) -> tuple[Path, str, str]:
    """Build the Go suite; return the binary, the goqite schema path and the build command."""
    binary = Path(workdir) / "peers"
    cmd = ["go", "build", "-o", str(binary), "."]
    log(f"building the Go suite in {GO_DIR}")
    subprocess.run(cmd, cwd=GO_DIR, check=True)
    goqite_dir = sh(["go", "list", "-m", "-f", "{{.Dir}}", "maragu.dev/goqite"], cwd=GO_DIR)
    return binary, str(Path(goqite_dir) / "schema_sqlite.sql"), "(cd bench/go && go build -o peers .)"


def run_suite(cmd: list[str], name: str) -> list[Rec]:
    """Run one suite; its stdout is JSON lines, its stderr (progress) goes through."""
    log(f"running the {name} suite: {shlex.join(cmd)}")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    recs: list[Rec] = []
    for line in proc.stdout:
        line = line.strip()
        if line.startswith("{"):
            recs.append(json.loads(line))
    rc = proc.wait()
    log(f"{name} suite finished in {time.monotonic() - t0:.0f} s (exit {rc})")
    if rc != 0:
        recs.append({"level": name, "workload": "suite", "queue": "-", "params": {}, "error": f"exit {rc}"})
    return recs


def machine_facts() -> dict[str, Any]:
    model = "?"
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for dist in ("prismq-queue", "litequeue", "persist-queue", "huey", "matplotlib"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": try_sh(["nproc"]),
        "uname": try_sh(["uname", "-a"]),
        "cpu": model,
        "memory": mem,
        "tmp_fs": try_sh(["df", "-hT", tempfile.gettempdir()]).splitlines()[-1:],
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_sqlite": sqlite3.sqlite_version,
        "go": try_sh(["go", "version"]),
        "py_versions": versions,
    }


def go_versions(binary: Path) -> dict[str, str]:
    try:
        out: dict[str, str] = json.loads(sh([str(binary), "-mode", "version"]))
        return out
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        return {}


# --------------------------------------------------------------------------- aggregation


@dataclass
class Cell:
    med: float
    lo: float
    hi: float
    n: int

    def fmt(self, digits: int = 0) -> str:
        def f(v: float) -> str:
            return f"{v:,.{digits}f}"

        if self.n <= 1 or self.lo == self.hi:
            return f(self.med)
        return f"{f(self.med)} [{f(self.lo)}-{f(self.hi)}]"


class Results:
    def __init__(self, recs: list[Rec]) -> None:
        self.cells: dict[tuple[str, str, str, tuple[tuple[str, int], ...]], dict[str, list[float]]] = {}
        self.notes: dict[tuple[str, str, str], str] = {}
        self.errors: list[Rec] = []
        for r in recs:
            key = (r["level"], r["workload"], r["queue"], tuple(sorted(r.get("params", {}).items())))
            if r.get("unsupported"):
                self.notes[(r["level"], r["workload"], r["queue"])] = "n/a: " + r["unsupported"]
                self.cells.setdefault(key, {})
            elif r.get("error"):
                self.errors.append(r)
                self.notes.setdefault((r["level"], r["workload"], r["queue"]), "failed: " + r["error"][:120])
            else:
                d = self.cells.setdefault(key, {})
                for m, v in r.get("metrics", {}).items():
                    d.setdefault(m, []).append(float(v))

    def get(self, level: str, workload: str, queue: str, params: dict[str, int], metric: str) -> Cell | None:
        key = (level, workload, queue, tuple(sorted(params.items())))
        vals = self.cells.get(key, {}).get(metric)
        if not vals:
            return None
        return Cell(statistics.median(vals), min(vals), max(vals), len(vals))

    def params(self, level: str, workload: str) -> list[dict[str, int]]:
        seen = {k[3] for k in self.cells if k[0] == level and k[1] == workload and k[3]}
        return [dict(p) for p in sorted(seen)]

    def queues(self, level: str, workload: str) -> list[str]:
        present = {k[2] for k in self.cells if k[0] == level and k[1] == workload}
        present |= {k[2] for k in self.notes if k[0] == level and k[1] == workload}
        return [q for q in ORDER[level] if q in present]

    def text(
        self, level: str, workload: str, queue: str, params: dict[str, int], metric: str, digits: int = 0
    ) -> str:
        c = self.get(level, workload, queue, params, metric)
        if c is not None:
            return c.fmt(digits)
        note = self.notes.get((level, workload, queue))
        return "n/a" if note and note.startswith("n/a") else ("failed" if note else "-")


# --------------------------------------------------------------------------- report


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def label(queue: str, workload: str) -> str:
    """The queue's name in tables; ours has two claim variants only where claims are measured."""
    if queue == "prismq" and workload not in ("claim_depth", "e2e"):
        return "**prismq**"
    return LABELS[queue]


def footnotes(res: Results, level: str, workload: str) -> list[str]:
    out = []
    for q in ORDER[level]:
        note = res.notes.get((level, workload, q))
        if note:
            out.append(f"- {LABELS[q]}: {note}")
    return out


@dataclass
class Spec:
    """How one workload is shown: a column per parameter value of one metric, then extra columns."""

    workload: str
    title: str
    explain: str
    param: str
    metric: str
    metric_label: str
    extra: tuple[tuple[str, str, int], ...] = ()  # (metric, label, digits) at the largest param
    higher_is_better: bool = True
    digits: int = 0


SPECS = (
    Spec(
        "enqueue_single",
        "Enqueue, one task per call",
        "One producer thread, one task per call and transaction, after 200 warm-up calls. Columns: calls "
        "made; tasks/s; per-call p50/p99 of the largest run.",
        "n",
        "tasks_per_s",
        "tasks/s",
        (("p50_us", "p50 us", 1), ("p99_us", "p99 us", 0)),
    ),
    Spec(
        "enqueue_batch",
        "Enqueue, batched",
        "One producer thread, the queue's batch call (one transaction per batch); columns are batch sizes.",
        "batch",
        "tasks_per_s",
        "tasks/s",
    ),
    Spec(
        "claim_depth",
        "Claim + complete at queue depth",
        "One worker thread claims and completes tasks one after the other with that many tasks queued "
        "(bulk-filled, then 200 warm-up claims). River has no claim call: its client fetches and completes "
        "jobs itself (100 workers), timed from the 200th to the last completion. A measurement stops after "
        "15 s (both levels).",
        "depth",
        "tasks_per_s",
        "tasks/s",
        (("call_p50_us", "p50 us per call", 0),),
    ),
    Spec(
        "e2e",
        "End to end, worker processes",
        "P worker processes wait on an empty queue; the parent enqueues the tasks in batches of 100 "
        "(one call per task where the queue has no batch call) while they claim and complete. Clock: "
        "first enqueue to last completion.",
        "procs",
        "tasks_per_s",
        "tasks/s",
    ),
    Spec(
        "latency",
        "Enqueue-to-start latency across processes",
        "One worker process waits; the parent enqueues one task at a time, 5-15 ms apart, stamped with the "
        "enqueue time; the worker records when its claim returned it. Every waiting worker polls every 20 ms "
        "(ours: the engine's cross-process wake poll).",
        "samples",
        "p50_ms",
        "p50 ms",
        (("p99_ms", "p99 ms", 1),),
        higher_is_better=False,
        digits=1,
    ),
    Spec(
        "idle",
        "CPU of a waiting worker",
        "One worker process waits on an empty queue; CPU time it used (user + system, all threads) per "
        "second of waiting. 2 cores = 200 %.",
        "seconds",
        "cpu_percent",
        "CPU %",
        (("cpu_ms_per_s", "CPU ms per s", 1),),
        higher_is_better=False,
        digits=2,
    ),
    Spec(
        "disk",
        "Disk bytes per task",
        "Tasks enqueued with the same payload (batches of 100 where possible), WAL checkpointed, database "
        "file size / tasks; then all claimed and completed, checkpointed and measured again (queues that "
        "keep finished tasks keep their rows; SQLite does not shrink a file without VACUUM).",
        "tasks",
        "queued_bytes_per_task",
        "bytes/task queued",
        (("done_bytes_per_task", "bytes/task after completion", 0),),
        higher_is_better=False,
    ),
)


def workload_section(res: Results, level: str, spec: Spec) -> list[str]:
    params = res.params(level, spec.workload)
    queues = res.queues(level, spec.workload)
    if not queues:
        return []
    values = sorted({p.get(spec.param, 0) for p in params})
    header = ["queue"] + [f"{spec.param}={human(v)} {spec.metric_label}" for v in values]
    header += [lab for _, lab, _ in spec.extra]
    if spec.workload == "claim_depth" and len(values) > 1:
        header.append(f"{human(values[-1])} / {human(values[0])}")
    rows = []
    for q in queues:
        row = [label(q, spec.workload)]
        for v in values:
            p = next((p for p in params if p.get(spec.param) == v), {spec.param: v})
            row.append(res.text(level, spec.workload, q, p, spec.metric, spec.digits))
        last = next((p for p in params if p.get(spec.param) == values[-1]), {}) if values else {}
        for m, _, d in spec.extra:
            row.append(res.text(level, spec.workload, q, last, m, d))
        if spec.workload == "claim_depth" and len(values) > 1:
            first = next(p for p in params if p.get(spec.param) == values[0])
            a = res.get(level, spec.workload, q, first, spec.metric)
            b = res.get(level, spec.workload, q, last, spec.metric)
            row.append(f"{b.med / a.med:.2f}x" if a and b else "-")
        rows.append(row)
    out = [f"#### {spec.title}", "", spec.explain, ""]
    out += table(header, rows)
    notes = footnotes(res, level, spec.workload)
    if notes:
        out += [""] + notes
    return out + [""]


def comparisons(res: Results) -> list[tuple[str, str, dict[str, int], str, Cell, str, Cell, bool]]:
    """(level, workload, params, our variant, ours, best peer, peer, we_win) for every measured cell."""
    out = []
    for spec in SPECS:
        for level in ("go", "python"):
            for p in res.params(level, spec.workload):
                ours = [(q, c) for q in OURS if (c := res.get(level, spec.workload, q, p, spec.metric))]
                peers = [
                    (q, c)
                    for q in ORDER[level]
                    if q not in OURS and (c := res.get(level, spec.workload, q, p, spec.metric))
                ]
                if not ours or not peers:
                    continue
                better: Callable[[Cell], float] = (
                    (lambda c: c.med) if spec.higher_is_better else (lambda c: -c.med)
                )
                oq, oc = max(ours, key=lambda t: better(t[1]))
                pq, pc = max(peers, key=lambda t: better(t[1]))
                out.append((level, spec.workload, p, oq, oc, pq, pc, better(oc) >= better(pc)))
    return out


LOSS_NOTES = {
    "enqueue_single": (
        "One enqueue per call is one transaction for every queue, so it is bounded by what a commit "
        "writes. Measured on this machine (`wal_autocheckpoint=0`, 1,000 commits): an enqueue of ours "
        "appends 4.35 WAL pages (6.3 before schema 6), a goqite-shaped insert 3.5. Our row holds the "
        "whole task model and is entered in two partial claim indexes (FIFO and priority) plus the "
        "counters row. Checkpoints no longer run inside a commit (a background goroutine copies the "
        "pages); the commit itself is most of the cost: one frame header and one page `pwrite` per "
        "page plus the shm locks, through SQLite transpiled to Go. From Python each call also crosses "
        "ctypes with JSON both ways and gets the whole task back. What would change it: `enqueue_many` "
        "or several producer threads (group commit turns N callers into one commit); an enqueue that "
        "returns only the id and the created flag across the C ABI; a C SQLite (ruled out by the SPEC)."
    ),
    "enqueue_batch": (
        "A batch is one transaction for everyone, so the cost is per row. From Go, ours leads. From Python "
        "the package adds about 30 us per task over the engine: each item becomes an `EnqueueRequest`, is "
        "JSON-encoded, decoded and validated in Go, inserted with its index entries, and returned as a "
        "whole task in JSON that Python turns into a `Task` (with six datetime conversions). The textbook "
        "`executemany` binds three values into a table with one index. What would change it: "
        "`enqueue_many` returning only ids, pre-encoded payload bytes, and the index savings above."
    ),
    "claim_depth": (
        "Claim and complete are two write transactions per task for everyone; ours updates more columns "
        "and index entries per state change (9.45 WAL pages per task for claim + complete, measured; "
        "11.4 before schema 6). Checkpoints and their fsyncs now run beside the writer, not inside its "
        "commits. The claim "
        "stays flat with depth (ratio column), unlike litequeue's. From Go the batch variant "
        "(`Claim(64)` + `AckMany`) leads by a wide margin; from Python the same two calls cost about "
        "50 us per task more than from Go: the claim returns the whole task model as JSON (payload, "
        "requirements, six timestamps, progress, ...) that Python turns into `Task` objects, and "
        "`ack_many` encodes JSON back. What would change it: batches (`claim_many` + `ack_many`, as the "
        "run loop does); fewer index entries touched per state change; a slim claim "
        "result across the C ABI (id, token, type, payload, attempts), lazy timestamps in `Task`, acks "
        "as arrays of ids and tokens."
    ),
    "e2e": (
        "Same costs as claim + complete, plus the producer's enqueues into the same file (one writer at a "
        "time). The peers ahead here do less per task: the textbook loop has no expiry sweep, retries or "
        "fencing token, and huey deletes the row on dequeue (a crash loses the task). More processes do "
        "not help anyone on SQLite with 2 cores. What would change it: the Python-side savings above "
        "(slim claim results, lean acks)."
    ),
    "latency": (
        "A waiting worker in another process learns about a new task from the engine's wake poll "
        "(`wake_poll_interval`, 20 ms, the interval every peer was given), so the expected latency is "
        "about half the interval for everyone; differences of a millisecond or two are noise on this "
        "machine. In the same process the wake-up is immediate. What would change it: a shorter "
        "`wake_poll_interval_seconds` (costs idle CPU) or a notification between processes."
    ),
    "idle": (
        "Measured: a Python worker blocked in `claim_many` uses 2.2-2.4 % of a core with the default "
        "20 ms wake poll, 0.4 % with a 200 ms poll, and the same 2.3 % with the sweeper disabled: the cost "
        "is the poll. Each poll reads `PRAGMA data_version` through `database/sql` and the transpiled "
        "SQLite (modernc) and wakes Go runtime threads, about 0.4 ms of CPU, roughly twice a stdlib "
        "sqlite3 query from a Python loop that sleeps 20 ms. (From Go, ours is the cheapest waiter.) What "
        "would change it: detecting commits of other processes without a SQL query (the WAL index's change "
        "counter in the -shm file, or the -wal file's size and mtime), or a poll that backs off while idle."
    ),
    "disk": (
        "Our row stores the whole task model (type, priority, payload, requirements, status, attempts, "
        "lease, fencing token, six timestamps, error, key, result, progress, retry overrides) and two "
        "partial indexes point at each queued row (three for a delayed or requeued one); finished "
        "tasks stay as history (status, result and "
        "timing queries need them) until purged. persist-queue stores a pickled body, a timestamp and a "
        "status; the textbook table has one index. What would change it: `purge` of finished tasks, "
        "fewer columns and indexes."
    ),
}


def summary(res: Results) -> list[str]:
    rows = []
    losses: dict[str, list[str]] = defaultdict(list)
    for level, workload, p, oq, oc, pq, pc, win in comparisons(res):
        spec = next(s for s in SPECS if s.workload == workload)
        ratio = oc.med / pc.med if pc.med else float("inf")
        if not spec.higher_is_better:
            ratio = pc.med / oc.med if oc.med else float("inf")
        ptxt = ", ".join(f"{k}={human(v)}" for k, v in p.items())
        verdict = "ours" if win else f"**{LABELS[pq]}**"
        rows.append(
            [
                LEVEL_TITLE[level].split()[0],
                spec.title,
                ptxt,
                f"{oc.fmt(spec.digits)} ({label(oq, workload)})",
                f"{pc.fmt(spec.digits)} ({LABELS[pq]})",
                f"{ratio:.2f}x",
                verdict,
            ]
        )
        # Every variant of ours that is behind the best peer (not only the best variant).
        for q in OURS:
            c = res.get(level, workload, q, p, spec.metric)
            if c is None or (c.med >= pc.med if spec.higher_is_better else c.med <= pc.med):
                continue
            losses[workload].append(
                f"{LEVEL_TITLE[level].split()[0]} {ptxt}: {label(q, workload)} "
                f"{c.fmt(spec.digits)} vs {LABELS[pq]} {pc.fmt(spec.digits)} "
                f"{spec.metric_label}"
            )
    out = [
        "### Summary: our best variant against the best peer",
        "",
        "Ratio above 1: ours is better (faster, or lower latency / CPU / bytes). Medians.",
        "",
    ]
    out += table(["level", "workload", "size", "ours", "best peer", "ratio", "better"], rows)
    out += [
        "",
        "### Where we are behind, and why",
        "",
        "Every cell where a variant of ours is behind the best peer; the cause and what would change it.",
        "",
    ]
    if not losses:
        out += ["Nowhere in this run.", ""]
    for workload, items in losses.items():
        spec = next(s for s in SPECS if s.workload == workload)
        out += [f"**{spec.title}.** " + LOSS_NOTES.get(workload, ""), ""]
        out += [f"- {i}" for i in items] + [""]
    return out


FEATURES = [
    [
        "queue",
        "leases (expiry, re-delivery)",
        "fencing token",
        "priorities",
        "multi-process",
        "retries / backoff",
        "batch enqueue",
        "batch claim / ack",
        "waiting for work",
    ],
    [
        "**prismq**",
        "yes: renewable lease, heartbeat, sweeper re-queues",
        "yes (stale ack gets LeaseLost)",
        "yes (integer; FIFO, LIFO, priority, weighted random)",
        "yes",
        "yes: exponential + jitter, dead letter",
        "yes",
        "yes",
        "blocking claim: instant in-process, 20 ms poll across processes",
    ],
    [
        "goqite",
        "yes: timeout, re-received after it (MaxReceive)",
        "no (Delete by id from anyone)",
        "yes (integer)",
        "yes",
        "re-delivery after timeout; no backoff",
        "in a caller's transaction (SendTx)",
        "no",
        "poll (ReceiveAndWait)",
    ],
    [
        "River (riversqlite)",
        "running jobs rescued after RescueStuckJobsAfter (1 h)",
        "no",
        "yes (1-4)",
        "yes (driver docs: one connection per process)",
        "yes: attempt^4 backoff, 25 attempts",
        "InsertMany (one row at a time on SQLite)",
        "client fetches batches; completes one row at a time",
        "notification outbox polled every 50 ms + FetchPollInterval",
    ],
    [
        "textbook sqlite3",
        "lease column; nothing re-queues expired leases",
        "lease owner only",
        "yes (column)",
        "yes (BEGIN IMMEDIATE)",
        "no",
        "executemany",
        "no",
        "poll",
    ],
    [
        "litequeue",
        "no (LOCKED until done; list_locked + retry by hand)",
        "no",
        "no (FIFO)",
        "yes (BEGIN IMMEDIATE pop)",
        "by hand (retry, mark_failed)",
        "no",
        "no",
        "poll (no wait call)",
    ],
    [
        "persist-queue (SQLiteAckQueue)",
        "no (unacked until ack/nack; re-queued when a queue is opened)",
        "no",
        "no (FIFO)",
        "no: select-then-update under a thread lock",
        "nack by hand",
        "no",
        "no",
        "in-process event, else a 10 s tick",
    ],
    [
        "huey (SqliteHuey)",
        "no (dequeue deletes the row: a crash loses the task)",
        "no",
        "yes",
        "yes (consumer processes)",
        "yes: retries, delay, backoff factor",
        "no",
        "no",
        "consumer polls with back-off (0.1 s to 10 s)",
    ],
]

SETTINGS = """\
- Durability, all queues: `journal_mode=WAL`, `synchronous=NORMAL`, busy timeout 5 s.
  prismq: its defaults (plus `cache_size=-20000`, `mmap_size=128 MiB`, `temp_store=MEMORY`).
  goqite and River: `modernc.org/sqlite` DSN pragmas and `_txlock=immediate` (a write transaction
  waits for the lock instead of failing when two processes upgrade at once), one connection per
  process as both recommend. litequeue sets WAL + NORMAL itself. persist-queue sets only WAL:
  `synchronous=NORMAL` is set here on its connections. huey's `fsync` option offers only FULL or
  OFF: a three-line storage subclass sets NORMAL. The textbook loop is `bench/bench_python.py`'s.
- Waiting: every worker looks for work from another process every 20 ms (our engine's default
  wake poll). River is tuned in its favour: `FetchCooldown` 1 ms and `FetchPollInterval` 20 ms
  (defaults 100 ms and 1 s cap a client near 1,000 jobs/s), 100 workers. goqite: `Timeout` 60 s,
  `MaxReceive` 5 (our lease and attempts).
- Payload: `{"user":42,"action":"resize","path":"/img/a.png"}` for every task. Our workers use the
  default strategy of their API (Go: FIFO; Python: PRIORITY) with every task at one priority.
- Deep queues are filled fast: one task through the queue's own API, then copies of its row in
  `INSERT ... SELECT` statements (ids from the table's own key; litequeue's message id made unique).
- Each cell: median of the repetitions, `[min-max]` when they differ. Medians are of separate runs,
  each on a fresh database (deep queues: one database, repetitions one after the other). Enqueue
  and end-to-end repetitions run round-robin over the queues (rep 1 of every queue, then rep 2, ...)
  so that a change in the machine's load hits every queue alike.
- Results are measured, never asserted: no test depends on them.
"""


def methods(meta: dict[str, Any]) -> list[str]:
    m = meta.get("machine", {})
    gv = meta.get("go_versions", {})
    pv = m.get("py_versions", {})
    load = meta.get("load", {})
    out = [
        "### Method",
        "",
        f"- Date: {m.get('date', '?')}; wall time {meta.get('wall_s', 0):.0f} s "
        f"({'quick' if meta.get('quick') else 'full'} suite).",
        f"- Machine: {m.get('nproc', '?')} CPUs (`nproc`), {m.get('cpu', '?')}, {m.get('memory', '?')}; "
        f"`uname -a`: `{m.get('uname', '?')}`.",
        f"- Temporary databases on: `{' '.join(m.get('tmp_fs', []))}`.",
        f"- Load average (1/5/15 min, `uptime`): {load.get('start', '?')} at start, "
        f"{load.get('end', '?')} at end. The machine was shared with other builds: expect noise of "
        "tens of percent between runs; compare queues within one run.",
        f"- Go: {m.get('go', '?')}; modules: River {gv.get('github.com/riverqueue/river', '?')} with "
        f"riversqlite {gv.get('github.com/riverqueue/river/riverdriver/riversqlite', '?')}, goqite "
        f"{gv.get('maragu.dev/goqite', '?')}, modernc.org/sqlite {gv.get('modernc.org/sqlite', '?')} "
        f"(SQLite {gv.get('sqlite', '?')}) for all three, our engine from this tree.",
        f"- Python: {m.get('python', '?')} with SQLite {m.get('python_sqlite', '?')} "
        f"(stdlib sqlite3, used by every Python peer); prismq-queue {pv.get('prismq-queue', '?')} "
        "(installed from this tree), "
        f"litequeue {pv.get('litequeue', '?')}, persist-queue {pv.get('persist-queue', '?')}, "
        f"huey {pv.get('huey', '?')}.",
        "- Commands (run by `make bench`, or alone with `make bench-peers`):",
        "",
    ]
    out += [f"      {c}" for c in meta.get("commands", [])]
    out += ["", SETTINGS]
    return out


def charts(res: Results) -> list[str]:
    """Write bench/charts/*.png; return their Markdown links."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no charts")
        return []
    CHARTS.mkdir(exist_ok=True)
    links = []

    def color(q: str) -> str:
        palette = {
            "prismq": "#1f6feb",
            "prismq-batch": "#0a3d91",
            "goqite": "#e36209",
            "river": "#6f42c1",
            "sqlite3": "#6a737d",
            "litequeue": "#28a745",
            "persist-queue": "#d73a49",
            "huey": "#b08800",
        }
        return palette.get(q, "#999999")

    def lines(
        workload: str, param: str, metric: str, ylabel: str, fname: str, title: str, logx: bool
    ) -> None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, level in zip(axes, ("go", "python"), strict=True):
            for q in res.queues(level, workload):
                pts = []
                for p in res.params(level, workload):
                    c = res.get(level, workload, q, p, metric)
                    if c:
                        pts.append((p[param], c))
                if not pts:
                    continue
                pts.sort(key=lambda t: t[0])
                xs = [x for x, _ in pts]
                ax.errorbar(
                    xs,
                    [c.med for _, c in pts],
                    yerr=[[c.med - c.lo for _, c in pts], [c.hi - c.med for _, c in pts]],
                    marker="o",
                    capsize=3,
                    label=LABELS[q].replace("**", ""),
                    color=color(q),
                    linewidth=2.5 if q in OURS else 1.5,
                )
            ax.set_title(LEVEL_TITLE[level])
            ax.set_xlabel(param)
            ax.set_ylabel(ylabel)
            if logx:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(CHARTS / fname, dpi=100)
        plt.close(fig)
        links.append(f"![{title}](bench/charts/{fname})")

    def bars(workload: str, metric: str, ylabel: str, fname: str, title: str, pick: str = "max") -> None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, level in zip(axes, ("go", "python"), strict=True):
            params = res.params(level, workload)
            if not params:
                continue
            p = params[-1] if pick == "max" else params[0]
            names: list[str] = []
            meds: list[float] = []
            errs: list[list[float]] = [[], []]
            for q in res.queues(level, workload):
                c = res.get(level, workload, q, p, metric)
                if c is None:
                    continue
                names.append(label(q, workload).replace("**", "").replace(" (", "\n("))
                meds.append(c.med)
                errs[0].append(c.med - c.lo)
                errs[1].append(c.hi - c.med)
            ax.bar(
                range(len(names)),
                meds,
                yerr=errs,
                capsize=3,
                color=[
                    color(q) for q in res.queues(level, workload) if res.get(level, workload, q, p, metric)
                ],
            )
            ax.set_xticks(range(len(names)), names, fontsize=7)
            ax.set_title(f"{LEVEL_TITLE[level]} ({', '.join(f'{k}={human(v)}' for k, v in p.items())})")
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(CHARTS / fname, dpi=100)
        plt.close(fig)
        links.append(f"![{title}](bench/charts/{fname})")

    bars("enqueue_single", "tasks_per_s", "tasks/s", "enqueue_single.png", "Enqueue, one task per call")
    lines("enqueue_batch", "batch", "tasks_per_s", "tasks/s", "enqueue_batch.png", "Enqueue, batched", True)
    lines(
        "claim_depth",
        "depth",
        "tasks_per_s",
        "tasks/s",
        "claim_depth.png",
        "Claim + complete vs queue depth",
        True,
    )
    lines("e2e", "procs", "tasks_per_s", "tasks/s", "e2e.png", "End to end vs worker processes", False)
    bars("latency", "p50_ms", "ms (p50)", "latency.png", "Enqueue-to-start latency across processes (p50)")
    bars("idle", "cpu_percent", "CPU % (of one core)", "idle_cpu.png", "CPU of a waiting worker")
    bars("disk", "queued_bytes_per_task", "bytes per queued task", "disk.png", "Disk bytes per queued task")
    return links


def render(meta: dict[str, Any], recs: list[Rec]) -> str:
    res = Results(recs)
    out = [
        BEGIN,
        "",
        "## Side by side with the queues users would pick instead",
        "",
        "Generated by `bench/run_all.py` (`make bench-peers`); do not edit between the markers. "
        "Raw results: `bench/results_peers.json`.",
        "",
    ]
    out += summary(res)
    for level in ("go", "python"):
        out += [f"### {LEVEL_TITLE[level]}", ""]
        for spec in SPECS:
            out += workload_section(res, level, spec)
    out += [
        "### Features",
        "",
        "What each queue guarantees; a cell that says no is a workload it was not asked to "
        "do, or did without that guarantee.",
        "",
    ]
    out += table(FEATURES[0], FEATURES[1:])
    out += [""]
    links = charts(res)
    if links:
        out += ["### Charts", ""] + [f"{link}\n" for link in links]
    out += methods(meta)
    if res.errors:
        out += ["### Failures in this run", ""]
        out += [f"- {r['level']} {r['workload']} {r['queue']}: {r['error'][:300]}" for r in res.errors]
        out += [""]
    out += [END]
    return "\n".join(out)


def write_report(section: str) -> None:
    if REPORT.exists():
        text = REPORT.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            text = head + section + tail
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        text = "# Benchmarks\n\n" + section + "\n"
    REPORT.write_text(text)
    log(f"wrote {REPORT}")


def loadavg() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmarks side by side with the peers; writes BENCHMARKS.md.")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, one repetition (about 3 minutes)")
    ap.add_argument("--no-install", action="store_true", help="do not pip-install the Python peers")
    ap.add_argument("--skip-go", action="store_true", help="run only the Python suite")
    ap.add_argument("--skip-python", action="store_true", help="run only the Go suite")
    ap.add_argument("--report-only", action="store_true", help=f"re-render from {RESULTS.name}")
    args = ap.parse_args(argv)

    if args.report_only:
        data = json.loads(RESULTS.read_text())
        data["meta"]["commands"] = [c.rstrip() for c in data["meta"].get("commands", [])]
        write_report(render(data["meta"], data["records"]))
        return 0

    t0 = time.monotonic()
    commands: list[str] = []
    if not args.no_install:
        commands.append(install_peers())
    meta: dict[str, Any] = {"quick": args.quick, "load": {"start": loadavg()}, "machine": machine_facts()}
    recs: list[Rec] = []
    quick = ["-quick"] if args.quick else []
    with tempfile.TemporaryDirectory(prefix="prismq-run-all-") as tmp:
        if not args.skip_go:
            try:
                binary, schema, build_cmd = build_go(tmp)
            except (OSError, subprocess.CalledProcessError) as exc:
                log(f"the Go suite does not build: {exc}")
                recs.append(
                    {"level": "go", "workload": "build", "queue": "-", "params": {}, "error": str(exc)}
                )
            else:
                meta["go_versions"] = go_versions(binary)
                commands.append(build_cmd)
                schema_arg = "\"$(go list -m -f '{{.Dir}}' maragu.dev/goqite)/schema_sqlite.sql\""
                commands.append(" ".join(["cd bench/go && ./peers -goqite-schema", schema_arg, *quick]))
                recs += run_suite([str(binary), "-goqite-schema", schema, *quick], "go")
        if not args.skip_python:
            pyq = ["--quick"] if args.quick else []
            commands.append(shlex.join(["python3", "bench/peers_python.py", *pyq]))
            recs += run_suite([sys.executable, str(BENCH / "peers_python.py"), *pyq], "python")
    meta["load"]["end"] = loadavg()
    meta["wall_s"] = time.monotonic() - t0
    meta["commands"] = commands
    RESULTS.write_text(json.dumps({"meta": meta, "records": recs}, indent=1) + "\n")
    write_report(render(meta, recs))
    log(f"done in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
