package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"overseer/jobs"
)

// testDaemon is an overseerd run by a test: the test binary itself, started
// as overseerd (TestMain dispatches on argv[0]), in dirs of its own.
type testDaemon struct {
	dir, config, data, socket string
}

// startDaemon writes the job files and starts a daemon on them, waiting
// until it answers; the test's end stops it.
func startDaemon(t *testing.T, files map[string]string) *testDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "overseer-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &testDaemon{dir: dir, config: filepath.Join(dir, "config"), data: filepath.Join(dir, "data")}
	d.socket = filepath.Join(d.data, "overseer.sock")
	if err := os.MkdirAll(d.config, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(d.config, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   []string{"overseerd", "-config-dir", d.config, "-data-dir", d.data},
		Env:    append(os.Environ(), "HOME="+dir),
		Stderr: io.Discard,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if _, err := sendLine(d.socket, "DIE\n"); err != nil {
			cmd.Process.Kill()
		}
		<-exited
	})
	d.waitFor(t, "daemon answering", func() bool {
		_, err := sendLine(d.socket, "PING\n")
		return err == nil
	})
	return d
}

// waitFor polls cond until it holds, failing after waitFor.
func (d *testDaemon) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, waitFor)
		}
	}
}

// status returns the job lines of STATUS by name.
func (d *testDaemon) status(t *testing.T) map[string][]string {
	t.Helper()
	out, err := sendLine(d.socket, "STATUS\n")
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]string)
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 6 {
			m[f[0]] = f
		}
	}
	return m
}

// TestOtherUserRefused runs a client as nobody against a daemon whose
// directory and socket modes were loosened: the peer check still refuses it.
func TestOtherUserRefused(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root, to run a client as nobody (uid 65534): not run as root")
	}
	d := startDaemon(t, map[string]string{"web.env": "COMMAND=sleep 1000\n"})
	// Loosen every mode on the way, as a careless user might.
	for _, p := range []string{d.dir, d.data} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(d.socket, 0o666); err != nil {
		t.Fatal(err)
	}
	// A copy of the test binary nobody may run, as the client.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(d.dir, "overseer")
	if err := os.WriteFile(client, b, 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	cmd := &exec.Cmd{
		Path:        client,
		Args:        []string{"overseer", "-socket", d.socket, "-data-dir", d.data, "-config-dir", d.config, "status"},
		Env:         []string{"HOME=/nonexistent", "PATH=/usr/bin:/bin"},
		Stdout:      &stdout,
		Stderr:      &stderr,
		SysProcAttr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}},
	}
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitFailed {
		t.Fatalf("client as nobody: exit %d (%v), stdout %q, stderr %q; want exit %d", code, err, stdout.String(), stderr.String(), exitFailed)
	}
	want := fmt.Sprintf("overseer: permission denied: this overseerd serves only uid %d\n", os.Getuid())
	if stderr.String() != want || stdout.String() != "" {
		t.Errorf("client as nobody: stdout %q, stderr %q; want stderr %q", stdout.String(), stderr.String(), want)
	}
	// Its own user is still served.
	if st := d.status(t); st["web"] == nil {
		t.Errorf("STATUS after the refusal: %v", st)
	}
}

// TestManyClients sends 500 STATUS requests at once, next to a client that
// connects and says nothing, one that follows a log and never reads, and
// one that hangs up mid-request, while a job is killed and must come back:
// every request is answered in full, and supervision goes on.
func TestManyClients(t *testing.T) {
	t.Parallel()
	files := map[string]string{"chatty.env": "COMMAND=sh -c 'while :; do echo lots of output; done'\n"}
	for i := range 20 {
		files[fmt.Sprintf("j%02d.env", i)] = "COMMAND=sleep 1000\n"
	}
	d := startDaemon(t, files)
	d.waitFor(t, "21 jobs running", func() bool {
		n := 0
		for _, f := range d.status(t) {
			if f[1] == "running" {
				n++
			}
		}
		return n == 21
	})

	// The misbehaving ones.
	silent, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	follower, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	fmt.Fprintf(follower, "LOGS chatty 0 FOLLOW\n") // and never read
	if half, err := net.Dial("unix", d.socket); err == nil {
		io.WriteString(half, "STAT")
		half.Close()
	}

	old := d.status(t)["j07"][2]
	pid, _ := strconv.Atoi(old)
	syscall.Kill(pid, syscall.SIGKILL)

	const clients = 500
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			c, err := dial(d.socket)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitFor))
			io.WriteString(c, "STATUS\n")
			sc := bufio.NewScanner(c)
			lines := 0
			for sc.Scan() {
				if lines == 0 && sc.Text() != "OK 21 jobs" {
					errs <- fmt.Errorf("first line %q", sc.Text())
					return
				}
				lines++
			}
			if lines != 22 {
				errs <- fmt.Errorf("%d lines (%v), want 22", lines, sc.Err())
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d clients failed", n, clients)
	}
	d.waitFor(t, "j07 restarted", func() bool {
		f := d.status(t)["j07"]
		return f != nil && f[1] == "running" && f[2] != old
	})
}

