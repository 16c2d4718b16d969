package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"overseer/internal/testdisk"
)

// TestLogDiskFull runs a chatty job whose logs dir is a 1 MiB tmpfs, fills
// it, then frees it. While it is full the daemon says so once (not once
// per lost line); once it is freed the daemon says so, the job's lines are
// written again, and no line cut by the full disk is glued to another.
func TestLogDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill needs root: skipped")
	}
	dir := t.TempDir()
	config, data := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	logs := filepath.Join(data, "logs")
	if err := os.MkdirAll(config, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := testdisk.Mount(logs, "1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { testdisk.Unmount(logs) })
	if err := os.WriteFile(filepath.Join(config, "chatty.env"), []byte("COMMAND=testjob -tick 1ms -warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The daemon, its own log on the disk that stays free.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "overseerd.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	socket := filepath.Join(data, "overseer.sock")
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   []string{"overseerd", "-config-dir", config, "-data-dir", data},
		Env:    append(os.Environ(), "HOME="+dir),
		Stderr: stderr,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if _, err := sendLine(socket, "DIE\n"); err != nil {
			cmd.Process.Kill()
		}
		<-exited
	})
	daemonSaid := func() string {
		b, _ := os.ReadFile(stderr.Name())
		return string(b)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(waitFor); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after %v; the daemon said:\n%s", what, waitFor, daemonSaid())
			}
		}
	}
	waitUntil("daemon answering", func() bool { _, err := sendLine(socket, "PING\n"); return err == nil })
	logFile := filepath.Join(logs, "chatty.log")
	waitUntil("log lines", func() bool { b, _ := os.ReadFile(logFile); return bytes.Count(b, []byte("\n")) >= 20 })

	// Its lines, as a follower gets them whether or not the file takes them.
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * waitFor))
	fmt.Fprintf(c, "LOGS chatty 0 FOLLOW\n")
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("FOLLOW: %q, %v", line, err)
	}
	tick := func() int {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("following: %v", err)
			}
			var n int
			if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%d", &n); err == nil && strings.Contains(line, " out tick ") {
				return n
			}
		}
	}
	ticksPass := func(n int) int {
		start := tick()
		for {
			if now := tick(); now >= start+n {
				return now
			}
		}
	}

	// Fill the disk; the job writes on for 3000 ticks (6000 lines).
	fill, err := os.Create(filepath.Join(logs, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := fill.Write(chunk); err != nil {
			break
		}
	}
	fill.Close()
	ticksPass(3000)
	said := daemonSaid()
	if n := strings.Count(said, "cannot write job log"); n < 1 || n > 3 {
		t.Errorf("over a few seconds of a full disk the daemon complained %d times, want once (at most once a minute):\n%.2000s", n, said)
	}
	if !strings.Contains(said, "no space left on device") || !strings.Contains(said, "job=chatty") {
		t.Errorf("the complaint does not say which job and why:\n%.2000s", said)
	}

	// Free it: lines are written again, and that is said.
	if err := os.Remove(fill.Name()); err != nil {
		t.Fatal(err)
	}
	freed := ticksPass(300)
	waitUntil("word that the log is written again", func() bool {
		return strings.Contains(daemonSaid(), "job log written again")
	})
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	whole := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (out tick|err warn) \d+$`)
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !whole.MatchString(line) {
			t.Errorf("line %d of the log is not one whole line: %q", i+1, line)
		}
	}
	if !bytes.Contains(b, fmt.Appendf(nil, " out tick %d\n", freed)) {
		t.Errorf("tick %d, written after the disk was freed, is not in the log", freed)
	}
}
