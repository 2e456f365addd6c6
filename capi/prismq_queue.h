/*
 * prismq_queue.h - the C ABI of the PrismQ Task Queue engine.
 *
 * Hand-written; it is the contract between the Go shared library built from
 * capi/ (go build -buildmode=c-shared) and every caller (the Python package
 * loads it with ctypes).
 *
 * Rules shared by every function below:
 *
 *  - Every function returns a pq_status. PQ_OK (0) means success; any other
 *    value is an error and, when out_err is not NULL, *out_err receives a
 *    NUL-terminated UTF-8 message allocated by the library.
 *  - Every `char **out_*` parameter receives memory allocated by the library
 *    (or NULL). The caller owns it and must release it with pq_free(). The
 *    library never keeps a pointer the caller passed in, and never hands out a
 *    pointer into Go memory.
 *  - Every `const char *` input is borrowed for the duration of the call only;
 *    it must be NUL-terminated UTF-8 (invalid UTF-8 or JSON gives
 *    PQ_ERR_INVALID_ARGUMENT). Inputs documented as "JSON or NULL" accept NULL.
 *  - Handles are opaque non-zero 64-bit integers. 0 is never a valid handle.
 *    A closed or unknown handle gives PQ_ERR_CLOSED.
 *  - Structured data crosses as JSON. Times are integers: milliseconds since
 *    the Unix epoch, UTC (fields ending in _ms). Durations are milliseconds.
 *  - Every function is safe to call from many threads at once; none of them
 *    lets a Go panic escape (a panic becomes PQ_ERR_INTERNAL).
 *  - On error, out parameters other than out_err are left as NULL / 0.
 *
 * Task (JSON object; nullable fields are null when unset):
 *   {"id":int, "type":str, "priority":int, "payload":object, "requirements":object,
 *    "status":"queued"|"leased"|"completed"|"failed"|"cancelled",
 *    "attempts":int, "max_attempts":int, "run_after_ms":int,
 *    "lease_expires_at_ms":int|null, "lease_owner":str|null, "lease_token":int,
 *    "created_at_ms":int, "updated_at_ms":int, "claimed_at_ms":int|null,
 *    "started_at_ms":int|null, "finished_at_ms":int|null, "last_error":str|null,
 *    "idempotency_key":str|null, "result":any|null,
 *    "progress_percent":number|null, "progress_current":int|null,
 *    "progress_total":int|null, "progress_message":str|null,
 *    "cancel_requested":bool, "retry_base_ms":int|null, "retry_cap_ms":int|null}
 */
#ifndef PRISMQ_QUEUE_H
#define PRISMQ_QUEUE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t pq_status;

enum {
    PQ_OK = 0,
    PQ_ERR_INVALID_ARGUMENT = 1,  /* bad type, value, JSON, UTF-8, NULL pointer */
    PQ_ERR_NOT_FOUND = 2,         /* unknown task id */
    PQ_ERR_LEASE_LOST = 3,        /* stale fencing token: the lease is no longer held */
    PQ_ERR_CLOSED = 4,            /* closed or unknown handle */
    PQ_ERR_BUSY = 5,              /* the database stayed locked past busy_timeout */
    PQ_ERR_INVALID_STATE = 6,     /* the task's status does not allow the operation */
    PQ_ERR_PAYLOAD_TOO_LARGE = 7, /* payload/result over the configured limit */
    PQ_ERR_NETWORK_PATH = 8,      /* database path on a network share, not allowed */
    PQ_ERR_SCHEMA = 9,            /* database schema newer than this library, or corrupt */
    PQ_ERR_IO = 10,               /* cannot create/open/read/write the database file */
    PQ_ERR_INTERNAL = 11          /* a bug: unexpected engine error or recovered panic */
};

/* pq_free releases memory returned through any char** out parameter. NULL is a no-op. */
void pq_free(void *p);

/* pq_version: *out = library version string, e.g. "0.1.0". */
pq_status pq_version(char **out, char **out_err);

/* pq_default_path: *out = the database path used when none is given
 * (PRISMQ_QUEUE_DB_PATH, else C:\Data\PrismQ\queue\queue.db on Windows, else a
 * per-user data directory). */
pq_status pq_default_path(char **out, char **out_err);

/* ---- Queue handles ------------------------------------------------------ */

