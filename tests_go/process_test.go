package tests_go

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// The multi-process tests re-execute this test binary in a helper role
// (helper_process_test.go). The roles below take their parameters from the
// environment; the interactive ones print a line on stdout and wait for "go"
// on stdin, so that the parent can start the processes' work at once.
const (
	envDB       = "PRISMQ_TEST_HELPER_DB"
	envWorker   = "PRISMQ_TEST_HELPER_WORKER"
	envOut      = "PRISMQ_TEST_HELPER_OUT"
	envStrategy = "PRISMQ_TEST_HELPER_STRATEGY"
)

func init() {
	registerHelperRole("claimer", helperClaimer)
	registerHelperRole("holder", helperHolder)
	registerHelperRole("idempotent-enqueuer", helperIdempotentEnqueuer)
	registerHelperRole("enqueue-one", helperEnqueueOne)
}

// waitForGo blocks until the parent writes a line to stdin.
func waitForGo() error {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return fmt.Errorf("wait for go: %w", err)
	}
	if strings.TrimSpace(line) != "go" {
		return fmt.Errorf("wait for go: got %q", line)
	}
	return nil
}

func helperOpen(opts core.Options) (*core.Queue, error) {
	opts.Path = os.Getenv(envDB)
	opts.DisableSweeper = true
	return core.Open(context.Background(), opts)
}

// claimBatch is how many tasks a claimer claims and acknowledges at once.
const claimBatch = 100

// helperClaimer claims in batches of claimBatch and completes each batch with one
// AckMany until nothing is queued; it writes the ids it completed to envOut.
func helperClaimer() error {
	ctx := context.Background()
	q, err := helperOpen(core.Options{})
	if err != nil {
		return err
	}
	defer q.Close()
	id := os.Getenv(envWorker)
	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: id, Strategy: core.Strategy(os.Getenv(envStrategy)), Lease: 5 * time.Minute})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	if err := waitForGo(); err != nil {
		return err
	}
	result := json.RawMessage(fmt.Sprintf(`{"worker":%q}`, id))
	var done []string
	for {
		tasks, err := w.Claim(ctx, claimBatch, 100*time.Millisecond)
		if err != nil {
			return err
		}
		if len(tasks) == 0 {
			st, err := q.Stats(ctx)
			if err != nil {
				return err
			}
			if st.ByStatus[core.StatusQueued] == 0 {
				break
			}
			continue
		}
		acks := make([]core.Ack, len(tasks))
		for i, t := range tasks {
			if t.Attempts != 1 || t.LeaseOwner != id {
				return fmt.Errorf("task %d claimed with attempts %d by %q", t.ID, t.Attempts, t.LeaseOwner)
			}
			acks[i] = core.Ack{ID: t.ID, Token: t.LeaseToken, Op: core.AckComplete, Result: result}
		}
		errs, err := w.AckMany(ctx, acks)
		if err != nil {
			return err
		}
		for i, e := range errs {
			if e != nil {
				return fmt.Errorf("complete %d: %w", tasks[i].ID, e)
			}
			done = append(done, strconv.FormatInt(tasks[i].ID, 10))
		}
	}
	if err := w.Close(ctx); err != nil {
		return err
	}
	return os.WriteFile(os.Getenv(envOut), []byte(strings.Join(done, "\n")), 0o644)
}

// helperHolder claims up to 5 tasks with a 1 s lease, prints their ids and
// then waits to be killed.
func helperHolder() error {
	ctx := context.Background()
	q, err := helperOpen(core.Options{})
	if err != nil {
		return err
	}
	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: os.Getenv(envWorker), Lease: time.Second})
	if err != nil {
		return err
	}
	tasks, err := w.Claim(ctx, 5, 0)
	if err != nil {
		return err
	}
	ids := make([]string, len(tasks))
	for i, t := range tasks {
		ids[i] = strconv.FormatInt(t.ID, 10)
	}
	fmt.Println("claimed " + strings.Join(ids, ","))
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed
	return fmt.Errorf("stdin closed before the holder was killed")
}

// helperIdempotentEnqueuer opens the (possibly new) database after the go
// signal, enqueues the shared key and prints what it got.
func helperIdempotentEnqueuer() error {
	fmt.Println("ready")
	if err := waitForGo(); err != nil {
		return err
	}
	q, err := helperOpen(core.Options{})
	if err != nil {
		return err
	}
	defer q.Close()
	r, err := q.Enqueue(context.Background(), core.EnqueueParams{Type: "job", IdempotencyKey: "one-key-for-all",
		Payload: json.RawMessage(fmt.Sprintf(`{"by":%q}`, os.Getenv(envWorker)))})
	if err != nil {
		return err
	}
	fmt.Printf("created=%t id=%d\n", r.Created, r.Task.ID)
	return nil
}

// helperEnqueueOne enqueues one task of type "cross-process".
func helperEnqueueOne() error {
	q, err := helperOpen(core.Options{})
	if err != nil {
		return err
	}
	defer q.Close()
	_, err = q.Enqueue(context.Background(), core.EnqueueParams{Type: "cross-process"})
	return err
}

// child is a helper process started by a test.
type child struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

