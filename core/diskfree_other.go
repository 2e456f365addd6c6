//go:build !linux && !darwin && !freebsd && !windows

package core

// diskFree is unknown on this system.
func diskFree(string) (uint64, bool) { return 0, false }