/* pq_open opens (creating and migrating when needed) a queue database.
 * options_json (JSON object or NULL), every key optional:
 *   path                   string, default: pq_default_path()
 *   allow_network_path     bool, default false
 *   pragmas                object name -> value (string or number), overrides the defaults
 *   max_payload_bytes      int, default 1048576 (limit for payload, requirements and result)
 *   default_lease_ms       int, default 60000
 *   sweep_interval_ms      int, default 1000 (0 = default)
 *   disable_sweeper        bool, default false
 *   wake_poll_interval_ms  int, default 20 (cross-process wake-up poll while a claim waits)
 *   retry                  {"base_ms":1000,"cap_ms":300000,"jitter":0.2}
 * *out_queue receives the handle. */
pq_status pq_open(const char *options_json, uint64_t *out_queue, char **out_err);

/* pq_close closes the queue; blocked claims on its workers return PQ_ERR_CLOSED.
 * Closing twice gives PQ_ERR_CLOSED. Workers opened on it are closed too. */
pq_status pq_close(uint64_t queue, char **out_err);

/* pq_queue_info: *out_json = {"path":..., "schema_version":N, "pragmas":{...}, "version":"..."} */
pq_status pq_queue_info(uint64_t queue, char **out_json, char **out_err);

/* pq_enqueue: task_json = {"type": str (required), "payload": object, "priority": int (default 100),
 *   "delay_ms": int, "run_at_ms": int, "max_attempts": int (default 5),
 *   "requirements": object, "idempotency_key": str, "retry_base_ms": int, "retry_cap_ms": int}
 * *out_json = {"task": Task, "created": bool}  (created=false: the key already existed). */
pq_status pq_enqueue(uint64_t queue, const char *task_json, char **out_json, char **out_err);

/* pq_enqueue_many: tasks_json = [enqueue object, ...] committed in one transaction
 * (all or nothing). *out_json = [{"task": Task, "created": bool}, ...] in input order. */
pq_status pq_enqueue_many(uint64_t queue, const char *tasks_json, char **out_json, char **out_err);

/* pq_get: *out_json = Task. */
pq_status pq_get(uint64_t queue, int64_t task_id, char **out_json, char **out_err);

/* pq_list: filter_json (JSON or NULL) = {"statuses":[str], "types":[str], "limit": int (default 100,
 *   max 10000), "after_id": int (cursor), "descending": bool}
 * *out_json = {"tasks":[Task], "next_after_id": int or null}. */
pq_status pq_list(uint64_t queue, const char *filter_json, char **out_json, char **out_err);

/* pq_cancel: a queued task becomes cancelled at once; a leased one gets a cancel request.
 * Terminal tasks give PQ_ERR_INVALID_STATE. *out_json = Task. */
pq_status pq_cancel(uint64_t queue, int64_t task_id, char **out_json, char **out_err);

/* pq_retry: a failed or cancelled task goes back to queued (attempts reset).
 * Other statuses give PQ_ERR_INVALID_STATE. *out_json = Task. */
pq_status pq_retry(uint64_t queue, int64_t task_id, char **out_json, char **out_err);

/* pq_stats: *out_json = {"total":N, "by_status":{status:N}, "by_type":{type:{status:N}},
 *   "oldest_queued_ms": int or null, "workers": N} */
pq_status pq_stats(uint64_t queue, char **out_json, char **out_err);

/* pq_sweep runs the lease sweeper once now.
 * *out_json = {"requeued":N, "failed":N, "cancelled":N} */
pq_status pq_sweep(uint64_t queue, char **out_json, char **out_err);

/* pq_log appends to a task's log. entry_json = {"level": str (default "info"), "message": str,
 *   "details": object or null}. Unknown task: PQ_ERR_NOT_FOUND. */
pq_status pq_log(uint64_t queue, int64_t task_id, const char *entry_json, char **out_err);

/* pq_logs: *out_json = {"logs":[{"id":N,"task_id":N,"at_ms":N,"level":str,"message":str,
 *   "details":object or null}]} oldest first, at most limit (<=0: all). */
pq_status pq_logs(uint64_t queue, int64_t task_id, int32_t limit, char **out_json, char **out_err);

/* pq_workers: *out_json = {"workers":[{"worker_id","host","pid","strategy","capabilities","types",
 *   "started_at_ms","heartbeat_at_ms","stopped_at_ms","running":N}]} */
pq_status pq_workers(uint64_t queue, char **out_json, char **out_err);

/* ---- Worker handles ----------------------------------------------------- */

/* pq_worker_open registers (or re-registers) a worker.
 * config_json = {"worker_id": str (required), "capabilities": object, "types": [str],
 *   "strategy": "fifo"|"lifo"|"priority"|"weighted_random" (default priority),
 *   "lease_ms": int (default: queue's default_lease_ms), "host": str, "pid": int,
 *   "retry": {"base_ms":int,"cap_ms":int,"jitter":number} (backoff of this worker's failures;
 *            default: the queue's)}
 * The strategy is recorded in the registry (pq_workers) and kept in step by
 * pq_worker_set_strategy. */
