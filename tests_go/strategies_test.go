package tests_go

import (
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// mixedTasks enqueues five tasks whose id order, reverse id order and
// priority order all differ, and returns them in enqueue order.
func mixedTasks(h *harness) []core.Task {
	var out []core.Task
	for _, p := range []int64{50, 10, 50, 0, 10} {
		out = append(out, h.enqueue(core.EnqueueParams{Type: "job", Priority: prio(p)}))
	}
	return out
}

func TestStrategiesClaimInTheirOrder(t *testing.T) {
	// Indexes into mixedTasks: priorities 50, 10, 50, 0, 10.
	cases := []struct {
		name     string
		strategy core.Strategy
		order    []int
	}{
		{"fifo takes the oldest task first", core.FIFO, []int{0, 1, 2, 3, 4}},
		{"lifo takes the newest task first", core.LIFO, []int{4, 3, 2, 1, 0}},
		{"priority takes the lowest number first and the oldest within a priority", core.Priority, []int{3, 1, 4, 0, 2}},
		{"the default strategy is priority", "", []int{3, 1, 4, 0, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" one claim at a time", func(t *testing.T) {
			h := newHarness(t)
			tasks := mixedTasks(h)
			w := h.worker(core.WorkerConfig{Strategy: tc.strategy})
			var got []int64
			for range tasks {
				got = append(got, h.claimOne(w).ID)
			}
			require.Empty(t, h.claim(w, 1), "every task was claimed")
			require.Equal(t, pick(tasks, tc.order), got)
		})
		t.Run(tc.name+" in one claim of many", func(t *testing.T) {
			h := newHarness(t)
			tasks := mixedTasks(h)
			w := h.worker(core.WorkerConfig{Strategy: tc.strategy})
			require.Equal(t, pick(tasks, tc.order[:3]), ids(h.claim(w, 3)))
			require.Equal(t, pick(tasks, tc.order[3:]), ids(h.claim(w, 10)))
		})
	}
}

func pick(tasks []core.Task, idx []int) []int64 {
	out := make([]int64, len(idx))
	for i, j := range idx {
		out[i] = tasks[j].ID
	}
	return out
}

func TestSetStrategyChangesTheOrderOfLaterClaims(t *testing.T) {
	h := newHarness(t)
	tasks := mixedTasks(h) // priorities 50, 10, 50, 0, 10
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})

	require.Equal(t, tasks[0].ID, h.claimOne(w).ID)
	require.NoError(t, w.SetStrategy(h.ctx, core.LIFO))
	require.Equal(t, core.LIFO, w.Strategy())
	require.Equal(t, tasks[4].ID, h.claimOne(w).ID)
	require.NoError(t, w.SetStrategy(h.ctx, "PRIORITY"), "names are case-insensitive")
	require.Equal(t, tasks[3].ID, h.claimOne(w).ID)
	require.NoError(t, w.SetStrategy(h.ctx, core.FIFO))
	require.Equal(t, tasks[1].ID, h.claimOne(w).ID)

	infos, err := h.q.Workers(h.ctx)
	require.NoError(t, err)
	require.Len(t, infos, 1)
	require.Equal(t, core.FIFO, infos[0].Strategy, "the registry shows the strategy in force")
}

// chiSquare returns sum (observed-expected)^2/expected.
func chiSquare(observed []int, expected []float64) float64 {
	var x float64
	for i := range observed {
		d := float64(observed[i]) - expected[i]
		x += d * d / expected[i]
	}
	return x
}

// chiSquareCritical holds the chi-square critical values at p = 0.0001 by
// degrees of freedom: a correct engine fails one mix in ten thousand runs,
// while the errors this test exists for (a first-enqueued task that always
// wins, a wrong weight) give statistics far above these values.
var chiSquareCritical = map[int]float64{1: 15.137, 2: 18.421, 3: 21.108, 4: 23.513}

// level is one priority level of a weighted-random mix.
type level struct {
	priority int64
	n        int
}

// spcProbabilities is the SPEC's formula P(p) = n_p*w(p) / sum_q n_q*w(q), w(p) = 1/(p+1).
func specProbabilities(mix []level) []float64 {
	var total float64
	out := make([]float64, len(mix))
	for i, l := range mix {
		out[i] = float64(l.n) / float64(l.priority+1)
		total += out[i]
	}
	for i := range out {
		out[i] /= total
	}
	return out
}

