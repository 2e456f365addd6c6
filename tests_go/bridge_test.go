package tests_go

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/capi/bridge"
	"github.com/prismq/queue/core"
)

// openBridge opens a queue through the bridge in t.TempDir() and closes it
// at the end of the test (unless the test did).
func openBridge(t *testing.T, extra string) uint64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bridge.db")
	opts := fmt.Sprintf(`{"path":%q,"disable_sweeper":true%s}`, path, extra)
	h, err := bridge.Open(opts)
	require.NoError(t, err)
	require.NotZero(t, h)
	t.Cleanup(func() { _ = bridge.Close(h) })
	return h
}

func openBridgeWorker(t *testing.T, qh uint64, config string) uint64 {
	t.Helper()
	wh, err := bridge.WorkerOpen(qh, config)
	require.NoError(t, err)
	require.NotZero(t, wh)
	return wh
}

// code runs a bridge call and returns its status code.
func code(err error) bridge.Status { return bridge.CodeOf(err) }

func TestEveryBridgeCallWithAnUnknownHandleIsClosed(t *testing.T) {
	for _, h := range []uint64{0, 1 << 62} {
		calls := map[string]func() error{
			"close":        func() error { return bridge.Close(h) },
			"queue info":   func() error { _, err := bridge.QueueInfo(h); return err },
			"enqueue":      func() error { _, err := bridge.Enqueue(h, `{"type":"job"}`); return err },
			"enqueue many": func() error { _, err := bridge.EnqueueMany(h, `[{"type":"job"}]`); return err },
			"get":          func() error { _, err := bridge.Get(h, 1); return err },
			"cancel":       func() error { _, err := bridge.Cancel(h, 1); return err },
			"retry":        func() error { _, err := bridge.Retry(h, 1); return err },
			"list":         func() error { _, err := bridge.List(h, ""); return err },
			"stats":        func() error { _, err := bridge.Stats(h); return err },
			"sweep":        func() error { _, err := bridge.Sweep(h); return err },
			"log":          func() error { return bridge.Log(h, 1, `{"message":"x"}`) },
			"logs":         func() error { _, err := bridge.Logs(h, 1, 0); return err },
			"workers":      func() error { _, err := bridge.Workers(h); return err },
			"worker open":  func() error { _, err := bridge.WorkerOpen(h, `{"worker_id":"w"}`); return err },
			"worker close": func() error { return bridge.WorkerClose(h) },
			"set strategy": func() error { return bridge.WorkerSetStrategy(h, "fifo") },
			"claim":        func() error { _, err := bridge.Claim(h, 1, 0); return err },
			"heartbeat":    func() error { _, err := bridge.Heartbeat(h); return err },
			"complete":     func() error { return bridge.Complete(h, 1, 1, "") },
			"fail":         func() error { _, err := bridge.Fail(h, 1, 1, "x", true); return err },
			"renew":        func() error { _, err := bridge.Renew(h, 1, 1, 0); return err },
			"progress":     func() error { _, err := bridge.Progress(h, 1, 1, `{"percent":1}`); return err },
			"ack cancel":   func() error { return bridge.AckCancel(h, 1, 1) },
			"release":      func() error { return bridge.Release(h, 1, 1) },
			"ack many":     func() error { _, err := bridge.AckMany(h, `[]`); return err },
		}
		for name, call := range calls {
			err := call()
			require.Error(t, err, "%s(%d)", name, h)
			require.Equal(t, bridge.Closed, code(err), "%s(%d): %v", name, h, err)
		}
	}
}

func TestAQueueHandleIsNotAWorkerHandle(t *testing.T) {
	qh := openBridge(t, "")
	wh := openBridgeWorker(t, qh, `{"worker_id":"w"}`)
	_, err := bridge.Claim(qh, 1, 0)
	require.Equal(t, bridge.Closed, code(err), "a queue handle used as a worker")
	_, err = bridge.Stats(wh)
	require.Equal(t, bridge.Closed, code(err), "a worker handle used as a queue")
}

