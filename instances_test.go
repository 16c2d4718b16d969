package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

// serveHTTP is testjob -http ADDR: it listens on ADDR with SO_REUSEPORT,
// so that copies of it share the port, then writes a newline to
// descriptor readyFd (READY=fd:N) if it is not 0, and answers every
// request with its pid until TERM comes; then it stops accepting, lets
// the requests in flight finish, and exits 0.
func serveHTTP(addr string, readyFd int, term <-chan os.Signal) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return cmp.Or(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(100)
	}
	pid := strconv.Itoa(os.Getpid())
	var open sync.WaitGroup // the connections accepted, until closed
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, pid+"\n")
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Done()
			}
		},
	}
	served := make(chan struct{})
	go func() {
		srv.Serve(ln)
		close(served)
	}()
	if readyFd > 0 {
		if _, err := syscall.Write(readyFd, []byte("ready\n")); err != nil {
			fmt.Fprintln(os.Stderr, "ready-fd:", err)
		}
	}
	fmt.Println("serving on", ln.Addr())
	<-term
	// Not Shutdown: it drops a request read after it began (net/http
	// closes such a connection unanswered). Stop accepting, answer every
	// connection accepted (each closed after its answer), then exit.
	srv.SetKeepAlivesEnabled(false)
	ln.Close()
	<-served
	done := make(chan struct{})
	go func() {
		open.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	os.Exit(0)
}

// cmdFreePort is freeport VAR: sets VAR to a TCP port of 127.0.0.1 that
// was free a moment ago.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Setenv(args[0], strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	ln.Close()
}

// httpWatch asks a URL again and again, one request after the other, each
// on a new connection (as curl in a loop does), until stopped, for at most
// httpWatchFor.
type httpWatch struct {
	stop chan struct{}
	done chan struct{}

	// owned by the watching goroutine until done is closed
	requests, failures int
	errors             []string       // the first few failures
	pids               map[string]int // answer → how many times
}

const httpWatchFor = 2 * time.Minute

var httpWatches sync.Map // *testscript.TestScript → *httpWatch

// cmdHTTPWatch is httpwatch start URL | httpwatch stop. start begins
// asking URL in the background, once it has answered once; stop ends it
// and prints "N requests, F failures", then each failure (at most ten),
// then each answer seen (a pid) with its count, in order of answer.
func cmdHTTPWatch(ts *testscript.TestScript, neg bool, args []string) {
	switch {
	case neg:
		ts.Fatalf("usage: httpwatch start URL | httpwatch stop")
	case len(args) == 2 && args[0] == "start":
		w := &httpWatch{stop: make(chan struct{}), done: make(chan struct{}), pids: make(map[string]int)}
		if _, loaded := httpWatches.LoadOrStore(ts, w); loaded {
			ts.Fatalf("httpwatch: already started")
		}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		get := func() (string, error) {
			resp, err := client.Get(args[1])
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
			return strings.TrimSpace(string(b)), err
		}
		poll(ts, func() (bool, string) {
			_, err := get()
			return err == nil, fmt.Sprintf("%s does not answer: %v", args[1], err)
		})
		ts.Defer(func() { w.end() })
		go func() {
			defer close(w.done)
			deadline := time.Now().Add(httpWatchFor)
			for time.Now().Before(deadline) {
				select {
				case <-w.stop:
					return
				default:
				}
				w.requests++
				pid, err := get()
				if err != nil {
					w.failures++
					if len(w.errors) < 10 {
						w.errors = append(w.errors, time.Now().Format("15:04:05.000000")+" "+err.Error())
					}
					continue
				}
				w.pids[pid]++
			}
		}()
	case len(args) == 1 && args[0] == "stop":
		v, ok := httpWatches.LoadAndDelete(ts)
		if !ok {
			ts.Fatalf("httpwatch: not started")
		}
		w := v.(*httpWatch)
		w.end()
		fmt.Fprintf(ts.Stdout(), "%d requests, %d failures\n", w.requests, w.failures)
		for _, e := range w.errors {
			fmt.Fprintf(ts.Stdout(), "failure %s\n", e)
		}
		pids := make([]string, 0, len(w.pids))
		for pid := range w.pids {
			pids = append(pids, pid)
		}
		sort.Strings(pids)
		for _, pid := range pids {
			fmt.Fprintf(ts.Stdout(), "pid %s %d\n", pid, w.pids[pid])
		}
	default:
		ts.Fatalf("usage: httpwatch start URL | httpwatch stop")
	}
}

// end stops the watch and waits for it.
func (w *httpWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// migrateReq is the sysctl that makes Linux (5.14 and later) hand the
// connections queued on a closing SO_REUSEPORT listener to another
// listener of its group, instead of resetting them.
const migrateReq = "/proc/sys/net/ipv4/tcp_migrate_req"

// canMigrateReq reports whether a script may set net.ipv4.tcp_migrate_req
// (root, on Linux 5.14 or later): the condition [migratereq].
func canMigrateReq() bool {
	_, err := os.ReadFile(migrateReq)
	return err == nil && os.Geteuid() == 0
}

// cmdMigrateReq is migratereq: sets net.ipv4.tcp_migrate_req to 1 until
// the script ends (then back to what it was); [migratereq] says whether it
// can. It is the network namespace's setting, which a server cannot make
// for itself: without it, a copy that stops resets the connections it had
// not accepted yet.
func cmdMigrateReq(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: migratereq")
	}
	was, err := os.ReadFile(migrateReq)
	ts.Check(err)
	if strings.TrimSpace(string(was)) == "1" {
		return
	}
	ts.Check(os.WriteFile(migrateReq, []byte("1\n"), 0o644))
	ts.Defer(func() { os.WriteFile(migrateReq, was, 0o644) })
}