pq_status pq_worker_open(uint64_t queue, const char *config_json, uint64_t *out_worker, char **out_err);

/* pq_worker_close marks the worker stopped; its leases are left to expire (release them first
 * for a graceful stop). */
pq_status pq_worker_close(uint64_t worker, char **out_err);

/* pq_worker_set_strategy changes the strategy of later claims. */
pq_status pq_worker_set_strategy(uint64_t worker, const char *strategy, char **out_err);

/* pq_claim leases up to max_tasks (>=1) eligible tasks. timeout_ms <= 0 returns at once;
 * otherwise waits up to timeout_ms for a task. *out_json = {"tasks":[Task]} (possibly empty);
 * each Task carries its "lease_token". */
pq_status pq_claim(uint64_t worker, int32_t max_tasks, int64_t timeout_ms, char **out_json, char **out_err);

/* pq_heartbeat records liveness and renews every lease the worker holds.
 * *out_json = {"renewed":N, "cancel_requested":[task ids]} */
pq_status pq_heartbeat(uint64_t worker, char **out_json, char **out_err);

/* pq_complete: result_json is a JSON value or NULL. Stale token: PQ_ERR_LEASE_LOST. */
pq_status pq_complete(uint64_t worker, int64_t task_id, int64_t lease_token, const char *result_json,
                      char **out_err);

/* pq_fail records a failure. retryable != 0 requeues with backoff while attempts remain;
 * otherwise (or when exhausted) the task ends failed. *out_json = Task. */
pq_status pq_fail(uint64_t worker, int64_t task_id, int64_t lease_token, const char *error_message,
                  int32_t retryable, char **out_json, char **out_err);

/* pq_renew extends the lease by lease_ms (<=0: the worker's lease).
 * *out_json = {"lease_expires_at_ms":N, "cancel_requested":bool} */
pq_status pq_renew(uint64_t worker, int64_t task_id, int64_t lease_token, int64_t lease_ms,
                   char **out_json, char **out_err);

/* pq_progress records progress and renews the lease.
 * progress_json = {"percent": number 0..100, "current": int, "total": int, "message": str}
 * *out_json = {"lease_expires_at_ms":N, "cancel_requested":bool} */
pq_status pq_progress(uint64_t worker, int64_t task_id, int64_t lease_token, const char *progress_json,
                      char **out_json, char **out_err);

/* pq_ack_cancel: the worker stopped the task after a cancel request; it ends cancelled. */
pq_status pq_ack_cancel(uint64_t worker, int64_t task_id, int64_t lease_token, char **out_err);

/* pq_release gives a leased task back (queued, run at once, this attempt not counted),
 * e.g. on graceful shutdown. */
pq_status pq_release(uint64_t worker, int64_t task_id, int64_t lease_token, char **out_err);

/* pq_ack_many settles many leases in one transaction.
 * acks_json = [{"id":N, "token":N, "op":"complete", "result":value}
 *            | {"id":N, "token":N, "op":"fail", "error":str, "retryable":bool}
 *            | {"id":N, "token":N, "op":"release"} | {"id":N,"token":N,"op":"cancel"}]
 * *out_json = {"results":[{"id":N, "status":pq_status, "error":str or null}]} in input order;
 * one bad ack does not stop the others. */
pq_status pq_ack_many(uint64_t worker, const char *acks_json, char **out_json, char **out_err);

/* pq_ack_and_claim settles acks as pq_ack_many does and, in the same transaction, leases
 * up to max_tasks (1..1000) eligible tasks as pq_claim does, without waiting (one commit per
 * batch instead of two). acks_json (borrowed, required; "[]" acks nothing) as pq_ack_many.
 * *out_json (caller frees with pq_free) = {"results":[{"id":N, "status":pq_status,
 *   "error":str or null}] in input order, "tasks":[Task] (possibly empty: nothing was
 *   claimable; call pq_claim with a timeout to wait)}; each Task carries its "lease_token".
 * A bad max_tasks gives PQ_ERR_INVALID_ARGUMENT; on any error status no ack took effect. */
pq_status pq_ack_and_claim(uint64_t worker, const char *acks_json, int32_t max_tasks, char **out_json,
                                  char **out_err);

/* ---- Operations: metrics, maintenance, doctor, purge/requeue, backup -- */

