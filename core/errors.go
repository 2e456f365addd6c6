package core

import (
	"errors"
	"fmt"
)

// Errors returned by the engine. Compare with errors.Is; the returned errors
// wrap these with details.
var (
	// ErrInvalidArgument: a parameter has the wrong type, range or format.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrPayloadTooLarge: a payload, requirements or result exceeds Options.MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrNotFound: no task with that id.
	ErrNotFound = errors.New("task not found")
	// ErrLeaseLost: the fencing token no longer holds the task's lease.
	ErrLeaseLost = errors.New("lease lost")
	// ErrInvalidState: the task's status does not allow the operation.
	ErrInvalidState = errors.New("invalid state")
	// ErrClosed: the queue or worker is closed.
	ErrClosed = errors.New("queue closed")
	// ErrBusy: the database stayed locked by another process past the busy timeout.
	ErrBusy = errors.New("database busy")
	// ErrNetworkPath: the database path is on a network share and AllowNetworkPath is false.
	ErrNetworkPath = errors.New("database path is on a network share")
	// ErrSchema: the database schema is newer than this library, or unreadable.
	ErrSchema = errors.New("unsupported database schema")
	// ErrIO: the database file or its folder cannot be created, opened, read or written.
	ErrIO = errors.New("database i/o error")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