func TestClosingTwiceAndClosingAQueueWithWorkers(t *testing.T) {
	qh := openBridge(t, "")
	w1 := openBridgeWorker(t, qh, `{"worker_id":"w1"}`)
	w2 := openBridgeWorker(t, qh, `{"worker_id":"w2"}`)
	other := openBridge(t, "")
	otherWorker := openBridgeWorker(t, other, `{"worker_id":"w1"}`)

	require.NoError(t, bridge.WorkerClose(w2))
	require.Equal(t, bridge.Closed, code(bridge.WorkerClose(w2)), "a worker closed twice")

	require.NoError(t, bridge.Close(qh))
	require.Equal(t, bridge.Closed, code(bridge.Close(qh)), "a queue closed twice")
	_, err := bridge.Claim(w1, 1, 0)
	require.Equal(t, bridge.Closed, code(err), "closing a queue invalidates its workers")
	require.Equal(t, bridge.Closed, code(bridge.WorkerClose(w1)))

	_, err = bridge.Claim(otherWorker, 1, 0)
	require.NoError(t, err, "another queue's worker is untouched")
}

func TestBridgeInputValidation(t *testing.T) {
	qh := openBridge(t, `,"max_payload_bytes":128`)
	wh := openBridgeWorker(t, qh, `{"worker_id":"w"}`)
	enq, err := bridge.Enqueue(qh, `{"type":"job"}`)
	require.NoError(t, err)
	var e struct {
		Task struct {
			ID int64 `json:"id"`
		} `json:"task"`
	}
	require.NoError(t, json.Unmarshal([]byte(enq), &e))
	claimed, err := bridge.Claim(wh, 1, 0)
	require.NoError(t, err)
	var c struct {
		Tasks []struct {
			ID         int64 `json:"id"`
			LeaseToken int64 `json:"lease_token"`
		} `json:"tasks"`
	}
	require.NoError(t, json.Unmarshal([]byte(claimed), &c))
	require.Len(t, c.Tasks, 1)
	id, tok := c.Tasks[0].ID, c.Tasks[0].LeaseToken
	big := `{"type":"job","payload":{"x":"` + strings.Repeat("a", 200) + `"}}`

	cases := []struct {
		name string
		call func() error
		want bridge.Status
	}{
		{"invalid JSON options", func() error { _, err := bridge.Open(`{"path":`); return err }, bridge.InvalidArgument},
		{"unknown option fields", func() error { _, err := bridge.Open(`{"paht":"x.db"}`); return err }, bridge.InvalidArgument},
		{"a negative lease option", func() error { _, err := bridge.Open(`{"default_lease_ms":-1}`); return err }, bridge.InvalidArgument},
		{"invalid JSON for a task", func() error { _, err := bridge.Enqueue(qh, `{"type":"job"`); return err }, bridge.InvalidArgument},
		{"an empty task", func() error { _, err := bridge.Enqueue(qh, ``); return err }, bridge.InvalidArgument},
		{"a task with an unknown field", func() error { _, err := bridge.Enqueue(qh, `{"type":"job","priorty":1}`); return err }, bridge.InvalidArgument},
		{"a task with invalid UTF-8", func() error { _, err := bridge.Enqueue(qh, "{\"type\":\"job\xff\"}"); return err }, bridge.InvalidArgument},
		{"a task with trailing data", func() error { _, err := bridge.Enqueue(qh, `{"type":"job"} {}`); return err }, bridge.InvalidArgument},
		{"a task with a wrongly typed field", func() error { _, err := bridge.Enqueue(qh, `{"type":"job","priority":"high"}`); return err }, bridge.InvalidArgument},
		{"a task with a negative delay", func() error { _, err := bridge.Enqueue(qh, `{"type":"job","delay_ms":-5}`); return err }, bridge.InvalidArgument},
		{"a task with an empty idempotency key", func() error { _, err := bridge.Enqueue(qh, `{"type":"job","idempotency_key":""}`); return err }, bridge.InvalidArgument},
		{"a task list that is an object", func() error { _, err := bridge.EnqueueMany(qh, `{"type":"job"}`); return err }, bridge.InvalidArgument},
		{"an oversized payload", func() error { _, err := bridge.Enqueue(qh, big); return err }, bridge.PayloadTooLarge},
		{"an oversized payload in a batch", func() error { _, err := bridge.EnqueueMany(qh, `[`+big+`]`); return err }, bridge.PayloadTooLarge},
		{"a filter with an unknown field", func() error { _, err := bridge.List(qh, `{"state":"queued"}`); return err }, bridge.InvalidArgument},
		{"a log entry that is invalid JSON", func() error { return bridge.Log(qh, id, `{"message":`) }, bridge.InvalidArgument},
		{"a worker config with an unknown field", func() error { _, err := bridge.WorkerOpen(qh, `{"worker_id":"x","speed":9}`); return err }, bridge.InvalidArgument},
		{"a worker config with an unknown strategy", func() error { _, err := bridge.WorkerOpen(qh, `{"worker_id":"x","strategy":"random"}`); return err }, bridge.InvalidArgument},
		{"an unknown strategy name", func() error { return bridge.WorkerSetStrategy(wh, "random") }, bridge.InvalidArgument},
		{"a claim of 0 tasks", func() error { _, err := bridge.Claim(wh, 0, 0); return err }, bridge.InvalidArgument},
		{"a result that is invalid JSON", func() error { return bridge.Complete(wh, id, tok, `{"a":}`) }, bridge.InvalidArgument},
		{"a result with invalid UTF-8", func() error { return bridge.Complete(wh, id, tok, "\"\xff\"") }, bridge.InvalidArgument},
		{"an oversized result", func() error { return bridge.Complete(wh, id, tok, `"`+strings.Repeat("r", 200)+`"`) }, bridge.PayloadTooLarge},
		{"a failure message with invalid UTF-8", func() error { _, err := bridge.Fail(wh, id, tok, "\xff", true); return err }, bridge.InvalidArgument},
		{"progress with an unknown field", func() error { _, err := bridge.Progress(wh, id, tok, `{"pct":5}`); return err }, bridge.InvalidArgument},
		{"progress of 150 percent", func() error { _, err := bridge.Progress(wh, id, tok, `{"percent":150}`); return err }, bridge.InvalidArgument},
		{"acks that are invalid JSON", func() error { _, err := bridge.AckMany(wh, `[{"id":1,`); return err }, bridge.InvalidArgument},
		{"an unknown task id for get", func() error { _, err := bridge.Get(qh, 99999); return err }, bridge.NotFound},
		{"an unknown task id for cancel", func() error { _, err := bridge.Cancel(qh, 99999); return err }, bridge.NotFound},
		{"an unknown task id for retry", func() error { _, err := bridge.Retry(qh, 99999); return err }, bridge.NotFound},
		{"an unknown task id for log", func() error { return bridge.Log(qh, 99999, `{"message":"x"}`) }, bridge.NotFound},
		{"an unknown task id for logs", func() error { _, err := bridge.Logs(qh, 99999, 0); return err }, bridge.NotFound},
		{"an unknown task id for complete", func() error { return bridge.Complete(wh, 99999, 1, "") }, bridge.NotFound},
		{"a stale token", func() error { return bridge.Complete(wh, id, tok+1, "") }, bridge.LeaseLost},
		{"a retry of a leased task", func() error { _, err := bridge.Retry(qh, id); return err }, bridge.InvalidState},
		{"a network path", func() error { _, err := bridge.Open(`{"path":"//prismq-no-such-host/share/q.db"}`); return err }, bridge.NetworkPath},
	}
	for _, tc := range cases {
		t.Run(tc.name+" gives status "+fmt.Sprint(tc.want), func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			require.Equal(t, tc.want, code(err), "%v", err)
			require.NotEmpty(t, err.Error())
		})
	}
	got, err := bridge.Get(qh, id)
	require.NoError(t, err)
	require.Contains(t, got, `"status":"leased"`, "no refused call settled the task")
}