// syncBuffer is a bytes.Buffer that the exec package may write while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChild runs this test binary in a helper role; extraEnv adds "NAME=value" entries.
func startChild(t *testing.T, role, db, worker, out string, extraEnv ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), helperRoleEnv+"="+role, envDB+"="+db, envWorker+"="+worker, envOut+"="+out)
	cmd.Env = append(cmd.Env, extraEnv...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &child{t: t, name: worker, cmd: cmd, stdin: stdin, lines: make(chan string, 16),
		stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
			<-c.exited
		}
	})
	return c
}

// line waits for the child's next stdout line.
func (c *child) line(timeout time.Duration) string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		require.True(c.t, ok, "%s exited early: %s", c.name, c.stderr.String())
		return l
	case <-time.After(timeout):
		c.t.Fatalf("%s printed nothing within %v; stderr: %s", c.name, timeout, c.stderr.String())
		return ""
	}
}

func (c *child) send(s string) {
	c.t.Helper()
	_, err := io.WriteString(c.stdin, s+"\n")
	require.NoError(c.t, err)
}

// wait waits for the child to exit and requires a clean exit.
func (c *child) wait(timeout time.Duration) {
	c.t.Helper()
	for range c.lines { // drain
	}
	select {
	case <-c.exited:
	case <-time.After(timeout):
		c.t.Fatalf("%s did not exit within %v; stderr: %s", c.name, timeout, c.stderr.String())
	}
	require.NoError(c.t, c.err, "%s failed; stderr: %s", c.name, c.stderr.String())
	require.Empty(c.t, strings.TrimSpace(c.stderr.String()), "%s wrote to stderr", c.name)
}

func TestFourProcessesCompleteTwentyThousandTasksExactlyOnce(t *testing.T) {
	const tasks, procs = 20_000, 4
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "shared.db")
	begin := time.Now()
	q, err := core.Open(ctx, core.Options{Path: db, DisableSweeper: true})
	require.NoError(t, err)
	batch := make([]core.EnqueueParams, 0, 1000)
	for i := 0; i < tasks; i++ {
		batch = append(batch, core.EnqueueParams{Type: "job", Priority: prio(int64(i % 10)), Payload: rawJSON(fmt.Sprintf(`{"i":%d}`, i))})
		if len(batch) == cap(batch) {
			_, err := q.EnqueueMany(ctx, batch)
			require.NoError(t, err)
			batch = batch[:0]
		}
	}
	require.NoError(t, q.Close())
	t.Logf("enqueued %d tasks in %v", tasks, time.Since(begin))

	// Each process claims under another strategy, so that every claim path
	// competes with the others for the same rows.
	strategies := []core.Strategy{core.FIFO, core.LIFO, core.Priority, core.WeightedRandom}
	children := make([]*child, procs)
	for i := range children {
		name := fmt.Sprintf("proc-%d", i)
		children[i] = startChild(t, "claimer", db, name, filepath.Join(dir, name+".ids"),
			envStrategy+"="+string(strategies[i%len(strategies)]))
	}
	for _, c := range children {
		require.Equal(t, "ready", c.line(60*time.Second))
	}
	t.Logf("children ready after %v", time.Since(begin))
	start := time.Now()
	for _, c := range children {
		c.send("go")
	}
	for _, c := range children {
		c.wait(150 * time.Second)
	}
	t.Logf("%d processes completed %d tasks in %v", procs, tasks, time.Since(start))

	seen := map[int64]string{}
	perWorker := map[string]int{}
	for i := range children {
		name := fmt.Sprintf("proc-%d", i)
		b, err := os.ReadFile(filepath.Join(dir, name+".ids"))
		require.NoError(t, err)
		for _, f := range strings.Fields(string(b)) {
			id, err := strconv.ParseInt(f, 10, 64)
			require.NoError(t, err)
			prev, dup := seen[id]
			require.False(t, dup, "task %d completed by %s and %s", id, prev, name)
			seen[id] = name
			perWorker[name]++
		}
	}
	t.Logf("completed per process: %v", perWorker)
	require.Len(t, seen, tasks, "every task completed by some process")
	busy := 0
	for _, n := range perWorker {
		if n > 0 {
			busy++
		}
	}
	require.GreaterOrEqual(t, busy, 2, "the processes really competed")

	q, err = core.Open(ctx, core.Options{Path: db, DisableSweeper: true})
	require.NoError(t, err)
	defer q.Close()
	stats, err := q.Stats(ctx)
	require.NoError(t, err)
	require.EqualValues(t, tasks, stats.ByStatus[core.StatusCompleted])
	require.EqualValues(t, tasks, stats.Total)
	var after int64
	for {
		page, err := q.List(ctx, core.ListFilter{Limit: 10_000, AfterID: after})
		require.NoError(t, err)
		for _, task := range page.Tasks {
			require.EqualValues(t, 1, task.Attempts, "task %d", task.ID)
			require.Equal(t, core.StatusCompleted, task.Status)
			var res struct{ Worker string }
			require.NoError(t, json.Unmarshal(task.Result, &res))
			require.Equal(t, seen[task.ID], res.Worker, "task %d: the result names the process that completed it", task.ID)
		}
		if page.NextAfterID == 0 {
			break
		}
		after = page.NextAfterID
	}
}

