// Command capi is the C ABI of the PrismQ Task Queue engine, built with
// go build -buildmode=c-shared. prismq_queue.h (hand-written) documents every
// export, its status codes and who frees each pointer. Each export converts
// C types, runs through call (which recovers panics and maps errors to
// codes) and calls package bridge, where the behaviour lives.
package main

/*
#include <stdint.h>
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/prismq/queue/capi/bridge"
	"github.com/prismq/queue/core"
)

func main() {}

// cstr converts an input string. NULL gives "" (optional inputs) or an
// InvalidArgument error naming the parameter (required ones).
func cstr(p *C.char, name string, required bool) (string, error) {
	if p == nil {
		if required {
			return "", fmt.Errorf("%w: %s is NULL", errInvalid, name)
		}
		return "", nil
	}
	return C.GoString(p), nil
}

var errInvalid = core.ErrInvalidArgument

// withString is the body of an export that takes one string argument: it
// converts p (see cstr) inside call's panic guard and hands it to fn.
func withString[T any](p *C.char, name string, required bool, fn func(string) (T, error)) func() (T, error) {
	return func() (T, error) {
		s, err := cstr(p, name, required)
		if err != nil {
			var zero T
			return zero, err
		}
		return fn(s)
	}
}

// callHandle is call for exports that create a handle: body's handle is
// stored in *outH (0 on error); a NULL outH is an InvalidArgument naming outName.
func callHandle(outErr **C.char, outH *C.uint64_t, outName string, body func() (uint64, error)) C.int32_t {
	if outH == nil {
		return call(outErr, nil, func() (string, error) { return noOut(fmt.Errorf("%w: %s is NULL", errInvalid, outName)) })
	}
	*outH = 0
	return call(outErr, nil, func() (string, error) {
		h, err := body()
		if err == nil {
			*outH = C.uint64_t(h)
		}
		return "", err
	})
}

// setOut stores a library-allocated copy of s in *out (when out is not NULL).
func setOut(out **C.char, s string) {
	if out != nil {
		*out = C.CString(s)
	}
}

// call is the one place an export runs its body: it clears the out
// parameters, checks them, recovers panics, and reports errors.
func call(outErr **C.char, outs []**C.char, fn func() (string, error)) C.int32_t {
	if outErr != nil {
		*outErr = nil
	}
	for _, o := range outs {
		if o == nil {
			setOut(outErr, "invalid argument: an output pointer is NULL")
			return C.int32_t(bridge.InvalidArgument)
		}
		*o = nil
	}
	out, code, msg := bridge.Guard(fn)
	if code != bridge.OK {
		setOut(outErr, msg)
		return C.int32_t(code)
	}
	if len(outs) > 0 {
		setOut(outs[0], out)
	}
	return C.int32_t(bridge.OK)
}

func noOut(err error) (string, error) { return "", err }

//export pq_free
func pq_free(p unsafe.Pointer) {
	if p != nil {
		C.free(p)
	}
}

//export pq_version
func pq_version(out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Version, nil })
}

//export pq_default_path
func pq_default_path(out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, bridge.DefaultPath)
}

//export pq_open
func pq_open(options *C.char, outQueue *C.uint64_t, outErr **C.char) C.int32_t {
	return callHandle(outErr, outQueue, "out_queue", withString(options, "options_json", false, func(s string) (uint64, error) {
		return bridge.Open(s)
	}))
}

//export pq_close
func pq_close(q C.uint64_t, outErr **C.char) C.int32_t {
	return call(outErr, nil, func() (string, error) { return noOut(bridge.Close(uint64(q))) })
}

//export pq_queue_info
func pq_queue_info(q C.uint64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.QueueInfo(uint64(q)) })
}

//export pq_enqueue
func pq_enqueue(q C.uint64_t, task *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(task, "task_json", true, func(s string) (string, error) {
		return bridge.Enqueue(uint64(q), s)
	}))
}

//export pq_enqueue_many
func pq_enqueue_many(q C.uint64_t, tasks *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(tasks, "tasks_json", true, func(s string) (string, error) {
		return bridge.EnqueueMany(uint64(q), s)
	}))
}

//export pq_get
func pq_get(q C.uint64_t, id C.int64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Get(uint64(q), int64(id)) })
}

//export pq_list
func pq_list(q C.uint64_t, filter *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(filter, "filter_json", false, func(s string) (string, error) {
		return bridge.List(uint64(q), s)
	}))
}

//export pq_cancel
func pq_cancel(q C.uint64_t, id C.int64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Cancel(uint64(q), int64(id)) })
}

//export pq_retry
func pq_retry(q C.uint64_t, id C.int64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Retry(uint64(q), int64(id)) })
}

//export pq_stats
func pq_stats(q C.uint64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Stats(uint64(q)) })
}

//export pq_sweep
func pq_sweep(q C.uint64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Sweep(uint64(q)) })
}

//export pq_log
func pq_log(q C.uint64_t, id C.int64_t, entry *C.char, outErr **C.char) C.int32_t {
	return call(outErr, nil, withString(entry, "entry_json", true, func(s string) (string, error) {
		return noOut(bridge.Log(uint64(q), int64(id), s))
	}))
}

//export pq_logs
func pq_logs(q C.uint64_t, id C.int64_t, limit C.int32_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Logs(uint64(q), int64(id), int32(limit)) })
}

//export pq_workers
func pq_workers(q C.uint64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Workers(uint64(q)) })
}

//export pq_worker_open
func pq_worker_open(q C.uint64_t, config *C.char, outWorker *C.uint64_t, outErr **C.char) C.int32_t {
	return callHandle(outErr, outWorker, "out_worker", withString(config, "config_json", true, func(s string) (uint64, error) {
		return bridge.WorkerOpen(uint64(q), s)
	}))
}

//export pq_worker_close
func pq_worker_close(w C.uint64_t, outErr **C.char) C.int32_t {
	return call(outErr, nil, func() (string, error) { return noOut(bridge.WorkerClose(uint64(w))) })
}

//export pq_worker_set_strategy
func pq_worker_set_strategy(w C.uint64_t, strategy *C.char, outErr **C.char) C.int32_t {
	return call(outErr, nil, withString(strategy, "strategy", true, func(s string) (string, error) {
		return noOut(bridge.WorkerSetStrategy(uint64(w), s))
	}))
}

//export pq_claim
func pq_claim(w C.uint64_t, max C.int32_t, timeoutMs C.int64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) {
		return bridge.Claim(uint64(w), int32(max), int64(timeoutMs))
	})
}

//export pq_heartbeat
func pq_heartbeat(w C.uint64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.Heartbeat(uint64(w)) })
}

//export pq_complete
func pq_complete(w C.uint64_t, id C.int64_t, token C.int64_t, result *C.char, outErr **C.char) C.int32_t {
	return call(outErr, nil, withString(result, "result_json", false, func(s string) (string, error) {
		return noOut(bridge.Complete(uint64(w), int64(id), int64(token), s))
	}))
}

//export pq_fail
func pq_fail(w C.uint64_t, id C.int64_t, token C.int64_t, message *C.char, retryable C.int32_t,
	out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(message, "error_message", false, func(s string) (string, error) {
		return bridge.Fail(uint64(w), int64(id), int64(token), s, retryable != 0)
	}))
}

//export pq_renew
func pq_renew(w C.uint64_t, id C.int64_t, token C.int64_t, leaseMs C.int64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) {
		return bridge.Renew(uint64(w), int64(id), int64(token), int64(leaseMs))
	})
}

//export pq_progress
func pq_progress(w C.uint64_t, id C.int64_t, token C.int64_t, progress *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(progress, "progress_json", true, func(s string) (string, error) {
		return bridge.Progress(uint64(w), int64(id), int64(token), s)
	}))
}

//export pq_ack_cancel
func pq_ack_cancel(w C.uint64_t, id C.int64_t, token C.int64_t, outErr **C.char) C.int32_t {
	return call(outErr, nil, func() (string, error) { return noOut(bridge.AckCancel(uint64(w), int64(id), int64(token))) })
}

//export pq_release
func pq_release(w C.uint64_t, id C.int64_t, token C.int64_t, outErr **C.char) C.int32_t {
	return call(outErr, nil, func() (string, error) { return noOut(bridge.Release(uint64(w), int64(id), int64(token))) })
}

//export pq_ack_many
func pq_ack_many(w C.uint64_t, acks *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(acks, "acks_json", true, func(s string) (string, error) {
		return bridge.AckMany(uint64(w), s)
	}))
}

//export pq_ack_and_claim
func pq_ack_and_claim(w C.uint64_t, acks *C.char, max C.int32_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(acks, "acks_json", true, func(s string) (string, error) {
		return bridge.AckAndClaim(uint64(w), s, int32(max))
	}))
}

// ---- operations: metrics, maintenance, doctor, purge/requeue, backup/restore ----

//export pq_metrics
func pq_metrics(q C.uint64_t, options *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(options, "options_json", false, func(s string) (string, error) {
		return bridge.Metrics(uint64(q), s)
	}))
}

//export pq_metrics_text
func pq_metrics_text(q C.uint64_t, options *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(options, "options_json", false, func(s string) (string, error) {
		return bridge.MetricsText(uint64(q), s)
	}))
}

//export pq_maintain
func pq_maintain(q C.uint64_t, options *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(options, "options_json", false, func(s string) (string, error) {
		return bridge.Maintain(uint64(q), s)
	}))
}

//export pq_maintenance_schedule
func pq_maintenance_schedule(q C.uint64_t, options *C.char, outErr **C.char) C.int32_t {
	return call(outErr, nil, withString(options, "options_json", true, func(s string) (string, error) {
		return noOut(bridge.ScheduleMaintenance(uint64(q), s))
	}))
}

//export pq_doctor
func pq_doctor(q C.uint64_t, options *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(options, "options_json", false, func(s string) (string, error) {
		return bridge.Doctor(uint64(q), s)
	}))
}

//export pq_purge
func pq_purge(q C.uint64_t, filter *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(filter, "filter_json", false, func(s string) (string, error) {
		return bridge.Purge(uint64(q), s)
	}))
}

//export pq_requeue
func pq_requeue(q C.uint64_t, filter *C.char, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, withString(filter, "filter_json", false, func(s string) (string, error) {
		return bridge.Requeue(uint64(q), s)
	}))
}

//export pq_backup
func pq_backup(q C.uint64_t, options *C.char, outOp *C.uint64_t, outErr **C.char) C.int32_t {
	return callHandle(outErr, outOp, "out_op", withString(options, "options_json", true, func(s string) (uint64, error) {
		return bridge.BackupStart(uint64(q), s)
	}))
}

//export pq_restore
func pq_restore(options *C.char, outOp *C.uint64_t, outErr **C.char) C.int32_t {
	return callHandle(outErr, outOp, "out_op", withString(options, "options_json", true, func(s string) (uint64, error) {
		return bridge.RestoreStart(s)
	}))
}

//export pq_op_wait
func pq_op_wait(op C.uint64_t, timeoutMs C.int64_t, out **C.char, outErr **C.char) C.int32_t {
	return call(outErr, []**C.char{out}, func() (string, error) { return bridge.OpWait(uint64(op), int64(timeoutMs)) })
}

//export pq_op_cancel
func pq_op_cancel(op C.uint64_t, outErr **C.char) C.int32_t {
	return call(outErr, nil, func() (string, error) { return noOut(bridge.OpCancel(uint64(op))) })
}

//export pq_op_close
func pq_op_close(op C.uint64_t, outErr **C.char) C.int32_t {
	return call(outErr, nil, func() (string, error) { return noOut(bridge.OpClose(uint64(op))) })
}