func TestCodeOfMapsEveryEngineError(t *testing.T) {
	cases := map[error]bridge.Status{
		nil:                                   bridge.OK,
		core.ErrInvalidArgument:               bridge.InvalidArgument,
		core.ErrPayloadTooLarge:               bridge.PayloadTooLarge,
		core.ErrNotFound:                      bridge.NotFound,
		core.ErrLeaseLost:                     bridge.LeaseLost,
		core.ErrClosed:                        bridge.Closed,
		core.ErrBusy:                          bridge.Busy,
		core.ErrInvalidState:                  bridge.InvalidState,
		core.ErrNetworkPath:                   bridge.NetworkPath,
		core.ErrSchema:                        bridge.Schema,
		core.ErrIO:                            bridge.IO,
		errors.New("something unexpected"):    bridge.Internal,
		fmt.Errorf("wrapped: %w", core.ErrIO): bridge.IO,
		bridge.ErrUnknownHandle:               bridge.Closed,
	}
	for err, want := range cases {
		require.Equal(t, want, bridge.CodeOf(err), "%v", err)
	}
}

func TestGuardTurnsAPanicIntoAnInternalError(t *testing.T) {
	out, st, msg := bridge.Guard(func() (string, error) {
		var m map[string]int
		m["boom"] = 1 // assignment to a nil map panics
		return "unreachable", nil
	})
	require.Empty(t, out)
	require.Equal(t, bridge.Internal, st)
	require.Contains(t, msg, "assignment to entry in nil map")

	out, st, msg = bridge.Guard(func() (string, error) { panic("custom panic value") })
	require.Equal(t, bridge.Internal, st)
	require.Empty(t, out)
	require.Contains(t, msg, "custom panic value")

	out, st, msg = bridge.Guard(func() (string, error) { return "", fmt.Errorf("get: %w", core.ErrNotFound) })
	require.Equal(t, bridge.NotFound, st)
	require.Empty(t, out)
	require.Equal(t, "get: task not found", msg)

	out, st, msg = bridge.Guard(func() (string, error) { return `{"ok":true}`, nil })
	require.Equal(t, bridge.OK, st)
	require.Equal(t, `{"ok":true}`, out)
	require.Empty(t, msg)
}