/* pq_metrics collects the queue's health cheaply (a few small tables and index ranges; no scan
 * of the tasks table: about 2 ms on a 1,000,000-task database, see BENCHMARKS.md).
 * options_json (JSON or NULL): {"window_ms": int (default 60000, 1000..86400000),
 *   "sample_limit": int (default 10000: at most this many of the newest tasks finished in the
 *                   window are read for throughput and percentiles),
 *   "recent_failures": int (default 5; 0 = none)}
 * *out_json = {"at_ms":N, "total":N, "by_status":{status:N}, "by_type":{type:{status:N}},
 *   "by_priority":{"<priority>":{status:N}},
 *   "depth":[{"status":str,"type":str,"priority":N,"count":N}],
 *   "oldest_eligible":{"task_id":N,"created_at_ms":N,"eligible_at_ms":N,"age_ms":N,"waiting_ms":N} or null,
 *   "throughput":{"window_ms":N,"span_ms":N,"completed":N,"failed":N,"cancelled":N,
 *                 "per_second":number,"failure_rate":number or null,
 *                 "by_type":{type:{"completed":N,"failed":N,"cancelled":N}}},
 *   "totals":T, "totals_by_type":{type:T},
 *   "latency":{type:{"wait":P,"run":P}}, "latency_all":{"wait":P,"run":P}, "sampled":bool,
 *   "workers":[{"worker_id","host","pid","strategy","capabilities","types","started_at_ms",
 *               "heartbeat_at_ms","stopped_at_ms","running":N,"lease_ms":N,"heartbeat_age_ms":N,
 *               "state":"active"|"stale"|"gone"}],
 *   "workers_by_state":{"active":N,"stale":N,"gone":N}, "expired_leases":N, "dead_letters":N,
 *   "recent_failures":[{"task_id":N,"type":str,"attempts":N,"error":str,"finished_at_ms":N}],
 *   "busy_retries":N, "duration_ms":number}
 * where P = {"count":N,"sum_ms":number,"p50_ms":number,"p95_ms":number,"p99_ms":number}
 * (nearest rank; wait = enqueue to first claim, run = last claim to finish) and
 * T = {"completed":N,"failed":N,"cancelled":N,"retried":N}: cumulative since the database was
 * created, never lowered by deletions. span_ms is the time throughput covers: the window, or less
 * when more than sample_limit tasks finished in it ("sampled": true). */
pq_status pq_metrics(uint64_t queue, const char *options_json, char **out_json, char **out_err);

/* pq_metrics_text: the same metrics in the Prometheus text exposition format (version 0.0.4),
 * series prefixed prismq_. options_json as pq_metrics. *out_text is plain UTF-8 text. */
pq_status pq_metrics_text(uint64_t queue, const char *options_json, char **out_text, char **out_err);

/* pq_maintain runs maintenance steps now (deletions and vacuum in short batches; workers go on).
 * options_json (JSON or NULL) starts from the defaults and overrides the keys given:
 *   "retention_ms": int (default 30 days; 0 = keep everything) delete completed and cancelled tasks
 *                   (and their logs) finished longer ago,
 *   "purge_failed": bool (default false) failed tasks too,
 *   "prune_workers_ms": int (default 7 days; 0 = keep) registry rows of workers gone that long,
 *   "incremental_vacuum": bool (default true), "vacuum_full": bool (default false; rewrites the
 *   file, switches older files to incremental auto-vacuum, blocks writers while it runs),
 *   "optimize": bool (default true), "recount": bool (default false; rebuilds the depth counters
 *   behind pq_stats and pq_metrics from the tasks table, needed only after other programs wrote
 *   to it; one write transaction that reads every task),
 *   "checkpoint": "none"|"passive"|"full"|"restart"|"truncate" (default "passive"),
 *   "integrity": "none"|"quick"|"full" (default "none")
 * *out_json = {"started_at_ms":N, "duration_ms":number,
 *   "retention":{"cutoff_ms":N,"statuses":[str],"tasks_deleted":N,"logs_deleted":N} or null,
 *   "workers_pruned":N,
 *   "vacuum":{"full":bool,"free_pages_before":N,"pages_freed":N,"auto_vacuum":str} or null,
 *   "optimized":bool, "recounted":N (counter rows corrected) or null,
 *   "checkpoint":{"mode":str,"busy":bool,"wal_frames":N,"checkpointed":N} or null,
 *   "integrity":{"mode":str,"ok":bool,"messages":[str]} or null,
 *   "before":{"db_bytes":N,"wal_bytes":N}, "after":{"db_bytes":N,"wal_bytes":N}} */
pq_status pq_maintain(uint64_t queue, const char *options_json, char **out_json, char **out_err);

