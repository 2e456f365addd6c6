// Command peers benchmarks the PrismQ engine (github.com/prismq/queue/core)
// side by side with goqite (maragu.dev/goqite) and River on SQLite
// (github.com/riverqueue/river with riverdriver/riversqlite), all on
// modernc.org/sqlite, and prints one JSON object per measurement on stdout
// (progress goes to stderr). bench/run_all.py runs it and writes
// BENCHMARKS.md; see that file for what each number means.
//
//	go run . -goqite-schema "$(go list -m -f '{{.Dir}}' maragu.dev/goqite)/schema_sqlite.sql" [-quick]
//
// Workloads: enqueue_single, enqueue_batch, claim_depth, e2e, latency, idle,
// disk. Multi-process workloads start this binary again with -mode child.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sizes of one run.
type sizes struct {
	reps          int
	enqueueN      []int
	batchSizes    []int
	batchTotal    int
	depths        []int
	claimOps      int
	e2eTasks      int
	procs         []int
	latencySample int
	idle          time.Duration
	diskTasks     int
}

var (
	full = sizes{reps: 3, enqueueN: []int{1_000, 5_000}, batchSizes: []int{10, 100, 1_000}, batchTotal: 10_000,
		depths: []int{1_000, 100_000, 1_000_000}, claimOps: 3_000, e2eTasks: 5_000, procs: []int{1, 2, 4, 8},
		latencySample: 200, idle: 5 * time.Second, diskTasks: 10_000}
	quick = sizes{reps: 1, enqueueN: []int{1_000}, batchSizes: []int{100}, batchTotal: 5_000,
		depths: []int{1_000, 100_000}, claimOps: 1_000, e2eTasks: 2_000, procs: []int{1, 4},
		latencySample: 50, idle: 2 * time.Second, diskTasks: 2_000}
)

const warmup = 200

// timeCap stops a timed loop that has not finished its operations.
const timeCap = 15 * time.Second

