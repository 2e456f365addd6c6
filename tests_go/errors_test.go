package tests_go

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

const badUTF8 = "bad \xff\xfe utf-8"

func TestBadEnqueueInputGetsTypedErrors(t *testing.T) {
	h := newHarness(t, func(o *core.Options) { o.MaxPayloadBytes = 256 })
	big := `{"x":"` + strings.Repeat("a", 300) + `"}`
	cases := []struct {
		name   string
		params core.EnqueueParams
		want   error
	}{
		{"an empty type", core.EnqueueParams{Type: ""}, core.ErrInvalidArgument},
		{"a type longer than 200 bytes", core.EnqueueParams{Type: strings.Repeat("t", 201)}, core.ErrInvalidArgument},
		{"a type that is not UTF-8", core.EnqueueParams{Type: badUTF8}, core.ErrInvalidArgument},
		{"a payload that is an array", core.EnqueueParams{Type: "job", Payload: rawJSON(`[1,2]`)}, core.ErrInvalidArgument},
		{"a payload that is a string", core.EnqueueParams{Type: "job", Payload: rawJSON(`"text"`)}, core.ErrInvalidArgument},
		{"a payload that is a number", core.EnqueueParams{Type: "job", Payload: rawJSON(`12`)}, core.ErrInvalidArgument},
		{"a payload that is invalid JSON", core.EnqueueParams{Type: "job", Payload: rawJSON(`{"a":`)}, core.ErrInvalidArgument},
		{"a payload with trailing data", core.EnqueueParams{Type: "job", Payload: rawJSON(`{} {}`)}, core.ErrInvalidArgument},
		{"a payload with invalid UTF-8 in a string", core.EnqueueParams{Type: "job", Payload: rawJSON(`{"a":"` + badUTF8 + `"}`)}, core.ErrInvalidArgument},
		{"a payload over the size limit", core.EnqueueParams{Type: "job", Payload: rawJSON(big)}, core.ErrPayloadTooLarge},
		{"requirements that are not an object", core.EnqueueParams{Type: "job", Requirements: rawJSON(`["gpu"]`)}, core.ErrInvalidArgument},
		{"requirements over the size limit", core.EnqueueParams{Type: "job", Requirements: rawJSON(big)}, core.ErrPayloadTooLarge},
		{"a negative priority", core.EnqueueParams{Type: "job", Priority: prio(-1)}, core.ErrInvalidArgument},
		{"a priority above the maximum", core.EnqueueParams{Type: "job", Priority: prio(core.MaxPriority + 1)}, core.ErrInvalidArgument},
		{"a negative delay", core.EnqueueParams{Type: "job", Delay: -time.Millisecond}, core.ErrInvalidArgument},
		{"max attempts -1", core.EnqueueParams{Type: "job", MaxAttempts: -1}, core.ErrInvalidArgument},
		{"max attempts 10000", core.EnqueueParams{Type: "job", MaxAttempts: 10000}, core.ErrInvalidArgument},
		{"a negative retry base", core.EnqueueParams{Type: "job", RetryBase: -time.Second}, core.ErrInvalidArgument},
		{"a negative retry cap", core.EnqueueParams{Type: "job", RetryCap: -time.Second}, core.ErrInvalidArgument},
		{"an idempotency key longer than 500 bytes", core.EnqueueParams{Type: "job", IdempotencyKey: strings.Repeat("k", 501)}, core.ErrInvalidArgument},
		{"an idempotency key that is not UTF-8", core.EnqueueParams{Type: "job", IdempotencyKey: badUTF8}, core.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := h.q.Enqueue(h.ctx, tc.params)
			require.ErrorIs(t, err, tc.want)
			_, err = h.q.EnqueueMany(h.ctx, []core.EnqueueParams{{Type: "fine"}, tc.params})
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), "task 1", "a batch error names the item")
		})
	}
	stats, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 0, stats.Total, "a batch with one bad item adds nothing")
}