func TestAKilledWorkersTasksAreRetriedByAnother(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is a Unix signal")
	}
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "kill.db")
	q, err := core.Open(ctx, core.Options{Path: db, SweepInterval: 50 * time.Millisecond,
		Retry: core.RetryPolicy{Base: 10 * time.Millisecond, Cap: 50 * time.Millisecond}})
	require.NoError(t, err)
	defer q.Close()
	for i := 0; i < 5; i++ {
		_, err := q.Enqueue(ctx, core.EnqueueParams{Type: "job"})
		require.NoError(t, err)
	}

	holder := startChild(t, "holder", db, "doomed", "")
	line := holder.line(60 * time.Second)
	require.True(t, strings.HasPrefix(line, "claimed "), line)
	var held []int64
	for _, f := range strings.Split(strings.TrimPrefix(line, "claimed "), ",") {
		id, err := strconv.ParseInt(f, 10, 64)
		require.NoError(t, err)
		held = append(held, id)
	}
	require.Len(t, held, 5)
	for _, id := range held {
		task, err := q.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StatusLeased, task.Status)
		require.Equal(t, "doomed", task.LeaseOwner)
	}

	require.NoError(t, holder.cmd.Process.Kill()) // SIGKILL: no cleanup runs
	<-holder.exited
	require.Error(t, holder.err, "the holder was killed")

	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "survivor"})
	require.NoError(t, err)
	var got []core.Task
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(held) && time.Now().Before(deadline) {
		ts, err := w.Claim(ctx, 5, time.Until(deadline))
		require.NoError(t, err)
		got = append(got, ts...)
	}
	require.Len(t, got, len(held), "the sweeper requeued every task of the killed worker")
	for _, task := range got {
		require.Contains(t, held, task.ID)
		require.EqualValues(t, 2, task.Attempts, "the killed attempt counted")
		require.Contains(t, task.LastError, "doomed")
		require.NoError(t, w.Complete(ctx, task.ID, task.LeaseToken, nil))
	}
	for _, id := range held {
		task, err := q.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StatusCompleted, task.Status)
		require.EqualValues(t, 2, task.Attempts)
	}
}

func TestFourProcessesEnqueueingOneKeyOnANewFileCreateOneTask(t *testing.T) {
	const procs = 4
	db := filepath.Join(t.TempDir(), "new", "idem.db")
	children := make([]*child, procs)
	for i := range children {
		children[i] = startChild(t, "idempotent-enqueuer", db, fmt.Sprintf("proc-%d", i), "")
	}
	for _, c := range children {
		require.Equal(t, "ready", c.line(60*time.Second))
	}
	for _, c := range children {
		c.send("go")
	}
	var created int
	var taskIDs []string
	for _, c := range children {
		l := c.line(60 * time.Second)
		var ok bool
		var id int64
		_, err := fmt.Sscanf(l, "created=%t id=%d", &ok, &id)
		require.NoError(t, err, l)
		if ok {
			created++
		}
		taskIDs = append(taskIDs, strconv.FormatInt(id, 10))
		c.wait(60 * time.Second)
	}
	require.Equal(t, 1, created, "exactly one process created the task")
	sort.Strings(taskIDs)
	require.Equal(t, taskIDs[0], taskIDs[procs-1], "all got the same task: %v", taskIDs)

	q, err := core.Open(context.Background(), core.Options{Path: db, DisableSweeper: true})
	require.NoError(t, err)
	defer q.Close()
	stats, err := q.Stats(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, stats.Total)
}

// TestConcurrentClaimsInOneProcessNeverShareATask: eight goroutines, each
// with its own worker and a different strategy mix, claim from one queue
// until it is empty; no task is handed out twice.
func TestConcurrentClaimsInOneProcessNeverShareATask(t *testing.T) {
	const tasks, goroutines = 2000, 8
	h := newHarness(t)
	ps := make([]core.EnqueueParams, tasks)
	for i := range ps {
		ps[i] = core.EnqueueParams{Type: "job", Priority: prio(int64(i % 7))}
	}
	_, err := h.q.EnqueueMany(h.ctx, ps)
	require.NoError(t, err)
	strategies := []core.Strategy{core.FIFO, core.LIFO, core.Priority, core.WeightedRandom}
	claimed := make([][]int64, goroutines)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		w := h.worker(core.WorkerConfig{ID: fmt.Sprintf("g%d", g), Strategy: strategies[g%len(strategies)]})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ts, err := w.Claim(h.ctx, 1+g%3*10, 0)
				if err != nil {
					errs[g] = err
					return
				}
				if len(ts) == 0 {
					return
				}
				for _, task := range ts {
					claimed[g] = append(claimed[g], task.ID)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[int64]int{}
	for g := range claimed {
		require.NoError(t, errs[g])
		for _, id := range claimed[g] {
			prev, dup := seen[id]
			require.False(t, dup, "task %d claimed by g%d and g%d", id, prev, g)
			seen[id] = g
		}
	}
	require.Len(t, seen, tasks)
}
