package tests_go

// Multi-process tests and benchmarks re-execute this test binary in a helper
// role: TestMain sees the role in the environment and runs it instead of the
// tests. A role is a function registered with registerHelperRole (usually in
// an init of the file that uses it); it reads its parameters from the
// environment, writes its report to stdout, and its error makes the process
// exit with status 1.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// helperRoleEnv names the role a re-executed test binary plays.
const helperRoleEnv = "PRISMQ_TEST_HELPER_ROLE"

var helperRoles = map[string]func() error{}

// registerHelperRole makes fn runnable as role name in a helper process.
// It panics on a duplicate name, which is a programming error caught at start.
func registerHelperRole(name string, fn func() error) {
	if _, dup := helperRoles[name]; dup {
		panic("helper role registered twice: " + name)
	}
	helperRoles[name] = fn
}

func TestMain(m *testing.M) {
	if role, ok := os.LookupEnv(helperRoleEnv); ok {
		os.Exit(runHelperRole(role))
	}
	os.Exit(m.Run())
}

// runHelperRole runs one role and returns the process exit status.
func runHelperRole(role string) int {
	fn, ok := helperRoles[role]
	if !ok {
		names := make([]string, 0, len(helperRoles))
		for n := range helperRoles {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "unknown helper role %q (known: %s)\n", role, strings.Join(names, ", "))
		return 2
	}
	if err := fn(); err != nil {
		fmt.Fprintf(os.Stderr, "helper role %s: %v\n", role, err)
		return 1
	}
	return 0
}

// helperEnv returns the value of a required environment variable of a role.
func helperEnv(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	return v, nil
}

// helperProcess is a started helper process; Wait returns its stdout.
type helperProcess struct {
	role   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
}

// startHelper re-executes the test binary in role with extra environment
// variables ("NAME=value"). The child runs no tests even if the role were
// ignored (-test.run matches nothing).
func startHelper(ctx context.Context, tb testing.TB, role string, env ...string) *helperProcess {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatalf("find test binary: %v", err)
	}
	p := &helperProcess{role: role}
	p.cmd = exec.CommandContext(ctx, exe, "-test.run=^$", "-test.bench=^$")
	p.cmd.Env = append(append(os.Environ(), helperRoleEnv+"="+role), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start helper %s: %v", role, err)
	}
	return p
}

// Wait waits for the process and returns its stdout; a non-zero exit is an
// error that carries the child's stderr.
func (p *helperProcess) Wait() (string, error) {
	if err := p.cmd.Wait(); err != nil {
		return p.stdout.String(), fmt.Errorf("helper %s: %w; stderr: %s", p.role, err, strings.TrimSpace(p.stderr.String()))
	}
	return p.stdout.String(), nil
}