// FuzzParseRequest: no request line panics the parser, an error never
// spans lines (it would forge an answer line), and what parses is a known
// verb with sane arguments.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"STATUS", "status web", "RELOAD", "RELOAD VERBOSE", "START web", "STOP web", "RESTART web",
		"SIGNAL web HUP", "SIGNAL web SIGUSR1", "LOGS web", "LOGS web 10 FOLLOW", "LOGS web follow 3", "LOGS web stderr 5 FOLLOW", "LOGS web Test",
		"HISTORY", "HISTORY 42 20", "HISTORY web", "DIE", "PING", "HELP", "", " \t ", "FROB x",
		"\x00\xff\xfe", "LOGS web -1", "SIGNAL web 9", "STATUS a b", "LOGS " + strings.Repeat("x", 5000),
		"EVENTS", "EVENTS web", "WAIT web running", "WAIT web Exited 10s", "WAIT web running -1s", "WAIT web up 1s",
		"INSPECT web", "INSPECT web 5", "INSPECT web lots", "INSPECT web 1 2",
		"SPAWN eph -- testjob", "SPAWN eph 1h TIED PARENT -- sh -c 'echo \"a b\"'", "SPAWN eph --", "SPAWN -- x", "spawn e tied 5s\t--\tx",
	} {
		f.Add(seed)
	}
	known := make(map[string]bool)
	for _, v := range verbs {
		known[v.name] = true
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseRequest(line)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error %q spans lines", err)
			}
			return
		}
		if !known[r.verb] {
			t.Errorf("verb %q parsed but unknown", r.verb)
		}
		if r.lines < 0 || r.lines > maxLines {
			t.Errorf("lines %d out of range", r.lines)
		}
		if r.stream != "" && r.stream != jobs.StreamOut && r.stream != jobs.StreamErr && r.stream != jobs.StreamTest {
			t.Errorf("stream %q unknown", r.stream)
		}
		if r.verb == "SIGNAL" && r.sig == 0 {
			t.Error("SIGNAL without a signal")
		}
		if r.verb == "WAIT" && (!waitStates[r.state] || r.timeout < 0 || r.timeout > maxWait) {
			t.Errorf("WAIT for %q within %v", r.state, r.timeout)
		}
		if r.verb == "SPAWN" && (len(r.command) == 0 || !jobs.ValidName(r.name) || r.ttl < 0 || r.tiedParent && !r.tied) {
			t.Errorf("SPAWN parsed as %+v", r)
		}
	})
}

// TestBadConnections: a client that connects and says nothing gets an ERR
// after the read deadline; an oversized line and binary garbage get ERR; a
// client that hangs up early is forgotten; a request without its newline
// is answered; the daemon serves on.
func TestBadConnections(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, map[string]string{"web.env": "COMMAND=sleep 1000\n"})
	ask := func(send string, closeWrite bool) string {
		c, err := net.Dial("unix", d.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		io.WriteString(c, send)
		if closeWrite {
			c.(*net.UnixConn).CloseWrite()
		}
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := ask("", false); got != "ERR no request line within 5s\n" {
		t.Errorf("silent client: %q", got)
	}
	if got := ask(strings.Repeat("A", 5000)+"\n", false); got != "ERR request longer than 4096 bytes\n" {
		t.Errorf("oversized line: %q", got)
	}
	if got := ask("\x00\xff\x1b[31m\n", false); got != "ERR unknown verb \"\\x00\\xff\\x1b[31m\": HELP lists the verbs\n" {
		t.Errorf("binary garbage: %q", got)
	}
	if got := ask("", true); got != "" {
		t.Errorf("client that hangs up at once: %q", got)
	}
	// The last line without its newline counts (printf PING | nc -U): the
	// daemon reads on past what was there at first.
	if got := ask("PING", true); !strings.HasPrefix(got, "OK overseer ") {
		t.Errorf("a request without its newline: %q", got)
	}
	if st := d.status(t); st["web"] == nil || st["web"][1] != "running" {
		t.Errorf("STATUS afterwards: %v", st)
	}
}

// TestFileModes: nothing the daemon writes is readable by other users.
func TestFileModes(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, map[string]string{"web.env": "COMMAND=sh -c 'echo hello; exec sleep 1000'\n"})
	d.waitFor(t, "a log line", func() bool {
		b, _ := os.ReadFile(filepath.Join(d.data, "logs", "web.log"))
		return len(b) > 0
	})
	err := filepath.Walk(d.data, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others may read it", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
