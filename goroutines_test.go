package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"overseer/jobs"
	"overseer/sqlstore"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// inOwnProcess runs t again in a test process of its own, and says false;
// or says true in that process. A daemon, or its reaper, takes its process
// over (it reaps and kills every child, and changes directory), so that
// tests that run one in the test process run it there.
func inOwnProcess(t *testing.T) bool {
	if os.Getenv(inProcessEnv) != "" {
		return true
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), inProcessEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in a process of its own: %v\n%s", err, out)
	}
	return false
}

const inProcessEnv = "OVERSEER_TEST_IN_PROCESS"

// TestGoroutinesEnd: when runDaemon returns, no goroutine it started (of
// package main, or started by package main) is left, even with streaming
// clients (EVENTS, LOGS FOLLOW, WAIT) still connected at DIE.
func TestGoroutinesEnd(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep on PATH")
	}
	config, socket, opts := daemonDirs(t)
	if err := os.WriteFile(filepath.Join(config, "web.env"), []byte("COMMAND=sleep 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	before := goroutines()
	var log bytes.Buffer
	var ran sync.WaitGroup
	var runErr error
	ran.Go(func() { runErr = runDaemon(context.Background(), opts, &log) })
	waitUntil(t, "web running", func() bool {
		out, _ := sendLine(socket, "STATUS web\n")
		return strings.HasPrefix(out, "OK web running\n")
	})

	// Streaming clients that never leave: the daemon ends their streams.
	// Then 40 EVENTS clients that leave, so that memory is given back.
	stream := func(line string, answers bool) net.Conn {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "%s\n", line)
		if answers {
			c.SetReadDeadline(time.Now().Add(waitFor))
			if first, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(first, "OK ") {
				t.Fatalf("%s: %q, %v", line, first, err)
			}
		}
		return c
	}
	for range 10 {
		stream("EVENTS", true)
		stream("LOGS web FOLLOW", true)
		stream("WAIT web failed 1h", false)
	}
	var leaving []net.Conn
	for range 40 {
		leaving = append(leaving, stream("EVENTS", true))
	}
	for _, c := range leaving {
		c.Close()
	}
	if out, err := sendLine(socket, "DIE\n"); err != nil || !strings.HasSuffix(out, "OK overseerd stopped\n") {
		t.Fatalf("DIE: %q, %v", out, err)
	}
	ran.Wait()
	if runErr != nil {
		t.Fatalf("runDaemon: %v\n%s", runErr, &log)
	}

	// Right as runDaemon returns: no goroutine runs code of package main,
	// or was started by it, but this test's.
	if left := ours(before); len(left) > 0 {
		t.Fatalf("%d goroutines outlive runDaemon:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// TestHandlersWaitForTheirGoroutines: a streaming handler (EVENTS, WAIT)
// returns only once the goroutines it started have ended, with the
// client still connected: they never outlive the request (serve closes
// the connection only after the handler returns).
func TestHandlersWaitForTheirGoroutines(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	dir := t.TempDir()
	store, err := sqlstore.Open(filepath.Join(dir, "overseer.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := &daemon{log: log, store: store, die: make(chan struct{}), dead: make(chan struct{}),
		mgr: jobs.NewManager(jobs.Config{Recorder: store, Reaper: jobs.NewReaper(), LogDir: dir, Instance: dir,
			Logger: log, Samples: store, Cgroups: jobs.CgroupsOff})}
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// connect returns the daemon's end of a connection; the client's stays
	// open to the test's end.
	connect := func() (net.Conn, *bufio.Reader) {
		k, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		k.SetReadDeadline(time.Now().Add(waitFor))
		return c, bufio.NewReader(k)
	}
	before := goroutines()

	c, answer := connect()
	d.wait(c, request{verb: "WAIT", name: "nosuchjob", state: jobs.Running, timeout: time.Minute})
	if line, err := answer.ReadString('\n'); line != "ERR no job named \"nosuchjob\"\n" {
		t.Fatalf("WAIT answered %q, %v", line, err)
	}

	c, answer = connect()
	var served sync.WaitGroup
	served.Go(func() { d.events(c, request{verb: "EVENTS"}) })
	if line, err := answer.ReadString('\n'); line != "OK following events of every job\n" {
		t.Fatalf("EVENTS answered %q, %v", line, err)
	}
	d.mgr.Shutdown() // ends every EVENTS stream
	served.Wait()

	if left := ours(before); len(left) > 0 {
		t.Fatalf("%d goroutines outlive their handler:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// ours returns the stacks of the goroutines, but for those in before,
// that run code of package main or were started by it (in a test binary,
// package main of module overseer is named overseer in stacks), and those
// that a WaitGroup's Go started but that have not run yet: what they will
// run is not known, and nothing waited for them.
func ours(before map[string]string) []string {
	var left []string
	for id, stack := range goroutines() {
		if _, old := before[id]; old {
			continue
		}
		lines := strings.Split(stack, "\n")
		pending := len(lines) > 2 && !strings.Contains(lines[2], "+0x") // at its function's entry
		mine := pending && strings.Contains(stack, "\ncreated by sync.(*WaitGroup).Go ")
		for _, pkg := range []string{"main.", "overseer."} {
			mine = mine || strings.Contains(stack, "\n"+pkg) || strings.Contains(stack, "\ncreated by "+pkg)
		}
		if mine {
			left = append(left, stack)
		}
	}
	return left
}

// goroutines returns the stack of every goroutine by its header line's id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	all := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if id, ok := strings.CutPrefix(header, "goroutine "); ok {
			id, _, _ = strings.Cut(id, " ")
			all[id] = g
		}
	}
	return all
}

// TestDaemonSource: the daemon's code (package main but the client and
// main.go) starts no goroutine with a go statement, which nothing waits
// for: each starts by the Go method of a WaitGroup that runDaemon, or the
// handler that started it, waits for (a goroutine that ends soon after
// runDaemon returns escapes TestGoroutinesEnd, not this). And it logs
// through the daemon's logger only: never slog's default logger, the log
// package, or straight to standard output or error.
func TestDaemonSource(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "client.go" || name == "main.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == `"log"` {
				t.Errorf("%v: imports log: log through the daemon's logger", fset.Position(imp.Pos()))
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%v: a go statement: start it with the Go method of a WaitGroup that is waited for", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				pkg, ok := n.X.(*ast.Ident)
				if !ok {
					break
				}
				switch pkg.Name + "." + n.Sel.Name {
				case "slog.Debug", "slog.Info", "slog.Warn", "slog.Error", "slog.Log", "slog.Default", "slog.SetDefault",
					"os.Stderr", "os.Stdout", "fmt.Print", "fmt.Printf", "fmt.Println":
					t.Errorf("%v: %s.%s: log through the daemon's logger", fset.Position(n.Pos()), pkg.Name, n.Sel.Name)
				}
			}
			return true
		})
	}
}