func TestEnqueueDefaultsAndLimitsThatAreAccepted(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		params core.EnqueueParams
		check  func(t *testing.T, task core.Task)
	}{
		{"max attempts 0 means the default", core.EnqueueParams{MaxAttempts: 0}, func(t *testing.T, task core.Task) {
			require.Equal(t, core.DefaultMaxAttempts, task.MaxAttempts)
		}},
		{"no priority means the default", core.EnqueueParams{}, func(t *testing.T, task core.Task) {
			require.Equal(t, core.DefaultPriority, task.Priority)
		}},
		{"a missing payload is an empty object", core.EnqueueParams{}, func(t *testing.T, task core.Task) {
			require.JSONEq(t, `{}`, string(task.Payload))
			require.JSONEq(t, `{}`, string(task.Requirements))
		}},
		{"a null payload is an empty object", core.EnqueueParams{Payload: rawJSON(`null`)}, func(t *testing.T, task core.Task) {
			require.JSONEq(t, `{}`, string(task.Payload))
		}},
		{"a 200-byte type is accepted", core.EnqueueParams{Type: strings.Repeat("t", 200)}, func(t *testing.T, task core.Task) {
			require.Len(t, task.Type, 200)
		}},
		{"priority 0 and max attempts 1000 are accepted", core.EnqueueParams{Priority: prio(0), MaxAttempts: 1000}, func(t *testing.T, task core.Task) {
			require.EqualValues(t, 0, task.Priority)
			require.EqualValues(t, 1000, task.MaxAttempts)
		}},
		{"unicode text is kept", core.EnqueueParams{Type: "čeština-😀", Payload: rawJSON(`{"msg":"žluťoučký kůň"}`)}, func(t *testing.T, task core.Task) {
			require.Equal(t, "čeština-😀", task.Type)
			require.JSONEq(t, `{"msg":"žluťoučký kůň"}`, string(task.Payload))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := h.enqueue(tc.params)
			tc.check(t, task)
			tc.check(t, h.get(task.ID))
		})
	}
}