// headerTaskFields reads the field names of the Task JSON object documented
// in capi/prismq_queue.h.
func headerTaskFields(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "capi", "prismq_queue.h"))
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "Task (JSON object")
	require.GreaterOrEqual(t, start, 0, "the header documents the Task object")
	end := strings.Index(text[start:], "}")
	require.Greater(t, end, 0)
	block := text[start : start+end]
	var out []string
	for _, m := range regexp.MustCompile(`"([a-z_]+)":`).FindAllStringSubmatch(block, -1) {
		out = append(out, m[1])
	}
	require.NotEmpty(t, out)
	sort.Strings(out)
	return out
}

func keysOf(t *testing.T, obj map[string]json.RawMessage) []string {
	t.Helper()
	out := make([]string, 0, len(obj))
	for k := range obj {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestBridgeJSONShapesMatchTheHeader(t *testing.T) {
	fields := headerTaskFields(t)
	require.Contains(t, fields, "lease_token")
	qh := openBridge(t, "")

	out, err := bridge.Enqueue(qh, `{"type":"report","payload":{"month":"2024-05"},"priority":7,"max_attempts":3,
		"requirements":{"gpu":"a100"},"idempotency_key":"report-may","retry_base_ms":250,"retry_cap_ms":4000}`)
	require.NoError(t, err)
	var enq map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(out), &enq))
	require.Equal(t, []string{"created", "task"}, keysOf(t, enq))
	require.JSONEq(t, `true`, string(enq["created"]))
	var task map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(enq["task"], &task))
	require.Equal(t, fields, keysOf(t, task), "the enqueued Task has exactly the header's fields")
	require.JSONEq(t, `"report"`, string(task["type"]))
	require.JSONEq(t, `{"month":"2024-05"}`, string(task["payload"]))
	require.JSONEq(t, `{"gpu":"a100"}`, string(task["requirements"]))
	require.JSONEq(t, `"queued"`, string(task["status"]))
	require.JSONEq(t, `7`, string(task["priority"]))
	require.JSONEq(t, `3`, string(task["max_attempts"]))
	require.JSONEq(t, `250`, string(task["retry_base_ms"]))
	require.JSONEq(t, `4000`, string(task["retry_cap_ms"]))
	for _, null := range []string{"lease_expires_at_ms", "lease_owner", "claimed_at_ms", "started_at_ms", "finished_at_ms",
		"last_error", "result", "progress_percent", "progress_current", "progress_total", "progress_message"} {
		require.JSONEq(t, `null`, string(task[null]), null)
	}
	var id int64
	require.NoError(t, json.Unmarshal(task["id"], &id))

	again, err := bridge.Enqueue(qh, `{"type":"report","idempotency_key":"report-may"}`)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(again), &enq))
	require.JSONEq(t, `false`, string(enq["created"]))

	got, err := bridge.Get(qh, id)
	require.NoError(t, err)
	var gotTask map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(got), &gotTask))
	require.Equal(t, fields, keysOf(t, gotTask))

	wh := openBridgeWorker(t, qh, `{"worker_id":"gpu-1","capabilities":{"gpu":["t4","a100"]},"strategy":"fifo","lease_ms":30000}`)
	claimed, err := bridge.Claim(wh, 10, 0)
	require.NoError(t, err)
	var cl map[string][]map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(claimed), &cl))
	require.Len(t, cl["tasks"], 1)
	lt := cl["tasks"][0]
	require.Equal(t, fields, keysOf(t, lt))
	require.JSONEq(t, `"leased"`, string(lt["status"]))
	require.JSONEq(t, `"gpu-1"`, string(lt["lease_owner"]))
	require.JSONEq(t, `1`, string(lt["attempts"]))
	var token int64
	require.NoError(t, json.Unmarshal(lt["lease_token"], &token))

	prog, err := bridge.Progress(wh, id, token, `{"percent":50,"current":1,"total":2,"message":"half"}`)
	require.NoError(t, err)
	var lease map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(prog), &lease))
	require.Equal(t, []string{"cancel_requested", "lease_expires_at_ms"}, keysOf(t, lease))
	renew, err := bridge.Renew(wh, id, token, 0)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(renew), &lease))
	require.Equal(t, []string{"cancel_requested", "lease_expires_at_ms"}, keysOf(t, lease))
	hb, err := bridge.Heartbeat(wh)
	require.NoError(t, err)
	require.JSONEq(t, `{"renewed":1,"cancel_requested":[]}`, hb)

	require.NoError(t, bridge.Log(qh, id, `{"level":"info","message":"rendering","details":{"page":1}}`))
	logs, err := bridge.Logs(qh, id, 0)
	require.NoError(t, err)
	var lg map[string][]map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(logs), &lg))
	require.Len(t, lg["logs"], 1)
	require.Equal(t, []string{"at_ms", "details", "id", "level", "message", "task_id"}, keysOf(t, lg["logs"][0]))

	require.NoError(t, bridge.Complete(wh, id, token, `{"pages":12}`))
	done, err := bridge.Get(qh, id)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(done), &gotTask))
	require.JSONEq(t, `"completed"`, string(gotTask["status"]))
	require.JSONEq(t, `{"pages":12}`, string(gotTask["result"]))
	require.JSONEq(t, `50`, string(gotTask["progress_percent"]))
	require.JSONEq(t, `"half"`, string(gotTask["progress_message"]))
	require.NotEqual(t, `null`, string(gotTask["finished_at_ms"]))

	stats, err := bridge.Stats(qh)
	require.NoError(t, err)
	var st map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(stats), &st))
	require.Equal(t, []string{"by_status", "by_type", "oldest_queued_ms", "total", "workers"}, keysOf(t, st))
	require.JSONEq(t, `1`, string(st["total"]))

	list, err := bridge.List(qh, `{"statuses":["completed"],"limit":5}`)
	require.NoError(t, err)
	var ls map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(list), &ls))
	require.Equal(t, []string{"next_after_id", "tasks"}, keysOf(t, ls))

	sw, err := bridge.Sweep(qh)
	require.NoError(t, err)
	require.JSONEq(t, `{"requeued":0,"failed":0,"cancelled":0}`, sw)

	ws, err := bridge.Workers(qh)
	require.NoError(t, err)
	var wl map[string][]map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(ws), &wl))
	require.Len(t, wl["workers"], 1)
	require.Equal(t, []string{"capabilities", "heartbeat_at_ms", "host", "pid", "running", "started_at_ms", "stopped_at_ms",
		"strategy", "types", "worker_id"}, keysOf(t, wl["workers"][0]))

	info, err := bridge.QueueInfo(qh)
	require.NoError(t, err)
	var qi map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(info), &qi))
	for _, k := range []string{"path", "schema_version", "pragmas", "version"} {
		require.Contains(t, qi, k, "queue info documents %s", k)
	}
	require.JSONEq(t, fmt.Sprint(core.LatestSchemaVersion()), string(qi["schema_version"]))
}

