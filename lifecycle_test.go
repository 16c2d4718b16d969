package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusField returns field i of job's line in a STATUS answer, or "".
func statusField(t *testing.T, socket, job string, i int) string {
	out, err := sendLine(socket, "STATUS\n")
	if err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) > i && f[0] == job {
			return f[i]
		}
	}
	return ""
}

// waitUntil polls check every 20ms until it holds, for at most waitFor.
func waitUntil(t *testing.T, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !check(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", waitFor, what)
		}
	}
}

// TestClosedStderr runs overseerd in the foreground with its stderr a pipe
// whose reader has gone (overseerd 2>&1 | head -1): its next log lines
// must not kill it (SIGPIPE); it answers and restarts its jobs.
func TestClosedStderr(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep on PATH")
	}
	dir := t.TempDir()
	config, data := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	socket := filepath.Join(data, "overseer.sock")
	if err := os.Mkdir(config, 0o700); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   []string{"overseerd", "-config-dir", config, "-data-dir", data},
		Stdout: w,
		Stderr: w,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		killDaemon(data)
		select {
		case <-exited:
		case <-time.After(waitFor):
			t.Errorf("overseerd did not exit")
			cmd.Process.Kill()
		}
	})
	// Read its first line, then hang up, as head -1 does.
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	r.Close()

	// A RELOAD that starts a job logs lines; so does each restart.
	if err := os.WriteFile(filepath.Join(config, "web.env"), []byte("COMMAND=sleep 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := sendLine(socket, "RELOAD\n"); err != nil || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("RELOAD answered %q, %v", out, err)
	}
	for range 3 {
		pid := ""
		waitUntil(t, "web never ran", func() bool {
			pid = statusField(t, socket, "web", 2)
			return pid != "" && pid != "-"
		})
		// The job does not inherit an ignored SIGPIPE (Linux: /proc).
		if b, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
					ign, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
					if ign&(1<<(syscall.SIGPIPE-1)) != 0 {
						t.Errorf("the job ignores SIGPIPE (SigIgn %s)", strings.TrimSpace(v))
					}
				}
			}
		}
		n, _ := strconv.Atoi(pid)
		syscall.Kill(n, syscall.SIGKILL)
		waitUntil(t, "web did not restart after a kill", func() bool {
			p := statusField(t, socket, "web", 2)
			return p != pid && p != "-" && p != ""
		})
	}
	select {
	case <-exited:
		t.Fatalf("overseerd exited: %v", waitErr)
	default:
	}
	if out, err := sendLine(socket, "DIE\n"); err != nil || !strings.Contains(out, "OK overseerd stopped") {
		t.Fatalf("DIE answered %q, %v", out, err)
	}
	<-exited
	if waitErr != nil {
		t.Fatalf("overseerd exited: %v", waitErr)
	}
}

func TestQuoteName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web.env", "web.env"},
		{"café.env", "café.env"},
		{"caf\xe9.env", `"caf\xe9.env"`},
		{"a\nOK b.env", `"a\nOK b.env"`},
		{"a b.env", `"a b.env"`},
		{"a\"b.env", `"a\"b.env"`},
		{"\x1b[2J.env", `"\x1b[2J.env"`},
	} {
		if got := quoteName(tc.in); got != tc.want {
			t.Errorf("quoteName(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestLaunchLoser: a client whose daemon loses the launch race to one
// that already answers does not say it launched one.
func TestLaunchLoser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := options{
		configDir: filepath.Join(dir, "config"),
		dataDir:   filepath.Join(dir, "data"),
		socket:    filepath.Join(dir, "data", "overseer.sock"),
	}
	args := []string{"overseer", "-config-dir", opts.configDir, "-data-dir", opts.dataDir}
	var stdout, stderr strings.Builder
	if code := run(args, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "launched overseerd") {
		t.Fatalf("first overseer: exit %d, stderr %q", code, stderr.String())
	}
	t.Cleanup(func() { killDaemon(opts.dataDir) })

	// launch as a client does when its dial found no daemon, while the
	// winner of the race answers: its own daemon exits, holding no lock.
	stderr.Reset()
	conn, err := launch(opts, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if stderr.Len() != 0 {
		t.Errorf("the losing launch said %q, want nothing", stderr.String())
	}
	// The loser has exited before the winner dies, or it would win then.
	waitUntil(t, "the losing daemon did not say it lost", func() bool {
		b, _ := os.ReadFile(filepath.Join(opts.dataDir, "overseerd.log"))
		return strings.Contains(string(b), "overseerd: another overseerd (pid ")
	})
	if code := run(append(args, "die"), &stdout, &stderr); code != exitOK {
		t.Errorf("die: exit %d, stderr %q", code, stderr.String())
	}
}