func TestBadWorkerInputGetsTypedErrors(t *testing.T) {
	h := newHarness(t, func(o *core.Options) { o.MaxPayloadBytes = 256 })
	h.enqueue(core.EnqueueParams{})
	w := h.worker(core.WorkerConfig{ID: "good"})
	task := h.claimOne(w)
	id, tok := task.ID, task.LeaseToken

	registers := []struct {
		name string
		cfg  core.WorkerConfig
	}{
		{"an empty worker id", core.WorkerConfig{}},
		{"a worker id that is not UTF-8", core.WorkerConfig{ID: badUTF8}},
		{"an unknown strategy", core.WorkerConfig{ID: "x", Strategy: "random"}},
		{"capabilities that are not an object", core.WorkerConfig{ID: "x", Capabilities: rawJSON(`[1]`)}},
		{"capabilities that are invalid JSON", core.WorkerConfig{ID: "x", Capabilities: rawJSON(`{`)}},
		{"a lease under 100ms", core.WorkerConfig{ID: "x", Lease: 50 * time.Millisecond}},
		{"a negative lease", core.WorkerConfig{ID: "x", Lease: -time.Second}},
		{"a lease over 7 days", core.WorkerConfig{ID: "x", Lease: 8 * 24 * time.Hour}},
		{"an empty type name", core.WorkerConfig{ID: "x", Types: []string{"job", ""}}},
		{"a retry policy with jitter above 1", core.WorkerConfig{ID: "x", Retry: &core.RetryPolicy{Jitter: 1.5}}},
	}
	for _, tc := range registers {
		t.Run("registering with "+tc.name+" is refused", func(t *testing.T) {
			cfg := tc.cfg
			if cfg.ID == "" && tc.name != "an empty worker id" {
				cfg.ID = "x"
			}
			_, err := h.q.RegisterWorker(h.ctx, cfg)
			require.ErrorIs(t, err, core.ErrInvalidArgument)
		})
	}

	calls := []struct {
		name string
		call func() error
		want error
	}{
		{"set strategy to an unknown name", func() error { return w.SetStrategy(h.ctx, "fastest") }, core.ErrInvalidArgument},
		{"claim of 0 tasks", func() error { _, err := w.Claim(h.ctx, 0, 0); return err }, core.ErrInvalidArgument},
		{"claim of 1001 tasks", func() error { _, err := w.Claim(h.ctx, 1001, 0); return err }, core.ErrInvalidArgument},
		{"claim with a negative wait", func() error { _, err := w.Claim(h.ctx, 1, -time.Second); return err }, core.ErrInvalidArgument},
		{"progress of 150 percent", func() error {
			_, err := w.Progress(h.ctx, id, tok, core.Progress{Percent: f64(150)})
			return err
		}, core.ErrInvalidArgument},
		{"progress of -1 percent", func() error {
			_, err := w.Progress(h.ctx, id, tok, core.Progress{Percent: f64(-1)})
			return err
		}, core.ErrInvalidArgument},
		{"progress of NaN percent", func() error {
			_, err := w.Progress(h.ctx, id, tok, core.Progress{Percent: f64(math.NaN())})
			return err
		}, core.ErrInvalidArgument},
		{"a progress message that is not UTF-8", func() error {
			_, err := w.Progress(h.ctx, id, tok, core.Progress{Message: ptrStr(badUTF8)})
			return err
		}, core.ErrInvalidArgument},
		{"a failure message that is not UTF-8", func() error { _, err := w.Fail(h.ctx, id, tok, badUTF8, true); return err }, core.ErrInvalidArgument},
		{"a result that is invalid JSON", func() error { return w.Complete(h.ctx, id, tok, rawJSON(`{"a"`)) }, core.ErrInvalidArgument},
		{"a result with invalid UTF-8", func() error { return w.Complete(h.ctx, id, tok, rawJSON(`"`+badUTF8+`"`)) }, core.ErrInvalidArgument},
		{"a result over the size limit", func() error {
			return w.Complete(h.ctx, id, tok, rawJSON(`"`+strings.Repeat("r", 300)+`"`))
		}, core.ErrPayloadTooLarge},
		{"an ack with an unknown op", func() error {
			errs, err := w.AckMany(h.ctx, []core.Ack{{ID: id, Token: tok, Op: "explode"}})
			require.NoError(t, err)
			return errs[0]
		}, core.ErrInvalidArgument},
		{"complete of an unknown task", func() error { return w.Complete(h.ctx, 777, 1, nil) }, core.ErrNotFound},
		{"renew of an unknown task", func() error { _, err := w.Renew(h.ctx, 777, 1, 0); return err }, core.ErrNotFound},
		{"fail of an unknown task", func() error { _, err := w.Fail(h.ctx, 777, 1, "x", true); return err }, core.ErrNotFound},
		{"release of an unknown task", func() error { return w.Release(h.ctx, 777, 1) }, core.ErrNotFound},
		{"ack cancel of an unknown task", func() error { return w.AckCancel(h.ctx, 777, 1) }, core.ErrNotFound},
	}
	for _, tc := range calls {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			require.ErrorIs(t, tc.call(), tc.want)
		})
	}
	after := h.get(id)
	require.Equal(t, core.StatusLeased, after.Status, "no refused call changed the task")
	require.Equal(t, core.Progress{}, after.Progress)
	require.Equal(t, core.Priority, w.Strategy())
}