// TestWeightedRandomFirstClaimFollowsTheSpecFormula measures the level of the
// first claim from a fresh mix. Each trial starts from an empty race: the mix
// is enqueued (interleaved, so that enqueue order favours no level), one task
// is claimed by the weighted worker, and the rest are claimed away by a FIFO
// worker so that the next trial starts empty again. The engine draws from the
// process-wide math/rand/v2 source, so there is no seed; the sample size and
// the p = 0.0001 critical value keep a correct engine passing.
func TestWeightedRandomFirstClaimFollowsTheSpecFormula(t *testing.T) {
	const trials = 300
	cases := []struct {
		name     string
		mix      []level
		separate bool // one Enqueue per task instead of one EnqueueMany
		delayed  bool
	}{
		{"one task at priority 1 against nine at priority 100 enqueued together", []level{{1, 1}, {100, 9}}, false, false},
		{"one task at priority 1 against nine at priority 100 enqueued one by one", []level{{1, 1}, {100, 9}}, true, false},
		{"three levels of equal total weight enqueued one by one", []level{{0, 1}, {1, 2}, {3, 4}}, true, false},
		{"a single task at priority 0 against a single one at priority 9", []level{{0, 1}, {9, 1}}, false, false},
		{"delayed tasks that join the race when they fall due", []level{{1, 1}, {100, 9}}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			weighted := h.worker(core.WorkerConfig{ID: "weighted", Strategy: core.WeightedRandom, Lease: 7 * 24 * time.Hour})
			drain := h.worker(core.WorkerConfig{ID: "drain", Strategy: core.FIFO, Lease: 7 * 24 * time.Hour})
			levelOf := map[int64]int{}
			for i, l := range tc.mix {
				levelOf[l.priority] = i
			}
			params := interleave(tc.mix)
			if tc.delayed {
				for i := range params {
					params[i].Delay = time.Second
				}
			}
			observed := make([]int, len(tc.mix))
			for trial := 0; trial < trials; trial++ {
				var res []core.EnqueueResult
				if tc.separate {
					for _, p := range params {
						r, err := h.q.Enqueue(h.ctx, p)
						require.NoError(t, err)
						res = append(res, r)
					}
				} else {
					var err error
					res, err = h.q.EnqueueMany(h.ctx, params)
					require.NoError(t, err)
				}
				if tc.delayed {
					require.Empty(t, h.claim(weighted, 1), "nothing is due yet")
					h.clock.Advance(time.Second)
				}
				got := h.claimOne(weighted)
				observed[levelOf[got.Priority]]++
				// Within the drawn level the oldest task is taken.
				for _, r := range res {
					if r.Task.Priority == got.Priority {
						require.Equal(t, r.Task.ID, got.ID, "trial %d: the oldest task of the drawn level", trial)
						break
					}
				}
				rest := h.claim(drain, len(params))
				require.Len(t, rest, len(params)-1, "trial %d: the rest drained", trial)
			}
			p := specProbabilities(tc.mix)
			expected := make([]float64, len(p))
			for i := range p {
				expected[i] = p[i] * trials
			}
			x := chiSquare(observed, expected)
			crit := chiSquareCritical[len(tc.mix)-1]
			t.Logf("mix %v: observed %v, expected %v, chi-square %.2f (critical %.3f)", tc.mix, observed, roundAll(expected), x, crit)
			require.Less(t, x, crit, "observed %v, expected %v", observed, roundAll(expected))
		})
	}
}

// interleave spreads the levels of a mix over the enqueue order.
func interleave(mix []level) []core.EnqueueParams {
	left := make([]int, len(mix))
	total := 0
	for i, l := range mix {
		left[i] = l.n
		total += l.n
	}
	var out []core.EnqueueParams
	for len(out) < total {
		for i, l := range mix {
			if left[i] > 0 {
				left[i]--
				out = append(out, core.EnqueueParams{Type: "job", Priority: prio(l.priority)})
			}
		}
	}
	return out
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*10) / 10
	}
	return out
}

// TestWeightedRandomDrainsALevelOldestFirst: whatever levels are drawn, the
// tasks of each level leave in enqueue order.
func TestWeightedRandomDrainsALevelOldestFirst(t *testing.T) {
	h := newHarness(t)
	byLevel := map[int64][]int64{}
	for i := 0; i < 60; i++ {
		p := int64(i % 3 * 5)
		task := h.enqueue(core.EnqueueParams{Priority: prio(p)})
		byLevel[p] = append(byLevel[p], task.ID)
	}
	w := h.worker(core.WorkerConfig{Strategy: core.WeightedRandom})
	claimed := map[int64][]int64{}
	for {
		ts := h.claim(w, 7)
		if len(ts) == 0 {
			break
		}
		for _, task := range ts {
			claimed[task.Priority] = append(claimed[task.Priority], task.ID)
		}
	}
	require.Equal(t, byLevel, claimed)
}

// TestWeightedRandomStarvesNoTask: one task at priority 100 sits in a queue
// that always holds a fresh priority-0 task; at every claim it has about a 1
// in 102 chance, so it must be claimed long before the bound (the chance of
// missing 5000 claims in a row is below e^-45).
func TestWeightedRandomStarvesNoTask(t *testing.T) {
	h := newHarness(t)
	low := h.enqueue(core.EnqueueParams{Type: "job", Priority: prio(100)})
	w := h.worker(core.WorkerConfig{Strategy: core.WeightedRandom, Lease: 7 * 24 * time.Hour})
	const bound = 5000
	for round := 1; round <= bound; round++ {
		h.enqueue(core.EnqueueParams{Type: "job", Priority: prio(0)})
		got := h.claimOne(w)
		if got.ID == low.ID {
			t.Logf("the priority-100 task was claimed at round %d", round)
			return
		}
	}
	t.Fatalf("the priority-100 task was not claimed in %d claims", bound)
}

// TestWeightedRandomRespectsTypesAndRequirements: the weighted race only
// offers a worker the tasks it may run.
func TestWeightedRandomRespectsTypesAndRequirements(t *testing.T) {
	h := newHarness(t)
	var want []int64
	for i := 0; i < 20; i++ {
		h.enqueue(core.EnqueueParams{Type: "other", Priority: prio(0)})
		h.enqueue(core.EnqueueParams{Type: "mine", Priority: prio(0), Requirements: rawJSON(`{"gpu":true}`)})
		want = append(want, h.enqueue(core.EnqueueParams{Type: "mine", Priority: prio(int64(i))}).ID)
	}
	w := h.worker(core.WorkerConfig{Strategy: core.WeightedRandom, Types: []string{"mine"}})
	var got []int64
	for {
		ts := h.claim(w, 3)
		if len(ts) == 0 {
			break
		}
		got = append(got, ids(ts)...)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	require.Equal(t, want, got, fmt.Sprintf("only type mine without requirements (%d tasks)", len(want)))
}