// record is one line of output.
type record struct {
	Level       string             `json:"level"`
	Workload    string             `json:"workload"`
	Queue       string             `json:"queue"`
	Params      map[string]int     `json:"params"`
	Rep         int                `json:"rep"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Unsupported string             `json:"unsupported,omitempty"`
	Error       string             `json:"error,omitempty"`
}

var out = json.NewEncoder(os.Stdout)

func emit(r record) {
	r.Level = "go"
	if err := out.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "write result:", err)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[go %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func main() {
	mode := flag.String("mode", "bench", "bench; version (print module and SQLite versions as JSON); child (internal)")
	queues := flag.String("queues", strings.Join(queueNames, ","), "comma-separated queues")
	workloads := flag.String("workloads", "enqueue_single,enqueue_batch,claim_depth,e2e,latency,idle,disk", "comma-separated workloads")
	isQuick := flag.Bool("quick", false, "small sizes, one repetition")
	reps := flag.Int("reps", 0, "repetitions (default 3, quick 1)")
	dir := flag.String("dir", "", "directory for the databases (default a temporary one)")
	queue := flag.String("queue", "", "child: queue")
	db := flag.String("db", "", "child: database path")
	childKind := flag.String("child", "work", "child: work, latency or idle")
	idleFor := flag.Duration("idle-for", 0, "child idle: how long to wait")
	flag.StringVar(&goqiteSchemaPath, "goqite-schema", "", "goqite's schema_sqlite.sql")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *mode == "version" {
		if err := printVersions(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "versions:", err)
			os.Exit(1)
		}
		return
	}
	if *mode == "child" {
		if err := runChild(ctx, *queue, *db, *childKind, *idleFor); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	sz := full
	if *isQuick {
		sz = quick
	}
	if *reps > 0 {
		sz.reps = *reps
	}
	base := *dir
	if base == "" {
		d, err := os.MkdirTemp("", "prismq-peers-go-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.RemoveAll(d)
		base = d
	}
	b := &bench{ctx: ctx, dir: base, sz: sz, queues: strings.Split(*queues, ",")}
	for _, w := range strings.Split(*workloads, ",") {
		if ctx.Err() != nil {
			break
		}
		b.run(w)
	}
}

type bench struct {
	ctx    context.Context
	dir    string
	sz     sizes
	queues []string
	seq    int
	// repFrom and repTo bound the repetitions the current call runs.
	repFrom, repTo int
}

// path returns a fresh database path.
func (b *bench) path(name string) string {
	b.seq++
	return filepath.Join(b.dir, fmt.Sprintf("%03d-%s.db", b.seq, name))
}

func (b *bench) run(workload string) {
	fns := map[string]func(q string){
		"enqueue_single": b.enqueueSingle, "enqueue_batch": b.enqueueBatch, "claim_depth": b.claimDepth,
		"e2e": b.e2e, "latency": b.latency, "idle": b.idle, "disk": b.disk,
	}
	fn, ok := fns[workload]
	if !ok {
		logf("unknown workload %q", workload)
		return
	}
	// Cheap workloads run their repetitions round-robin over the queues
	// (rep 1 of every queue, then rep 2, ...) so that a change of the
	// machine's load hits every queue alike; the others run queue by queue.
	rounds, per := 1, b.sz.reps
	if workload == "enqueue_single" || workload == "enqueue_batch" || workload == "e2e" {
		rounds, per = b.sz.reps, 1
	}
	for round := 0; round < rounds; round++ {
		b.repFrom, b.repTo = round*per, round*per+per
		for _, q := range b.queues {
			// The batch variant differs from prismq only in how it claims
			// (claim_depth measures both on one database).
			if q == "prismq-batch" && workload != "e2e" {
				continue
			}
			logf("%s %s (round %d/%d)", workload, q, round+1, rounds)
			fn(q)
		}
	}
}

func (b *bench) fail(workload, q string, params map[string]int, err error) {
	logf("%s %s %v: %v", workload, q, params, err)
	r := record{Workload: workload, Queue: q, Params: params}
	if errors.Is(err, errUnsupported) {
		r.Unsupported = err.Error()
	} else {
		r.Error = err.Error()
	}
	emit(r)
}

// ---------------------------------------------------------------- enqueue

func (b *bench) enqueueSingle(q string) {
	for _, n := range b.sz.enqueueN {
		params := map[string]int{"n": n}
		for rep := b.repFrom; rep < b.repTo; rep++ {
			a, err := openAdapter(b.ctx, q, b.path(q))
			if err != nil {
				b.fail("enqueue_single", q, params, err)
				return
			}
			for i := 0; i < warmup; i++ {
				if err = a.enqueue(b.ctx, payload); err != nil {
					break
				}
			}
			lat := make([]time.Duration, 0, n)
			start := time.Now()
			for i := 0; i < n && err == nil && time.Since(start) < timeCap; i++ {
				t := time.Now()
				err = a.enqueue(b.ctx, payload)
				lat = append(lat, time.Since(t))
			}
			elapsed := time.Since(start)
			_ = a.close()
			if err != nil {
				b.fail("enqueue_single", q, params, err)
				return
			}
			m := map[string]float64{"tasks_per_s": float64(len(lat)) / elapsed.Seconds(),
				"p50_us": pct(lat, 0.50), "p99_us": pct(lat, 0.99)}
			if len(lat) < n {
				m["capped_ops"] = float64(len(lat))
			}
			emit(record{Workload: "enqueue_single", Queue: q, Params: params, Rep: rep, Metrics: m})
		}
	}
}

func (b *bench) enqueueBatch(q string) {
	for _, size := range b.sz.batchSizes {
		params := map[string]int{"batch": size, "tasks": b.sz.batchTotal}
		bodies := make([][]byte, size)
		for i := range bodies {
			bodies[i] = payload
		}
		for rep := b.repFrom; rep < b.repTo; rep++ {
			a, err := openAdapter(b.ctx, q, b.path(q))
			if err != nil {
				b.fail("enqueue_batch", q, params, err)
				return
			}
			err = a.enqueueBatch(b.ctx, bodies) // warm-up
			calls := b.sz.batchTotal / size
			lat := make([]time.Duration, 0, calls)
			start := time.Now()
			for i := 0; i < calls && err == nil && time.Since(start) < timeCap; i++ {
				t := time.Now()
				err = a.enqueueBatch(b.ctx, bodies)
				lat = append(lat, time.Since(t))
			}
			elapsed := time.Since(start)
			_ = a.close()
			if err != nil {
				b.fail("enqueue_batch", q, params, err)
				return
			}
			m := map[string]float64{"tasks_per_s": float64(len(lat)*size) / elapsed.Seconds(),
				"call_p50_us": pct(lat, 0.50)}
			if len(lat) < calls {
				m["capped_ops"] = float64(len(lat) * size)
			}
			emit(record{Workload: "enqueue_batch", Queue: q, Params: params, Rep: rep, Metrics: m})
		}
	}
}

// ---------------------------------------------------------------- claim at depth

// claimDepth fills a queue to depth (plus what the repetitions consume),
// then each repetition claims and completes claimOps tasks in one goroutine.
// Our two claim variants (one task per call, batches of claimBatch) run one
// after the other on the same database.
func (b *bench) claimDepth(q string) {
	variants := 1
	if q == "prismq" {
		variants = 2
	}
	for _, depth := range b.sz.depths {
		params := map[string]int{"depth": depth, "ops": b.sz.claimOps}
		path := b.path(q)
		a, err := openAdapter(b.ctx, q, path)
		if err != nil {
			b.fail("claim_depth", q, params, err)
			return
		}
		t := time.Now()
		// Enough for every repetition and warm-up, plus one more run's worth:
		// River's client keeps working jobs for a moment after each stop.
		if err := a.fill(b.ctx, depth+variants*((b.sz.reps+1)*(b.sz.claimOps+warmup)+claimBatch)); err != nil {
			_ = a.close()
			b.fail("claim_depth", q, params, err)
			return
		}
		logf("  filled %d in %v", depth, time.Since(t).Round(time.Millisecond))
		if r, ok := a.(*riverQ); ok {
			b.claimDepthRiver(r, path, params)
			continue
		}
		single := func() (int, error) {
			ok, err := a.claimComplete(b.ctx)
			if !ok && err == nil {
				err = errors.New("queue ran empty")
			}
			return 1, err
		}
		err = b.claimLoop(q, params, single)
		if p, ok := a.(*prismq); ok && err == nil {
			p.batch = claimBatch
			err = b.claimLoop("prismq-batch", params, func() (int, error) { return p.claimCompleteBatch(b.ctx) })
		}
		_ = a.close()
		_ = os.Remove(path)
		_ = os.Remove(path + "-wal")
		if err != nil {
			b.fail("claim_depth", q, params, err)
		}
	}
}

// claimLoop warms up with 200 tasks, then times reps runs of claimOps tasks
// (each stopped after timeCap) and emits them as queue q.
func (b *bench) claimLoop(q string, params map[string]int, one func() (int, error)) error {
	for done := 0; done < warmup; {
		k, err := one()
		if err != nil {
			return err
		}
		done += k
	}
	for rep := 0; rep < b.sz.reps; rep++ {
		lat := make([]time.Duration, 0, b.sz.claimOps)
		start := time.Now()
		done := 0
		for done < b.sz.claimOps && time.Since(start) < timeCap {
			t := time.Now()
			k, err := one()
			if err != nil {
				return err
			}
			lat = append(lat, time.Since(t))
			done += k
		}
		m := map[string]float64{"tasks_per_s": float64(done) / time.Since(start).Seconds(),
			"call_p50_us": pct(lat, 0.50), "call_p99_us": pct(lat, 0.99)}
		if done < b.sz.claimOps {
			m["capped_ops"] = float64(done)
		}
		emit(record{Workload: "claim_depth", Queue: q, Params: params, Rep: rep, Metrics: m})
	}
	return nil
}

// claimDepthRiver times River's own client working claimOps jobs: River
// has no public claim call. The clock runs from the warm-up's last
// completion to the claimOps-th completion after it.
func (b *bench) claimDepthRiver(r *riverQ, path string, params map[string]int) {
	defer func() { _ = r.close(); _ = os.Remove(path); _ = os.Remove(path + "-wal") }()
	for rep := 0; rep < b.sz.reps; rep++ {
		var mu sync.Mutex
		count := 0
		var start, end time.Time
		finished := make(chan struct{})
		target := warmup + b.sz.claimOps
		ctx, cancel := context.WithCancel(b.ctx)
		errc := make(chan error, 1)
		go func() {
			errc <- r.work(ctx, func([]byte) {}, func(k int) {
				mu.Lock()
				defer mu.Unlock()
				count += k
				if count >= warmup && start.IsZero() {
					start = time.Now()
				}
				if count >= target && end.IsZero() {
					end = time.Now()
					close(finished)
				}
			})
		}()
		var err error
		select {
		case <-finished:
		case err = <-errc:
		case <-time.After(2 * time.Minute):
			err = errors.New("timed out")
		}
		cancel()
		if werr := <-errc; err == nil {
			err = werr
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			b.fail("claim_depth", "river", params, err)
			return
		}
		emit(record{Workload: "claim_depth", Queue: "river", Params: params, Rep: rep, Metrics: map[string]float64{
			"tasks_per_s": float64(b.sz.claimOps) / end.Sub(start).Seconds()}})
	}
}

// ---------------------------------------------------------------- processes

// child is one worker process started by the parent.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func (b *bench) startChildren(q, path, kind string, n int, extra ...string) ([]*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cs []*child
	for i := 0; i < n; i++ {
		args := append([]string{"-mode", "child", "-queue", q, "-db", path, "-child", kind,
			"-goqite-schema", goqiteSchemaPath}, extra...)
		cmd := exec.Command(exe, args...)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return cs, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return cs, err
		}
		if err := cmd.Start(); err != nil {
			return cs, err
		}
		c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
			close(c.lines)
		}()
		cs = append(cs, c)
	}
	for _, c := range cs { // every child has opened the database
		select {
		case l, ok := <-c.lines:
			if !ok || l != "ready" {
				return cs, fmt.Errorf("child did not start (%q)", l)
			}
		case <-time.After(time.Minute):
			return cs, errors.New("child start timed out")
		}
	}
	return cs, nil
}

func stopChildren(cs []*child) {
	for _, c := range cs {
		_ = c.stdin.Close()
	}
	for _, c := range cs {
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
}

// e2e: P worker processes wait on an empty queue; the parent enqueues
// e2eTasks in batches of 100 while they claim and complete. The clock runs
// from the first enqueue to the last completion a worker reports.
func (b *bench) e2e(q string) {
	for _, procs := range b.sz.procs {
		params := map[string]int{"procs": procs, "tasks": b.sz.e2eTasks}
		for rep := b.repFrom; rep < b.repTo; rep++ {
			m, err := b.e2eOnce(q, procs)
			if err != nil {
				b.fail("e2e", q, params, err)
				return
			}
			emit(record{Workload: "e2e", Queue: q, Params: params, Rep: rep, Metrics: m})
		}
	}
}

func (b *bench) e2eOnce(q string, procs int) (map[string]float64, error) {
	path := b.path(q)
	defer func() { _ = os.Remove(path); _ = os.Remove(path + "-wal") }()
	a, err := openAdapter(b.ctx, q, path) // creates the schema
	if err != nil {
		return nil, err
	}
	defer a.close()
	cs, err := b.startChildren(q, path, "work", procs)
	defer stopChildren(cs)
	if err != nil {
		return nil, err
	}
	total := b.sz.e2eTasks
	var mu sync.Mutex
	count := 0
	var last int64
	finished := make(chan struct{})
	for _, c := range cs {
		go func() {
			for l := range c.lines {
				f := strings.Fields(l)
				if len(f) != 3 || f[0] != "d" {
					continue
				}
				k, _ := strconv.Atoi(f[1])
				ts, _ := strconv.ParseInt(f[2], 10, 64)
				mu.Lock()
				count += k
				last = max(last, ts)
				if count >= total && count-k < total {
					close(finished)
				}
				mu.Unlock()
			}
		}()
	}
	bodies := make([][]byte, 100)
	for i := range bodies {
		bodies[i] = payload
	}
	start := time.Now()
	for sent := 0; sent < total; sent += len(bodies) {
		if err := a.enqueueBatch(b.ctx, bodies[:min(len(bodies), total-sent)]); err != nil {
			return nil, err
		}
	}
	produced := time.Since(start)
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		return nil, errors.New("timed out waiting for completions")
	}
	mu.Lock()
	elapsed := time.Unix(0, last).Sub(start)
	got := count
	mu.Unlock()
	return map[string]float64{"tasks_per_s": float64(total) / elapsed.Seconds(),
		"enqueue_s": produced.Seconds(), "completed": float64(got)}, nil
}

// latency: one worker process waits; the parent enqueues one task at a time,
// 5-15 ms apart, carrying its enqueue time; the worker reports start - enqueue.
func (b *bench) latency(q string) {
	params := map[string]int{"samples": b.sz.latencySample}
	path := b.path(q)
	defer func() { _ = os.Remove(path); _ = os.Remove(path + "-wal") }()
	a, err := openAdapter(b.ctx, q, path)
	if err != nil {
		b.fail("latency", q, params, err)
		return
	}
	defer a.close()
	cs, err := b.startChildren(q, path, "latency", 1)
	defer stopChildren(cs)
	if err != nil {
		b.fail("latency", q, params, err)
		return
	}
	var lat []time.Duration
	for i := 0; i < b.sz.latencySample+10; i++ {
		time.Sleep(5*time.Millisecond + time.Duration(i%11)*time.Millisecond)
		body := []byte(fmt.Sprintf(`{"t":%d}`, time.Now().UnixNano()))
		if err := a.enqueue(b.ctx, body); err != nil {
			b.fail("latency", q, params, err)
			return
		}
		select {
		case l, ok := <-cs[0].lines:
			f := strings.Fields(l)
			if !ok || len(f) != 2 || f[0] != "s" {
				b.fail("latency", q, params, fmt.Errorf("bad child line %q", l))
				return
			}
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			if i >= 10 { // the first ten are warm-up
				lat = append(lat, time.Duration(ns))
			}
		case <-time.After(30 * time.Second):
			b.fail("latency", q, params, errors.New("no start within 30 s"))
			return
		}
	}
	emit(record{Workload: "latency", Queue: q, Params: params, Metrics: map[string]float64{
		"p50_ms": pct(lat, 0.50) / 1000, "p99_ms": pct(lat, 0.99) / 1000}})
}

// idle: one worker process waits on an empty queue; it reports the CPU time
// it used while waiting.
func (b *bench) idle(q string) {
	params := map[string]int{"seconds": int(b.sz.idle.Seconds())}
	path := b.path(q)
	defer func() { _ = os.Remove(path); _ = os.Remove(path + "-wal") }()
	a, err := openAdapter(b.ctx, q, path)
	if err != nil {
		b.fail("idle", q, params, err)
		return
	}
	defer a.close()
	cs, err := b.startChildren(q, path, "idle", 1, "-idle-for", b.sz.idle.String())
	defer stopChildren(cs)
	if err != nil {
		b.fail("idle", q, params, err)
		return
	}
	select {
	case l := <-cs[0].lines:
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "cpu" {
			b.fail("idle", q, params, fmt.Errorf("bad child line %q", l))
			return
		}
		cpu, _ := strconv.ParseFloat(f[1], 64)
		wall, _ := strconv.ParseFloat(f[2], 64)
		emit(record{Workload: "idle", Queue: q, Params: params, Metrics: map[string]float64{
			"cpu_percent": 100 * cpu / wall, "cpu_ms_per_s": 1000 * cpu / wall}})
	case <-time.After(b.sz.idle + time.Minute):
		b.fail("idle", q, params, errors.New("child did not report"))
	}
}

// disk: enqueue diskTasks in batches of 100, checkpoint, size; then work
// them all, checkpoint, size again.
func (b *bench) disk(q string) {
	n := b.sz.diskTasks
	params := map[string]int{"tasks": n}
	path := b.path(q)
	defer func() { _ = os.Remove(path); _ = os.Remove(path + "-wal") }()
	a, err := openAdapter(b.ctx, q, path)
	if err == nil {
		err = fillBatches(b.ctx, a, n, 100)
		_ = a.close()
	}
	if err == nil {
		err = checkpoint(path)
	}
	if err != nil {
		b.fail("disk", q, params, err)
		return
	}
	queued := fileBytes(path)
	cs, err := b.startChildren(q, path, "work", 1)
	if err == nil {
		count := 0
		deadline := time.After(5 * time.Minute)
	loop:
		for count < n {
			select {
			case l, ok := <-cs[0].lines:
				if !ok {
					err = errors.New("worker exited")
					break loop
				}
				if f := strings.Fields(l); len(f) == 3 {
					k, _ := strconv.Atoi(f[1])
					count += k
				}
			case <-deadline:
				err = errors.New("timed out")
				break loop
			}
		}
	}
	stopChildren(cs)
	if err == nil {
		err = checkpoint(path)
	}
	if err != nil {
		b.fail("disk", q, params, err)
		return
	}
	emit(record{Workload: "disk", Queue: q, Params: params, Metrics: map[string]float64{
		"queued_bytes_per_task": float64(queued) / float64(n), "done_bytes_per_task": float64(fileBytes(path)) / float64(n)}})
}

// ---------------------------------------------------------------- child side

func runChild(ctx context.Context, q, path, kind string, idleFor time.Duration) error {
	a, err := openAdapter(ctx, q, path)
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the parent closes stdin to stop us
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	w := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	println := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.WriteString(s + "\n")
		_ = w.Flush()
	}
	println("ready")
	started := func([]byte) {}
	done := func(k int) { println(fmt.Sprintf("d %d %d", k, time.Now().UnixNano())) }
	switch kind {
	case "latency":
		done = func(int) {}
		started = func(body []byte) {
			now := time.Now().UnixNano()
			var v struct{ T int64 }
			if json.Unmarshal(body, &v) == nil && v.T > 0 {
				println(fmt.Sprintf("s %d", (now-v.T)/1000*1000))
			}
		}
	case "idle":
		idleCtx, stop := context.WithTimeout(ctx, idleFor)
		defer stop()
		before, t0 := cpuTime(), time.Now()
		if err := a.work(idleCtx, started, done); err != nil {
			return err
		}
		println(fmt.Sprintf("cpu %f %f", (cpuTime() - before).Seconds(), time.Since(t0).Seconds()))
		<-ctx.Done()
		return nil
	}
	return a.work(ctx, started, done)
}

// printVersions prints the Go, module and SQLite versions this binary was built with.
func printVersions(ctx context.Context) error {
	v := map[string]string{"go": runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			v[m.Path] = m.Version
		}
	}
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return err
	}
	defer db.Close()
	var sv string
	if err := db.QueryRowContext(ctx, "select sqlite_version()").Scan(&sv); err != nil {
		return err
	}
	v["sqlite"] = sv
	return out.Encode(v)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pct is the nearest-rank percentile in microseconds.
func pct(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i].Nanoseconds()) / 1000
}