func TestBadQueueInputGetsTypedErrors(t *testing.T) {
	h := newHarness(t)
	task := h.enqueue(core.EnqueueParams{})
	calls := []struct {
		name string
		call func() error
		want error
	}{
		{"get of an unknown task", func() error { _, err := h.q.Get(h.ctx, 12345); return err }, core.ErrNotFound},
		{"get of task 0", func() error { _, err := h.q.Get(h.ctx, 0); return err }, core.ErrNotFound},
		{"get of a negative id", func() error { _, err := h.q.Get(h.ctx, -3); return err }, core.ErrNotFound},
		{"cancel of an unknown task", func() error { _, err := h.q.Cancel(h.ctx, 12345); return err }, core.ErrNotFound},
		{"retry of an unknown task", func() error { _, err := h.q.Retry(h.ctx, 12345); return err }, core.ErrNotFound},
		{"a log line for an unknown task", func() error { return h.q.AppendLog(h.ctx, 12345, "info", "x", nil) }, core.ErrNotFound},
		{"the logs of an unknown task", func() error { _, err := h.q.Logs(h.ctx, 12345, 0); return err }, core.ErrNotFound},
		{"a log level that does not exist", func() error { return h.q.AppendLog(h.ctx, task.ID, "fatal", "x", nil) }, core.ErrInvalidArgument},
		{"a log message that is not UTF-8", func() error { return h.q.AppendLog(h.ctx, task.ID, "info", badUTF8, nil) }, core.ErrInvalidArgument},
		{"log details that are invalid JSON", func() error { return h.q.AppendLog(h.ctx, task.ID, "info", "x", rawJSON(`{`)) }, core.ErrInvalidArgument},
		{"a list limit of -1", func() error { _, err := h.q.List(h.ctx, core.ListFilter{Limit: -1}); return err }, core.ErrInvalidArgument},
		{"a list limit of 10001", func() error { _, err := h.q.List(h.ctx, core.ListFilter{Limit: 10001}); return err }, core.ErrInvalidArgument},
		{"a list of an unknown status", func() error {
			_, err := h.q.List(h.ctx, core.ListFilter{Statuses: []core.Status{"running"}})
			return err
		}, core.ErrInvalidArgument},
		{"a list cursor below 0", func() error { _, err := h.q.List(h.ctx, core.ListFilter{AfterID: -1}); return err }, core.ErrInvalidArgument},
	}
	for _, tc := range calls {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			require.ErrorIs(t, tc.call(), tc.want)
		})
	}
	logs, err := h.q.Logs(h.ctx, task.ID, 0)
	require.NoError(t, err)
	require.Empty(t, logs)
}

