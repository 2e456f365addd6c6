package core

import (
	"encoding/json"
	"time"
)

// Status is a task's lifecycle state.
type Status string

// Task statuses. queued -> leased -> completed | failed | cancelled; a
// retryable failure or an expired lease goes back to queued.
const (
	StatusQueued    Status = "queued"
	StatusLeased    Status = "leased"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusQueued, StatusLeased, StatusCompleted, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Terminal reports whether s is completed, failed or cancelled.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Task is one unit of work as stored.
type Task struct {
	ID              int64
	Type            string
	Priority        int64
	Payload         json.RawMessage // JSON object
	Requirements    json.RawMessage // JSON object, "{}" when none
	Status          Status
	Attempts        int64
	MaxAttempts     int64
	RunAfter        time.Time
	LeaseExpiresAt  time.Time // zero when not leased
	LeaseOwner      string
	LeaseToken      int64 // fencing token of the current (or last) lease
	CreatedAt       time.Time
	UpdatedAt       time.Time
	ClaimedAt       time.Time // last claim
	StartedAt       time.Time // first claim
	FinishedAt      time.Time // reached a terminal status
	LastError       string
	IdempotencyKey  string
	Result          json.RawMessage // nil when none
	Progress        Progress
	CancelRequested bool
	RetryBase       time.Duration // per-task backoff override, 0 = queue default
	RetryCap        time.Duration // per-task backoff cap override, 0 = queue default
}

// Progress is what a worker reports about a running task. Nil fields are unset.
type Progress struct {
	Percent *float64
	Current *int64
	Total   *int64
	Message *string
}

// EnqueueParams describes a task to enqueue.
type EnqueueParams struct {
	// Type names the task kind; required, at most 200 bytes.
	Type string
	// Payload is a JSON object; nil or empty means {}.
	Payload json.RawMessage
	// Priority: lower runs first. Nil means DefaultPriority (100).
	Priority *int64
	// Delay postpones the first run by this much (>= 0).
	Delay time.Duration
	// RunAt, when set, is the earliest start time; it wins over Delay.
	RunAt time.Time
	// MaxAttempts bounds claims of the task; 0 means DefaultMaxAttempts (5).
	MaxAttempts int64
	// Requirements is a JSON object the worker's capabilities must satisfy.
	Requirements json.RawMessage
	// IdempotencyKey, when set, makes the enqueue return the existing task
	// with that key instead of creating a second one.
	IdempotencyKey string
	// RetryBase and RetryCap override the queue's backoff for this task.
	RetryBase time.Duration
	RetryCap  time.Duration
}

// Defaults for EnqueueParams.
const (
	DefaultPriority    int64 = 100
	DefaultMaxAttempts int64 = 5
	maxTypeLen               = 200
	maxKeyLen                = 500
)

// EnqueueResult is the outcome of one enqueue.
type EnqueueResult struct {
	Task Task
	// Created is false when the idempotency key already existed and Task is the existing task.
	Created bool
}

// ListFilter selects tasks for Queue.List. Zero values mean "any".
type ListFilter struct {
	Statuses   []Status
	Types      []string
	Limit      int   // default 100, at most 10000
	AfterID    int64 // cursor: ids greater than this (less than, when Descending)
	Descending bool
}

// ListPage is one page of Queue.List.
type ListPage struct {
	Tasks []Task
	// NextAfterID is the cursor of the next page, 0 when this page is the last.
	NextAfterID int64
}

// Stats counts tasks.
type Stats struct {
	Total        int64
	ByStatus     map[Status]int64
	ByType       map[string]map[Status]int64
	OldestQueued time.Time // created_at of the oldest queued task, zero when none
	Workers      int64     // registered workers not stopped
}

// LogEntry is one line of a task's log.
type LogEntry struct {
	ID      int64
	TaskID  int64
	At      time.Time
	Level   string
	Message string
	Details json.RawMessage // nil when none
}

// SweepResult counts what one sweep did to expired leases.
type SweepResult struct {
	Requeued  int64
	Failed    int64
	Cancelled int64
}

// LeaseInfo is returned by Renew and Progress.
type LeaseInfo struct {
	ExpiresAt       time.Time
	CancelRequested bool
}

// HeartbeatResult is returned by Worker.Heartbeat.
type HeartbeatResult struct {
	Renewed         int64
	CancelRequested []int64
}

// WorkerInfo is a row of the worker registry.
type WorkerInfo struct {
	ID           string
	Host         string
	PID          int64
	Strategy     Strategy
	Capabilities json.RawMessage
	Types        []string
	StartedAt    time.Time
	HeartbeatAt  time.Time
	StoppedAt    time.Time // zero while running
	Running      int64     // tasks it holds leased
}