func TestBridgeAckManyReportsEachAck(t *testing.T) {
	qh := openBridge(t, "")
	wh := openBridgeWorker(t, qh, `{"worker_id":"w","strategy":"fifo"}`)
	_, err := bridge.EnqueueMany(qh, `[{"type":"a"},{"type":"b"},{"type":"c"}]`)
	require.NoError(t, err)
	claimed, err := bridge.Claim(wh, 3, 0)
	require.NoError(t, err)
	var cl struct {
		Tasks []struct {
			ID    int64 `json:"id"`
			Token int64 `json:"lease_token"`
		} `json:"tasks"`
	}
	require.NoError(t, json.Unmarshal([]byte(claimed), &cl))
	require.Len(t, cl.Tasks, 3)
	a, b, c := cl.Tasks[0], cl.Tasks[1], cl.Tasks[2]
	acks := fmt.Sprintf(`[{"id":%d,"token":%d,"op":"complete","result":{"ok":1}},
		{"id":%d,"token":%d,"op":"fail","error":"bad","retryable":false},
		{"id":%d,"token":%d,"op":"complete"},
		{"id":%d,"token":%d,"op":"release"}]`, a.ID, a.Token, b.ID, b.Token, c.ID, c.Token+7, c.ID, c.Token)
	out, err := bridge.AckMany(wh, acks)
	require.NoError(t, err)
	var res struct {
		Results []struct {
			ID     int64         `json:"id"`
			Status bridge.Status `json:"status"`
			Error  *string       `json:"error"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res.Results, 4)
	require.Equal(t, bridge.OK, res.Results[0].Status)
	require.Nil(t, res.Results[0].Error)
	require.Equal(t, bridge.OK, res.Results[1].Status)
	require.Equal(t, bridge.LeaseLost, res.Results[2].Status, "one stale ack")
	require.NotNil(t, res.Results[2].Error)
	require.Equal(t, bridge.OK, res.Results[3].Status, "does not stop the others")

	for id, want := range map[int64]string{a.ID: "completed", b.ID: "failed", c.ID: "queued"} {
		got, err := bridge.Get(qh, id)
		require.NoError(t, err)
		require.Contains(t, got, `"status":"`+want+`"`)
	}
}

func TestBridgeRetryOptionsReachTheEngine(t *testing.T) {
	cases := []struct {
		name     string
		open     string
		worker   string
		min, max int64 // run_after_ms - updated_at_ms of the first retry
	}{
		{"a queue policy without jitter is exact", `,"retry":{"base_ms":200,"cap_ms":1000,"jitter":0}`, `{"worker_id":"w"}`, 200, 200},
		{"a queue policy without a jitter field gets the default 20 %", `,"retry":{"base_ms":200,"cap_ms":1000}`, `{"worker_id":"w"}`, 160, 240},
		{"a worker policy overrides the queue's", `,"retry":{"base_ms":200,"jitter":0}`, `{"worker_id":"w","retry":{"base_ms":700,"jitter":0}}`, 700, 700},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			qh := openBridge(t, tc.open)
			wh := openBridgeWorker(t, qh, tc.worker)
			_, err := bridge.Enqueue(qh, `{"type":"job"}`)
			require.NoError(t, err)
			claimed, err := bridge.Claim(wh, 1, 0)
			require.NoError(t, err)
			var cl struct {
				Tasks []struct {
					ID    int64 `json:"id"`
					Token int64 `json:"lease_token"`
				} `json:"tasks"`
			}
			require.NoError(t, json.Unmarshal([]byte(claimed), &cl))
			require.Len(t, cl.Tasks, 1)
			out, err := bridge.Fail(wh, cl.Tasks[0].ID, cl.Tasks[0].Token, "again", true)
			require.NoError(t, err)
			var task struct {
				Status     string `json:"status"`
				RunAfterMs int64  `json:"run_after_ms"`
				UpdatedMs  int64  `json:"updated_at_ms"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &task))
			require.Equal(t, "queued", task.Status)
			delay := task.RunAfterMs - task.UpdatedMs
			require.GreaterOrEqual(t, delay, tc.min)
			require.LessOrEqual(t, delay, tc.max)
		})
	}
}
