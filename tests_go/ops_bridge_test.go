package tests_go

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/capi/bridge"
)

// waitOp polls a bridge operation to its end and returns its final report.
func waitOp(t *testing.T, op uint64) (map[string]any, error) {
	t.Helper()
	for {
		out, err := bridge.OpWait(op, 50)
		if err != nil {
			return nil, err
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		if r["done"] == true {
			return r, nil
		}
	}
}

func TestBridgeOperationsCallsWithAnUnknownHandleAreClosed(t *testing.T) {
	for name, call := range map[string]func() error{
		"metrics":      func() error { _, err := bridge.Metrics(1<<62, ""); return err },
		"metrics text": func() error { _, err := bridge.MetricsText(1<<62, ""); return err },
		"maintain":     func() error { _, err := bridge.Maintain(1<<62, ""); return err },
		"schedule":     func() error { return bridge.ScheduleMaintenance(1<<62, `{"interval_ms":0}`) },
		"doctor":       func() error { _, err := bridge.Doctor(1<<62, ""); return err },
		"purge":        func() error { _, err := bridge.Purge(1<<62, ""); return err },
		"requeue":      func() error { _, err := bridge.Requeue(1<<62, ""); return err },
		"backup":       func() error { _, err := bridge.BackupStart(1<<62, `{"path":"x.db"}`); return err },
		"op wait":      func() error { _, err := bridge.OpWait(1<<62, 0); return err },
		"op cancel":    func() error { return bridge.OpCancel(1 << 62) },
		"op close":     func() error { return bridge.OpClose(1 << 62) },
	} {
		require.Equal(t, bridge.Closed, code(call()), name)
	}
}

func TestBridgeMetricsAndMaintenanceSpeakTheHeaderJSON(t *testing.T) {
	h := openBridge(t, "")
	_, err := bridge.Enqueue(h, `{"type":"email","priority":7}`)
	require.NoError(t, err)

	out, err := bridge.Metrics(h, `{"window_ms":30000,"recent_failures":0}`)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	for _, key := range []string{"at_ms", "total", "by_status", "by_type", "by_priority", "depth", "oldest_eligible",
		"throughput", "latency", "latency_all", "sampled", "workers", "workers_by_state", "expired_leases",
		"dead_letters", "recent_failures", "busy_retries", "duration_ms"} {
		require.Contains(t, m, key)
	}
	require.Equal(t, map[string]any{"7": map[string]any{"queued": float64(1)}}, m["by_priority"])
	require.Equal(t, float64(30000), m["throughput"].(map[string]any)["window_ms"])
	require.Equal(t, []any{}, m["recent_failures"])

	text, err := bridge.MetricsText(h, "")
	require.NoError(t, err)
	require.Contains(t, text, `prismq_tasks{status="queued",type="email"} 1`)

	_, err = bridge.Metrics(h, `{"window_ms":10}`)
	require.Equal(t, bridge.InvalidArgument, code(err))
	_, err = bridge.Metrics(h, `{"window":60}`)
	require.Equal(t, bridge.InvalidArgument, code(err), "unknown keys are refused")

	out, err = bridge.Maintain(h, `{"retention_ms":0,"checkpoint":"truncate","integrity":"quick"}`)
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Nil(t, r["retention"], "retention_ms 0 skips retention")
	require.Equal(t, true, r["optimized"], "defaults apply to the keys not given")
	require.Equal(t, "truncate", r["checkpoint"].(map[string]any)["mode"])
	require.Equal(t, true, r["integrity"].(map[string]any)["ok"])
	_, err = bridge.Maintain(h, `{"checkpoint":"later"}`)
	require.Equal(t, bridge.InvalidArgument, code(err))
	require.Equal(t, bridge.InvalidArgument, code(bridge.ScheduleMaintenance(h, `{}`)), "interval_ms is required")
	require.Equal(t, bridge.InvalidArgument, code(bridge.ScheduleMaintenance(h, `{"interval_ms":1000}`)))
	require.NoError(t, bridge.ScheduleMaintenance(h, `{"interval_ms":3600000,"retention_ms":86400000}`))
	require.NoError(t, bridge.ScheduleMaintenance(h, `{"interval_ms":0}`))

	out, err = bridge.Doctor(h, `{"integrity":"quick"}`)
	require.NoError(t, err)
	var d struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Check, Severity, Message, Advice string
		} `json:"findings"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	require.True(t, d.OK)
	require.NotEmpty(t, d.Findings)

	out, err = bridge.Purge(h, `{"statuses":["queued"],"dry_run":true}`)
	require.NoError(t, err)
	require.JSONEq(t, `{"dry_run":true,"matched":1,"affected":0,"sample_ids":[1]}`, out)
	_, err = bridge.Purge(h, `{"statuses":["leased"]}`)
	require.Equal(t, bridge.InvalidArgument, code(err))
	out, err = bridge.Requeue(h, "")
	require.NoError(t, err)
	require.JSONEq(t, `{"dry_run":false,"matched":0,"affected":0,"sample_ids":[]}`, out)
}

func TestBridgeBackupAndRestoreRunAsOperationsWithProgress(t *testing.T) {
	h := openBridge(t, "")
	_, err := bridge.Enqueue(h, `{"type":"job"}`)
	require.NoError(t, err)
	dir := t.TempDir()
	backup := filepath.Join(dir, "b.db")

	op, err := bridge.BackupStart(h, fmt.Sprintf(`{"path":%q,"step_pages":2}`, backup))
	require.NoError(t, err)
	r, err := waitOp(t, op)
	require.NoError(t, err)
	require.Equal(t, "done", r["phase"])
	require.Equal(t, r["pages_total"], r["pages_done"])
	res := r["result"].(map[string]any)
	require.Equal(t, backup, res["path"])
	require.Equal(t, float64(1), res["tasks"])
	require.Equal(t, []any{"ok"}, res["integrity"])
	require.NoError(t, bridge.OpClose(op))
	require.Equal(t, bridge.Closed, code(bridge.OpClose(op)))

	// A second backup to the same file without overwrite fails through pq_op_wait.
	op, err = bridge.BackupStart(h, fmt.Sprintf(`{"path":%q}`, backup))
	require.NoError(t, err)
	_, err = waitOp(t, op)
	require.Equal(t, bridge.InvalidArgument, code(err))
	_, err = bridge.OpWait(op, 0)
	require.Equal(t, bridge.InvalidArgument, code(err), "every later call reports it too")
	require.NoError(t, bridge.OpClose(op))

	info, err := bridge.QueueInfo(h)
	require.NoError(t, err)
	var qi struct {
		Path string `json:"path"`
	}
	require.NoError(t, json.Unmarshal([]byte(info), &qi))
	op, err = bridge.RestoreStart(fmt.Sprintf(`{"backup":%q,"path":%q}`, backup, qi.Path))
	require.NoError(t, err)
	_, err = waitOp(t, op)
	require.Equal(t, bridge.Busy, code(err), "the queue is open")
	require.NoError(t, bridge.OpClose(op))

	require.NoError(t, bridge.Close(h))
	op, err = bridge.RestoreStart(fmt.Sprintf(`{"backup":%q,"path":%q}`, backup, qi.Path))
	require.NoError(t, err)
	r, err = waitOp(t, op)
	require.NoError(t, err)
	require.Equal(t, float64(1), r["result"].(map[string]any)["tasks"])
	require.NoError(t, bridge.OpClose(op))

	_, err = bridge.RestoreStart(`{"path":"x.db"}`)
	require.Equal(t, bridge.InvalidArgument, code(err), "backup is required")
	_, err = bridge.BackupStart(h, `{"path":"x.db"}`)
	require.Equal(t, bridge.Closed, code(err))
}
