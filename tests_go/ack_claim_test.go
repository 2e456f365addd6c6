package tests_go

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

func TestAckAndClaimSettlesAndClaimsInOneCall(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 10; i++ {
		h.enqueue(core.EnqueueParams{})
	}
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})

	// No acks: a plain claim without waiting.
	errs, first, err := w.AckAndClaim(h.ctx, nil, 3)
	require.NoError(t, err)
	require.Empty(t, errs)
	require.Equal(t, []int64{1, 2, 3}, ids(first))

	// Settle the first batch (one ack with a stale token) and take the next.
	acks := []core.Ack{
		{ID: 1, Token: first[0].LeaseToken, Op: core.AckComplete},
		{ID: 2, Token: first[1].LeaseToken, Op: core.AckFail, Error: "boom", Retryable: false},
		{ID: 3, Token: first[2].LeaseToken + 1, Op: core.AckComplete},
	}
	errs, next, err := w.AckAndClaim(h.ctx, acks, 4)
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.ErrorIs(t, errs[2], core.ErrLeaseLost)
	require.Equal(t, []int64{4, 5, 6, 7}, ids(next))
	require.Equal(t, core.StatusCompleted, h.get(1).Status)
	require.Equal(t, core.StatusFailed, h.get(2).Status)
	require.Equal(t, core.StatusLeased, h.get(3).Status, "a stale ack changes nothing")

	// A released task is due at once and may come straight back.
	_, again, err := w.AckAndClaim(h.ctx, []core.Ack{{ID: 3, Token: first[2].LeaseToken, Op: core.AckRelease}}, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 8, 9, 10}, ids(again))

	// Nothing left: an empty, non-nil claim.
	_, none, err := w.AckAndClaim(h.ctx, nil, 5)
	require.NoError(t, err)
	require.NotNil(t, none)
	require.Empty(t, none)
	requireDepthMatchesTable(t, h, "ack and claim")
}

func TestAckAndClaimRejectsBadInputWithoutSettlingAnything(t *testing.T) {
	h := newHarness(t)
	h.enqueue(core.EnqueueParams{})
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})
	task := h.claimOne(w)
	ack := []core.Ack{{ID: task.ID, Token: task.LeaseToken, Op: core.AckComplete}}
	for _, max := range []int{0, -1, core.MaxClaim + 1} {
		_, _, err := w.AckAndClaim(h.ctx, ack, max)
		require.ErrorIs(t, err, core.ErrInvalidArgument, "max %d", max)
	}
	require.Equal(t, core.StatusLeased, h.get(task.ID).Status)

	errs, _, err := w.AckAndClaim(h.ctx, []core.Ack{{ID: task.ID, Token: task.LeaseToken, Op: "bogus"}}, 1)
	require.NoError(t, err)
	require.ErrorIs(t, errs[0], core.ErrInvalidArgument)

	require.NoError(t, h.q.Close())
	_, _, err = w.AckAndClaim(h.ctx, ack, 1)
	require.ErrorIs(t, err, core.ErrClosed)
}
