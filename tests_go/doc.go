// Package tests_go is the black-box test suite of the PrismQ Task Queue
// engine (package core) and of the pure-Go half of its C ABI (package
// bridge). Every test opens its own database under t.TempDir(), time-dependent
// behaviour runs on an injected fake clock, and the multi-process cases start
// real operating-system processes (the test binary re-executed in a helper
// role, see process_test.go).
package tests_go
