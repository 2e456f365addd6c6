package tests_go

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

func TestWorkerTypesRestrictClaims(t *testing.T) {
	h := newHarness(t)
	email := h.enqueue(core.EnqueueParams{Type: "email", Priority: prio(0)})
	report := h.enqueue(core.EnqueueParams{Type: "report", Priority: prio(50)})
	resize := h.enqueue(core.EnqueueParams{Type: "resize", Priority: prio(100)})

	reports := h.worker(core.WorkerConfig{ID: "reports", Types: []string{"report"}})
	require.Equal(t, report.ID, h.claimOne(reports).ID, "a report worker skips the more urgent email")
	require.Empty(t, h.claim(reports, 10), "and never takes another type")

	mixed := h.worker(core.WorkerConfig{ID: "mixed", Types: []string{"resize", "email"}})
	require.Equal(t, []int64{email.ID, resize.ID}, ids(h.claim(mixed, 10)))

	h.enqueue(core.EnqueueParams{Type: "email"})
	any := h.worker(core.WorkerConfig{ID: "any"})
	require.Len(t, h.claim(any, 10), 1, "a worker without types takes any type")
}

func TestRequirementsAgainstCapabilities(t *testing.T) {
	cases := []struct {
		name         string
		requirements string // "" = none
		capabilities string // "" = none
		claimable    bool
	}{
		{"a capability equal to the required value satisfies it", `{"gpu":"a100"}`, `{"gpu":"a100"}`, true},
		{"a capability list containing the required value satisfies it", `{"gpu":"a100"}`, `{"gpu":["t4","a100"]}`, true},
		{"a capability list without the required value does not", `{"gpu":"a100"}`, `{"gpu":["t4","v100"]}`, false},
		{"a different value does not", `{"gpu":"a100"}`, `{"gpu":"t4"}`, false},
		{"a missing key does not", `{"gpu":"a100","region":"eu"}`, `{"gpu":"a100"}`, false},
		{"every key must be satisfied", `{"gpu":"a100","region":"eu"}`, `{"gpu":["a100"],"region":"eu","ram":64}`, true},
		{"numbers compare by value", `{"ram":64}`, `{"ram":64.0}`, true},
		{"booleans compare by value", `{"ssd":true}`, `{"ssd":false}`, false},
		{"objects compare by value", `{"os":{"name":"linux","arch":"amd64"}}`, `{"os":{"arch":"amd64","name":"linux"}}`, true},
		{"a string does not equal a number", `{"ram":"64"}`, `{"ram":64}`, false},
		{"a worker without capabilities never gets a task with requirements", `{"gpu":"a100"}`, "", false},
		{"a worker with empty capabilities never gets a task with requirements", `{"gpu":"a100"}`, `{}`, false},
		{"a task without requirements goes to a worker with capabilities", "", `{"gpu":"a100"}`, true},
		{"a task without requirements goes to a worker without capabilities", "", "", true},
		{"empty requirements count as none", `{}`, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			task := h.enqueue(core.EnqueueParams{Requirements: rawJSON(tc.requirements)})
			w := h.worker(core.WorkerConfig{Capabilities: rawJSON(tc.capabilities)})
			for _, s := range []core.Strategy{core.FIFO, core.LIFO, core.Priority, core.WeightedRandom} {
				require.NoError(t, w.SetStrategy(h.ctx, s))
				got := h.claim(w, 5)
				if !tc.claimable {
					require.Empty(t, got, "strategy %s", s)
					continue
				}
				require.Equal(t, []int64{task.ID}, ids(got), "strategy %s", s)
				require.NoError(t, w.Release(h.ctx, task.ID, got[0].LeaseToken))
			}
		})
	}
}

func TestRequirementsSatisfiedIsTheSpecRule(t *testing.T) {
	caps := map[string]any{"gpu": []any{"t4", "a100"}, "region": "eu"}
	require.True(t, core.RequirementsSatisfied(map[string]any{}, caps))
	require.True(t, core.RequirementsSatisfied(map[string]any{"gpu": "a100", "region": "eu"}, caps))
	require.True(t, core.RequirementsSatisfied(map[string]any{"gpu": []any{"t4", "a100"}}, caps), "the whole list is equal")
	require.False(t, core.RequirementsSatisfied(map[string]any{"gpu": "v100"}, caps))
	require.False(t, core.RequirementsSatisfied(map[string]any{"zone": "a"}, caps))
	require.False(t, core.RequirementsSatisfied(map[string]any{"gpu": "a100"}, nil))
}

func TestDelaysHaveMillisecondPrecision(t *testing.T) {
	for _, s := range []core.Strategy{core.FIFO, core.LIFO, core.Priority, core.WeightedRandom} {
		t.Run("a task delayed by 250ms is not claimable at 249ms and is at 250ms under "+string(s), func(t *testing.T) {
			h := newHarness(t)
			w := h.worker(core.WorkerConfig{Strategy: s})
			task := h.enqueue(core.EnqueueParams{Delay: 250 * time.Millisecond})
			require.Equal(t, clockStart.Add(250*time.Millisecond), task.RunAfter)
			require.Equal(t, task.RunAfter, h.get(task.ID).RunAfter, "stored with millisecond precision")

			require.Empty(t, h.claim(w, 1), "not at +0")
			h.clock.Advance(249 * time.Millisecond)
			require.Empty(t, h.claim(w, 1), "not at +249ms")
			h.clock.Advance(time.Millisecond)
			require.Equal(t, task.ID, h.claimOne(w).ID, "at +250ms")
		})
	}
}

func TestRunAtIsAnAbsoluteEarliestStart(t *testing.T) {
	cases := []struct {
		name    string
		params  core.EnqueueParams
		due     time.Duration // from clockStart
		advance []time.Duration
	}{
		{"a task with run_at 1.5s ahead becomes claimable exactly then",
			core.EnqueueParams{RunAt: clockStart.Add(1500 * time.Millisecond)}, 1500 * time.Millisecond, nil},
		{"run_at wins over delay",
			core.EnqueueParams{RunAt: clockStart.Add(300 * time.Millisecond), Delay: time.Hour}, 300 * time.Millisecond, nil},
		{"a run_at in the past is claimable at once",
			core.EnqueueParams{RunAt: clockStart.Add(-time.Minute)}, -time.Minute, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.worker(core.WorkerConfig{})
			task := h.enqueue(tc.params)
			require.Equal(t, clockStart.Add(tc.due), task.RunAfter)
			if tc.due > 0 {
				h.clock.Advance(tc.due - time.Millisecond)
				require.Empty(t, h.claim(w, 1), "one millisecond early")
				h.clock.Advance(time.Millisecond)
			}
			require.Equal(t, task.ID, h.claimOne(w).ID)
		})
	}
}

func TestADelayedTaskDoesNotBlockTasksBehindIt(t *testing.T) {
	h := newHarness(t)
	later := h.enqueue(core.EnqueueParams{Priority: prio(0), Delay: time.Second})
	now := h.enqueue(core.EnqueueParams{Priority: prio(5)})
	for _, s := range []core.Strategy{core.FIFO, core.Priority, core.WeightedRandom} {
		w := h.worker(core.WorkerConfig{ID: "w-" + string(s), Strategy: s})
		got := h.claimOne(w)
		require.Equal(t, now.ID, got.ID, string(s))
		require.NoError(t, w.Release(h.ctx, got.ID, got.LeaseToken))
	}
	h.clock.Advance(time.Second)
	w := h.worker(core.WorkerConfig{ID: "prio"})
	require.Equal(t, []int64{later.ID, now.ID}, ids(h.claim(w, 5)))
}
