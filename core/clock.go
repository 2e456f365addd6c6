package core

import "time"

// Clock tells the engine the current time. Tests inject a fake one so that
// delays, leases and backoff need no sleeps.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the wall clock; it is the default Options.Clock.
var SystemClock Clock = systemClock{}

// toMillis converts a time to the stored representation: integer
// milliseconds since the Unix epoch, UTC. The zero time maps to 0.
func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis converts a stored time back; it returns UTC.
func fromMillis(ms int64) time.Time {
	return time.UnixMilli(ms).UTC()
}

// fromNullMillis converts a nullable stored time; nil stays the zero time.
func fromNullMillis(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return fromMillis(*ms)
}
