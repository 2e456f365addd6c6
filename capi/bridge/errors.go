// Package bridge is the pure-Go half of the C ABI in capi/: the handle table,
// the JSON wire format and the mapping of engine errors to status codes.
// capi/main.go only converts C types and calls it, so Go tests reach every
// behaviour of the ABI through this package.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/prismq/queue/core"
)

// Status is a pq_status code of capi/prismq_queue.h.
type Status int32

// The status codes; keep in step with capi/prismq_queue.h.
const (
	OK              Status = 0
	InvalidArgument Status = 1
	NotFound        Status = 2
	LeaseLost       Status = 3
	Closed          Status = 4
	Busy            Status = 5
	InvalidState    Status = 6
	PayloadTooLarge Status = 7
	NetworkPath     Status = 8
	Schema          Status = 9
	IO              Status = 10
	Internal        Status = 11
)

// ErrUnknownHandle: the handle is 0, was never issued or is closed.
var ErrUnknownHandle = fmt.Errorf("%w: unknown or closed handle", core.ErrClosed)

// CodeOf maps an error to its status code. Order matters: the more specific
// sentinel first (a payload error is also an invalid argument).
func CodeOf(err error) Status {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, core.ErrPayloadTooLarge):
		return PayloadTooLarge
	case errors.Is(err, core.ErrInvalidArgument):
		return InvalidArgument
	case errors.Is(err, core.ErrNotFound):
		return NotFound
	case errors.Is(err, core.ErrLeaseLost):
		return LeaseLost
	case errors.Is(err, core.ErrClosed):
		return Closed
	case errors.Is(err, core.ErrBusy):
		return Busy
	case errors.Is(err, core.ErrInvalidState):
		return InvalidState
	case errors.Is(err, core.ErrNetworkPath):
		return NetworkPath
	case errors.Is(err, core.ErrSchema):
		return Schema
	case errors.Is(err, core.ErrIO):
		return IO
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Busy
	}
	return Internal
}

// Guard runs fn, turning a panic into an Internal error so that no panic
// crosses the C boundary. It returns fn's output, its status and message.
func Guard(fn func() (string, error)) (out string, code Status, msg string) {
	defer func() {
		if r := recover(); r != nil {
			out, code = "", Internal
			msg = fmt.Sprintf("internal error (please report): %v\n%s", r, debug.Stack())
		}
	}()
	out, err := fn()
	if err != nil {
		return "", CodeOf(err), err.Error()
	}
	return out, OK, ""
}
