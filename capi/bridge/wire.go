package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/prismq/queue/core"
)

// wireTask is the Task JSON object of capi/prismq_queue.h.
type wireTask struct {
	ID              int64           `json:"id"`
	Type            string          `json:"type"`
	Priority        int64           `json:"priority"`
	Payload         json.RawMessage `json:"payload"`
	Requirements    json.RawMessage `json:"requirements"`
	Status          core.Status     `json:"status"`
	Attempts        int64           `json:"attempts"`
	MaxAttempts     int64           `json:"max_attempts"`
	RunAfterMs      int64           `json:"run_after_ms"`
	LeaseExpiresMs  *int64          `json:"lease_expires_at_ms"`
	LeaseOwner      *string         `json:"lease_owner"`
	LeaseToken      int64           `json:"lease_token"`
	CreatedAtMs     int64           `json:"created_at_ms"`
	UpdatedAtMs     int64           `json:"updated_at_ms"`
	ClaimedAtMs     *int64          `json:"claimed_at_ms"`
	StartedAtMs     *int64          `json:"started_at_ms"`
	FinishedAtMs    *int64          `json:"finished_at_ms"`
	LastError       *string         `json:"last_error"`
	IdempotencyKey  *string         `json:"idempotency_key"`
	Result          json.RawMessage `json:"result"`
	ProgressPercent *float64        `json:"progress_percent"`
	ProgressCurrent *int64          `json:"progress_current"`
	ProgressTotal   *int64          `json:"progress_total"`
	ProgressMessage *string         `json:"progress_message"`
	CancelRequested bool            `json:"cancel_requested"`
	RetryBaseMs     *int64          `json:"retry_base_ms"`
	RetryCapMs      *int64          `json:"retry_cap_ms"`
}

func ms(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func dur(d time.Duration) *int64 {
	if d <= 0 {
		return nil
	}
	v := d.Milliseconds()
	return &v
}

func toWire(t core.Task) wireTask {
	result := t.Result
	if result == nil {
		result = json.RawMessage("null")
	}
	return wireTask{
		ID: t.ID, Type: t.Type, Priority: t.Priority, Payload: t.Payload, Requirements: t.Requirements,
		Status: t.Status, Attempts: t.Attempts, MaxAttempts: t.MaxAttempts, RunAfterMs: t.RunAfter.UnixMilli(),
		LeaseExpiresMs: ms(t.LeaseExpiresAt), LeaseOwner: str(t.LeaseOwner), LeaseToken: t.LeaseToken,
		CreatedAtMs: t.CreatedAt.UnixMilli(), UpdatedAtMs: t.UpdatedAt.UnixMilli(), ClaimedAtMs: ms(t.ClaimedAt),
		StartedAtMs: ms(t.StartedAt), FinishedAtMs: ms(t.FinishedAt), LastError: str(t.LastError),
		IdempotencyKey: str(t.IdempotencyKey), Result: result,
		ProgressPercent: t.Progress.Percent, ProgressCurrent: t.Progress.Current,
		ProgressTotal: t.Progress.Total, ProgressMessage: t.Progress.Message,
		CancelRequested: t.CancelRequested, RetryBaseMs: dur(t.RetryBase), RetryCapMs: dur(t.RetryCap),
	}
}

func toWireTasks(ts []core.Task) []wireTask {
	out := make([]wireTask, len(ts))
	for i, t := range ts {
		out[i] = toWire(t)
	}
	return out
}

// decode parses a JSON input strictly: valid UTF-8, one value, no unknown
// fields. An empty input leaves v as it is when optional.
func decode(what, s string, v any, optional bool) error {
	if s == "" {
		if optional {
			return nil
		}
		return fmt.Errorf("%w: %s is required", core.ErrInvalidArgument, what)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", core.ErrInvalidArgument, what)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %v", core.ErrInvalidArgument, what, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s: trailing data after the JSON value", core.ErrInvalidArgument, what)
	}
	return nil
}

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode output: %w", err)
	}
	return string(b), nil
}

// enqueueIn is the input object of pq_enqueue.
type enqueueIn struct {
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	Priority       *int64          `json:"priority"`
	DelayMs        int64           `json:"delay_ms"`
	RunAtMs        *int64          `json:"run_at_ms"`
	MaxAttempts    int64           `json:"max_attempts"`
	Requirements   json.RawMessage `json:"requirements"`
	IdempotencyKey *string         `json:"idempotency_key"`
	RetryBaseMs    int64           `json:"retry_base_ms"`
	RetryCapMs     int64           `json:"retry_cap_ms"`
}

func (e enqueueIn) params() (core.EnqueueParams, error) {
	if e.DelayMs < 0 || e.RetryBaseMs < 0 || e.RetryCapMs < 0 {
		return core.EnqueueParams{}, fmt.Errorf("%w: delay_ms, retry_base_ms and retry_cap_ms must be >= 0", core.ErrInvalidArgument)
	}
	p := core.EnqueueParams{
		Type: e.Type, Payload: e.Payload, Priority: e.Priority, Delay: time.Duration(e.DelayMs) * time.Millisecond,
		MaxAttempts: e.MaxAttempts, Requirements: e.Requirements,
		RetryBase: time.Duration(e.RetryBaseMs) * time.Millisecond, RetryCap: time.Duration(e.RetryCapMs) * time.Millisecond,
	}
	if e.RunAtMs != nil {
		p.RunAt = time.UnixMilli(*e.RunAtMs)
	}
	if e.IdempotencyKey != nil {
		p.IdempotencyKey = *e.IdempotencyKey
		if p.IdempotencyKey == "" {
			return p, fmt.Errorf("%w: idempotency_key must not be empty", core.ErrInvalidArgument)
		}
	}
	if e.MaxAttempts < 0 {
		return p, fmt.Errorf("%w: max_attempts must be >= 1", core.ErrInvalidArgument)
	}
	return p, nil
}

type enqueueOut struct {
	Task    wireTask `json:"task"`
	Created bool     `json:"created"`
}

type leaseOut struct {
	LeaseExpiresAtMs int64 `json:"lease_expires_at_ms"`
	CancelRequested  bool  `json:"cancel_requested"`
}

type wireWorker struct {
	ID           string          `json:"worker_id"`
	Host         string          `json:"host"`
	PID          int64           `json:"pid"`
	Strategy     core.Strategy   `json:"strategy"`
	Capabilities json.RawMessage `json:"capabilities"`
	Types        []string        `json:"types"`
	StartedAtMs  int64           `json:"started_at_ms"`
	HeartbeatMs  int64           `json:"heartbeat_at_ms"`
	StoppedAtMs  *int64          `json:"stopped_at_ms"`
	Running      int64           `json:"running"`
}

type wireLog struct {
	ID      int64           `json:"id"`
	TaskID  int64           `json:"task_id"`
	AtMs    int64           `json:"at_ms"`
	Level   string          `json:"level"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details"`
}