func TestParseStrategyAcceptsTheFourNamesOnly(t *testing.T) {
	for in, want := range map[string]core.Strategy{
		"fifo": core.FIFO, "LIFO": core.LIFO, " Priority ": core.Priority, "weighted_random": core.WeightedRandom,
		"weighted-random": core.WeightedRandom, "": core.DefaultStrategy,
	} {
		got, err := core.ParseStrategy(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"random", "fifo2", "round_robin"} {
		_, err := core.ParseStrategy(bad)
		require.ErrorIs(t, err, core.ErrInvalidArgument, bad)
	}
}

func TestBadOptionsGetTypedErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.db")
	cases := []struct {
		name string
		opts core.Options
		want error
	}{
		{"a URI instead of a path", core.Options{Path: "file:" + path}, core.ErrInvalidArgument},
		{"an in-memory database", core.Options{Path: ":memory:"}, core.ErrInvalidArgument},
		{"a path with a NUL byte", core.Options{Path: path + "\x00x"}, core.ErrInvalidArgument},
		{"a directory as the path", core.Options{Path: dir}, core.ErrInvalidArgument},
		{"a pragma name with SQL in it", core.Options{Path: path, Pragmas: map[string]string{"cache_size; DROP TABLE tasks": "1"}}, core.ErrInvalidArgument},
		{"a pragma value with SQL in it", core.Options{Path: path, Pragmas: map[string]string{"cache_size": "1); DROP TABLE tasks; --"}}, core.ErrInvalidArgument},
		{"a negative payload limit", core.Options{Path: path, MaxPayloadBytes: -1}, core.ErrInvalidArgument},
		{"a negative default lease", core.Options{Path: path, DefaultLease: -time.Second}, core.ErrInvalidArgument},
		{"a negative sweep interval", core.Options{Path: path, SweepInterval: -time.Second}, core.ErrInvalidArgument},
		{"a retry jitter above 1", core.Options{Path: path, Retry: core.RetryPolicy{Jitter: 2}}, core.ErrInvalidArgument},
		{"a negative retry base", core.Options{Path: path, Retry: core.RetryPolicy{Base: -time.Second}}, core.ErrInvalidArgument},
		{"a UNC network path", core.Options{Path: "//prismq-no-such-host/share/q.db"}, core.ErrNetworkPath},
		{"a Windows UNC network path", core.Options{Path: `\\prismq-no-such-host\share\q.db`}, core.ErrNetworkPath},
	}
	for _, tc := range cases {
		t.Run("opening with "+tc.name+" is refused", func(t *testing.T) {
			q, err := core.Open(context.Background(), tc.opts)
			if q != nil {
				_ = q.Close()
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
	_, err := os.Stat("/prismq-no-such-host")
	require.True(t, os.IsNotExist(err), "a refused network path left nothing behind")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "no refused open created a file")
}

func TestEveryCallAfterCloseGetsErrClosed(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	h.enqueue(core.EnqueueParams{})
	task := h.claimOne(w)
	id, tok := task.ID, task.LeaseToken
	require.NoError(t, h.q.Close())

	ctx := h.ctx
	calls := map[string]func() error{
		"enqueue":      func() error { _, err := h.q.Enqueue(ctx, core.EnqueueParams{Type: "job"}); return err },
		"enqueue many": func() error { _, err := h.q.EnqueueMany(ctx, []core.EnqueueParams{{Type: "job"}}); return err },
		"get":          func() error { _, err := h.q.Get(ctx, id); return err },
		"list":         func() error { _, err := h.q.List(ctx, core.ListFilter{}); return err },
		"cancel":       func() error { _, err := h.q.Cancel(ctx, id); return err },
		"retry":        func() error { _, err := h.q.Retry(ctx, id); return err },
		"stats":        func() error { _, err := h.q.Stats(ctx); return err },
		"append log":   func() error { return h.q.AppendLog(ctx, id, "info", "x", nil) },
		"logs":         func() error { _, err := h.q.Logs(ctx, id, 0); return err },
		"workers":      func() error { _, err := h.q.Workers(ctx); return err },
		"sweep":        func() error { _, err := h.q.Sweep(ctx); return err },
		"schema":       func() error { _, err := h.q.SchemaVersion(ctx); return err },
		"register":     func() error { _, err := h.q.RegisterWorker(ctx, core.WorkerConfig{ID: "late"}); return err },
		"claim":        func() error { _, err := w.Claim(ctx, 1, 0); return err },
		"claim waiting": func() error {
			_, err := w.Claim(ctx, 1, time.Second)
			return err
		},
		"heartbeat":  func() error { _, err := w.Heartbeat(ctx); return err },
		"complete":   func() error { return w.Complete(ctx, id, tok, nil) },
		"fail":       func() error { _, err := w.Fail(ctx, id, tok, "x", true); return err },
		"renew":      func() error { _, err := w.Renew(ctx, id, tok, 0); return err },
		"progress":   func() error { _, err := w.Progress(ctx, id, tok, core.Progress{}); return err },
		"ack cancel": func() error { return w.AckCancel(ctx, id, tok) },
		"release":    func() error { return w.Release(ctx, id, tok) },
		"ack many": func() error {
			_, err := w.AckMany(ctx, []core.Ack{{ID: id, Token: tok, Op: core.AckComplete}})
			return err
		},
		"set strategy": func() error { return w.SetStrategy(ctx, core.FIFO) },
		"worker close": func() error { return w.Close(ctx) },
		"queue close":  func() error { return h.q.Close() },
	}
	for name, call := range calls {
		require.ErrorIs(t, call(), core.ErrClosed, name)
	}
}

func TestClosingAWorkerTwiceGetsErrClosed(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	require.NoError(t, w.Close(h.ctx))
	require.ErrorIs(t, w.Close(h.ctx), core.ErrClosed)
	_, err := w.Claim(h.ctx, 1, 0)
	require.ErrorIs(t, err, core.ErrClosed)
	infos, err := h.q.Workers(h.ctx)
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.False(t, infos[0].StoppedAt.IsZero(), "the registry records the stop")
}