// TestIdleJobsHoldNoGoroutine: a job whose process runs and to which
// nothing happens holds no goroutine (its supervisor runs only while it
// has events): the daemon's goroutines do not grow with its idle jobs,
// 10 against 200 (BENCHMARKS.md, issue 16: at 5000 jobs, their stacks
// were 20 MB).
func TestIdleJobsHoldNoGoroutine(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep on PATH")
	}
	config, socket, opts := daemonDirs(t)
	jobsUpTo := func(n int) {
		for i := range n {
			if err := os.WriteFile(filepath.Join(config, fmt.Sprintf("j%d.env", i)), []byte("COMMAND=sleep 1000\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	jobsUpTo(10)
	defer runInProcess(t, opts, socket)()
	running := func(n int) func() bool {
		return func() bool {
			out, _ := sendLine(socket, "STATUS\n")
			return strings.HasPrefix(out, fmt.Sprintf("OK %d jobs\n", n)) && strings.Count(out, " running ") == n
		}
	}
	waitUntil(t, "10 jobs running", running(10))
	few := settledGoroutines()
	jobsUpTo(200)
	if out, err := sendLine(socket, "RELOAD\n"); err != nil || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("RELOAD: %q, %v", out, err)
	}
	waitUntil(t, "200 jobs running", running(200))
	many := settledGoroutines()
	t.Logf("goroutines: %d with 10 idle jobs, %d with 200", few, many)
	if many-few >= 19 { // a tenth of the 190 jobs added
		t.Errorf("190 idle jobs more made %d goroutines more: a job waiting for nothing holds one", many-few)
	}
}

// TestReloadWaitsWithoutGoroutines: a RELOAD that waits for the jobs it
// started does not hold a goroutine for each (BENCHMARKS.md, issue 16:
// 5000 waiting at once were 2.4 MB of the daemon's heap ever after, the
// runtime never frees a goroutine's record): with 200 jobs started and
// not ready (READY=notify, which they never send), the daemon has about
// as many goroutines as with none.
func TestReloadWaitsWithoutGoroutines(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("READY=notify is Linux's")
	}
	if !inOwnProcess(t) {
		return
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep on PATH")
	}
	config, socket, opts := daemonDirs(t)
	var reloaded sync.WaitGroup
	stop := runInProcess(t, opts, socket)
	defer func() {
		stop()
		reloaded.Wait()
	}()
	waitUntil(t, "the daemon answers", func() bool {
		out, _ := sendLine(socket, "STATUS\n")
		return strings.HasPrefix(out, "OK 0 jobs")
	})
	none := settledGoroutines()
	const n = 200
	for i := range n {
		if err := os.WriteFile(filepath.Join(config, fmt.Sprintf("j%d.env", i)), []byte("COMMAND=sleep 1000\nREADY=notify\nREADY_TIMEOUT=1h\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	answer := make(chan string, 1)
	reloaded.Go(func() {
		out, _ := sendLine(socket, "RELOAD\n")
		answer <- out
	})
	waitUntil(t, "200 jobs starting", func() bool {
		out, _ := sendLine(socket, "STATUS\n")
		return strings.HasPrefix(out, fmt.Sprintf("OK %d jobs\n", n)) && strings.Count(out, " starting ") == n
	})
	waiting := settledGoroutines()
	select {
	case out := <-answer:
		t.Fatalf("RELOAD answered before the jobs were ready: %q", out)
	default:
	}
	t.Logf("goroutines: %d with no job, %d while a RELOAD waits for %d", none, waiting, n)
	if waiting-none >= n/4 {
		t.Errorf("a RELOAD waiting for %d jobs made %d goroutines more: one waits for each", n, waiting-none)
	}
}

// daemonDirs makes a config dir and a data dir under t's temp dir, and
// returns the config dir, the socket and the daemon's options for them.
func daemonDirs(t *testing.T) (config, socket string, opts options) {
	t.Helper()
	dir := t.TempDir()
	config, data := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	if err := os.MkdirAll(config, 0o700); err != nil {
		t.Fatal(err)
	}
	opts, _, err := parseFlags("overseerd", []string{"-config-dir", config, "-data-dir", data}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return config, filepath.Join(data, "overseer.sock"), opts
}

// runInProcess runs the daemon in this process and returns what stops it
// (DIE), reporting an error runDaemon returned.
func runInProcess(t *testing.T, opts options, socket string) (stop func()) {
	var log bytes.Buffer
	var ran sync.WaitGroup
	var runErr error
	ran.Go(func() { runErr = runDaemon(context.Background(), opts, &log) })
	return func() {
		sendLine(socket, "DIE\n")
		ran.Wait()
		if runErr != nil {
			t.Errorf("runDaemon: %v\n%s", runErr, &log)
		}
	}
}

// settledGoroutines returns the number of goroutines once it holds still:
// a goroutine that handles an event ends right after.
func settledGoroutines() int {
	last := -1
	for deadline := time.Now().Add(waitFor); ; time.Sleep(50 * time.Millisecond) {
		n := len(goroutines())
		if n == last || time.Now().After(deadline) {
			return n
		}
		last = n
	}
}
