package core

import (
	"math"
	"math/rand/v2"
	"strings"
)

// Strategy decides which eligible task a claim takes.
type Strategy string

// The four scheduling strategies.
const (
	// FIFO takes the oldest eligible task.
	FIFO Strategy = "fifo"
	// LIFO takes the newest eligible task.
	LIFO Strategy = "lifo"
	// Priority takes the lowest priority number, oldest first within a priority.
	Priority Strategy = "priority"
	// WeightedRandom draws a priority level p with probability
	// n_p*w(p) / sum_q n_q*w(q), w(p) = 1/(p+1), and takes the oldest task of
	// that level. Nothing starves.
	WeightedRandom Strategy = "weighted_random"
)

// DefaultStrategy is PRIORITY.
const DefaultStrategy = Priority

// ParseStrategy accepts the strategy names case-insensitively ("" gives the default).
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(strings.ToLower(strings.TrimSpace(s))) {
	case "":
		return DefaultStrategy, nil
	case FIFO:
		return FIFO, nil
	case LIFO:
		return LIFO, nil
	case Priority:
		return Priority, nil
	case WeightedRandom, "weighted-random", "weighted":
		return WeightedRandom, nil
	}
	return "", invalidf("unknown scheduling strategy %q (want fifo, lifo, priority or weighted_random)", s)
}

// Weighted random selection without scanning the queue.
//
// Each queued, eligible task carries a key drawn from an exponential
// distribution with rate w = 1/(priority+1), offset by the race clock when the
// key is drawn (wrKey). The clock (table wr_clock) is the key of the latest
// weighted claim. Taking the task with the smallest key (one index probe)
// picks each task with probability w_i / sum_j w_j: the minimum of
// independent exponentials is won by i with that probability, and by
// memorylessness the keys left behind are again the clock plus independent
// exponentials, which is what a task entering the race gets. Summing over
// the tasks of one level gives the level probability of the SPEC,
// n_p*w(p) / sum_q n_q*w(q). The claim then takes the oldest task of the drawn
// level and hands the drawn task the claimed task's key; both have the same
// rate, so the race is unchanged. Tasks enter the race (get a key) in the
// transaction of a weighted claim once they are due (promotion): new tasks,
// requeued ones and delayed ones alike, so a queue that no weighted worker
// serves never maintains the race's index. Requeued and delayed tasks wait in
// tasks_queued_delayed; tasks due when enqueued (wr_fresh) are found by id
// past wr_clock.mark through the FIFO index, so an enqueue writes one index
// page fewer.

// wrWeight is the weight of a priority level.
func wrWeight(priority int64) float64 {
	return 1 / (float64(priority) + 1)
}

// wrKey draws the key of a task of the given priority, offset by base.
func wrKey(base float64, priority int64) float64 {
	u := 1 - rand.Float64() // (0, 1]
	return base + (-math.Log(u))/wrWeight(priority)
}