/* pq_maintenance_schedule runs pq_maintain in the background about every interval while the
 * queue is open. options_json = {"interval_ms": int (required; >= 60000, 0 stops the schedule)}
 * plus the keys of pq_maintain. Several processes may schedule it: a pass runs only when no
 * process started one within the interval. */
pq_status pq_maintenance_schedule(uint64_t queue, const char *options_json, char **out_err);

/* pq_doctor checks the database and says what to do about each finding.
 * options_json (JSON or NULL): {"wal_warn_bytes": int (default 64 MiB), "min_free_bytes": int
 *   (default 512 MiB), "lease_grace_ms": int (default 60000), "integrity": "none"|"quick"|"full"}
 * *out_json = {"path":str, "schema_version":N, "ok":bool (no warning or error),
 *   "findings":[{"check":str, "severity":"ok"|"info"|"warning"|"error", "message":str,
 *                "advice":str}]}
 * Checks: path (local disk), journal_mode (WAL), pragmas (as configured; risky values), schema,
 * auto_vacuum, wal_size, disk_space, free_pages, workers (stale), gone_workers, leases (stuck),
 * dead_letters, maintenance (last scheduled run), integrity (when asked). */
pq_status pq_doctor(uint64_t queue, const char *options_json, char **out_json, char **out_err);

/* pq_purge deletes the tasks matching a filter, with their logs, in short batches.
 * filter_json (JSON or NULL) = {"statuses":[str] (default completed, failed, cancelled; queued
 *   allowed, leased refused with PQ_ERR_INVALID_ARGUMENT), "types":[str],
 *   "created_before_ms": int, "finished_before_ms": int, "error_contains": str,
 *   "limit": int (0 = all), "dry_run": bool (only count)}
 * *out_json = {"dry_run":bool, "matched":N, "affected":N, "sample_ids":[N] (up to 20 lowest)} */
pq_status pq_purge(uint64_t queue, const char *filter_json, char **out_json, char **out_err);

/* pq_requeue puts the failed or cancelled tasks matching a filter back to queued (attempts
 * reset), as pq_retry does for one. filter_json as pq_purge; statuses default to ["failed"] and
 * may only name failed and cancelled. *out_json as pq_purge. */
pq_status pq_requeue(uint64_t queue, const char *filter_json, char **out_json, char **out_err);

/* pq_backup starts an online backup in the background and returns an operation handle in
 * *out_op (poll it with pq_op_wait, release it with pq_op_close). Workers keep running; the copy
 * is a consistent snapshot of the moment it starts, written beside the destination, verified
 * with an integrity check, then renamed into place (journal_mode=DELETE: one file).
 * options_json = {"path": str (required; the backup file), "overwrite": bool (default false:
 *   an existing file gives PQ_ERR_INVALID_ARGUMENT from pq_op_wait), "step_pages": int (default
 *   1024 pages per step; progress is reported per step), "quick_check": bool (default false)} */
pq_status pq_backup(uint64_t queue, const char *options_json, uint64_t *out_op, char **out_err);

/* pq_restore starts restoring a backup file over a database in the background; *out_op as
 * pq_backup. It checks the backup first (a queue database, integrity, schema not newer), refuses
 * with PQ_ERR_BUSY (from pq_op_wait) while any process or connection has the target open, and
 * never leaves a -wal or -shm beside the restored file.
 * options_json = {"backup": str (required), "path": str (target; default pq_default_path()),
 *   "allow_network_path": bool (default false), "step_pages": int (default 1024)} */
pq_status pq_restore(const char *options_json, uint64_t *out_op, char **out_err);

/* pq_op_wait waits up to timeout_ms (<= 0: not at all) for an operation and reports it:
 * *out_json = {"done":bool, "phase":"check"|"copy"|"verify"|"done"|"", "pages_done":N,
 *   "pages_total":N, "result":R or null}
 * with R = {"path":str, "bytes":N, "pages":N, "schema_version":N, "tasks":N, "integrity":[str],
 *   "stale_files_removed":[str], "duration_ms":number} once done. An operation that ended in
 * an error returns that error's status and message (every later call does too). */
pq_status pq_op_wait(uint64_t op, int64_t timeout_ms, char **out_json, char **out_err);

/* pq_op_cancel asks a running operation to stop; pq_op_wait then reports its error. */
pq_status pq_op_cancel(uint64_t op, char **out_err);

/* pq_op_close cancels the operation if it still runs, waits for it to stop and releases the
 * handle. Closing twice gives PQ_ERR_CLOSED. */
pq_status pq_op_close(uint64_t op, char **out_err);

#ifdef __cplusplus
}
#endif

#endif /* PRISMQ_QUEUE_H */
