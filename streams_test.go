package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rss returns the daemon's resident set in bytes (Linux).
func (d *testDaemon) rss(t *testing.T) int64 {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(d.data, "overseer.lock"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// stall opens a connection, sends line and reads the first answer line,
// then reads nothing more.
func stall(t *testing.T, socket, line string) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitFor))
	fmt.Fprintf(c, "%s\n", line)
	first, err := bufio.NewReaderSize(c, 16).ReadString('\n')
	if err != nil {
		c.Close()
		t.Fatalf("%s: %v", line, err)
	}
	return c, strings.TrimSpace(first)
}

// TestStalledStreams fills the daemon with EVENTS and LOGS FOLLOW clients
// that never read while a job crash-loops and another floods its log: the
// daemon grows by a bounded amount, refuses streams over maxStreams with
// ERR, and gives the memory back once they leave. Linux (/proc).
func TestStalledStreams(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the daemon's RSS")
	}
	d := startDaemon(t, map[string]string{
		"crash.env":  "COMMAND=sh -c 'exit 3'\nSTART_SECS=0\nSTART_RETRIES=0\nSTART_LIMIT=0\n",
		"chatty.env": "COMMAND=sh -c 'while :; do echo lots of output, lots of output; done'\n",
	})
	restarts := func() int {
		f := d.status(t)["crash"]
		if f == nil {
			return 0
		}
		n, _ := strconv.Atoi(f[4])
		return n
	}
	d.waitFor(t, "crash restarting", func() bool { return restarts() > 20 })
	before := d.rss(t)

	// Fill every slot, each client reading only its OK line.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range maxStreams {
		line := "EVENTS"
		if i%4 == 0 {
			line = "LOGS chatty 0 FOLLOW"
		}
		c, first := stall(t, d.socket, line)
		conns = append(conns, c)
		if !strings.HasPrefix(first, "OK following") {
			t.Fatalf("stream %d: %s answered %q", i, line, first)
		}
	}
	// One more of each kind is refused, and says why.
	for _, line := range []string{"EVENTS", "LOGS chatty FOLLOW", "WAIT crash failed 1h"} {
		c, first := stall(t, d.socket, line)
		c.Close()
		want := fmt.Sprintf("ERR too many streaming clients: %d EVENTS, LOGS FOLLOW and WAIT are served at once; try again later", maxStreams)
		if first != want {
			t.Errorf("%s over the cap: %q, want %q", line, first, want)
		}
	}
	// A WAIT that is answered at once needs no slot: scripts that only
	// look are never refused.
	if c, first := stall(t, d.socket, "WAIT chatty running 1h"); first != "OK chatty is running" {
		t.Errorf("WAIT for the state a job is in, over the cap: %q, want OK", first)
	} else {
		c.Close()
	}
	// Queues fill: many more events than a queue holds, and log lines.
	from := restarts()
	d.waitFor(t, "crash restarts", func() bool { return restarts() > from+200 })
	const bound = 40 << 20
	during := d.rss(t)
	t.Logf("RSS %d MiB before, %d MiB with %d stalled streams", before>>20, during>>20, maxStreams)
	if raceOn {
		t.Log("the race detector is on: RSS bounds not checked")
		return
	}
	if during > before+bound {
		t.Errorf("RSS grew from %d MiB to %d MiB with %d stalled streams, want less than %d MiB more", before>>20, during>>20, maxStreams, bound>>20)
	}

	// They leave: the slots are free again and the memory goes back.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	d.waitFor(t, "a stream admitted again", func() bool {
		c, first := stall(t, d.socket, "EVENTS")
		c.Close()
		return strings.HasPrefix(first, "OK")
	})
	var after int64
	for deadline := time.Now().Add(waitFor); ; time.Sleep(100 * time.Millisecond) {
		if after = d.rss(t); after < before+8<<20 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("RSS %d MiB after they left", after>>20)
	if after >= before+8<<20 {
		t.Errorf("RSS %d MiB after the streams left, want less than %d MiB (%d MiB before)", after>>20, (before+8<<20)>>20, before>>20)
	}
	if f := d.status(t)["crash"]; f == nil || f[1] == "failed" {
		t.Errorf("crash: %v", f)
	}
}

// TestStalledLogs sends many LOGS requests for a log of megabytes from
// clients that never read their answers: only maxBigAnswers of them are
// made at once, so the daemon grows by a bounded amount (not by 4 MiB and
// more per client), still answers others, and gives the memory back once
// they leave. Linux (/proc).
func TestStalledLogs(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the daemon's RSS")
	}
	if raceOn {
		t.Skip("the race detector inflates RSS: bounds not checked")
	}
	// About 8 MiB of 4 KB lines, then quiet.
	d := startDaemon(t, map[string]string{
		"big.env": "COMMAND=sh -c 'yes \"$(printf %04000d 0)\" | head -n 2000; exec sleep 1000'\n",
	})
	d.waitFor(t, "big's log written", func() bool {
		fi, err := os.Stat(filepath.Join(d.data, "logs", "big.log"))
		return err == nil && fi.Size() > 7<<20
	})
	before := d.rss(t)
	const clients = 60
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range clients {
		c, err := net.Dial("unix", d.socket)
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.UnixConn).SetReadBuffer(4096)
		fmt.Fprintf(c, "LOGS big 10000\n")
		conns = append(conns, c)
	}
	// Others are still answered meanwhile (STATUS is no big answer).
	if f := d.status(t)["big"]; f == nil || f[1] != "running" {
		t.Fatalf("big: %v", f)
	}
	const bound = 80 << 20
	peak := before
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		peak = max(peak, d.rss(t))
	}
	t.Logf("RSS %d MiB before, at most %d MiB with %d stalled LOGS of 4 MiB", before>>20, peak>>20, clients)
	if peak > before+bound {
		t.Errorf("RSS grew from %d MiB to %d MiB with %d stalled LOGS, want less than %d MiB more", before>>20, peak>>20, clients, bound>>20)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	var after int64
	for deadline := time.Now().Add(waitFor); ; time.Sleep(100 * time.Millisecond) {
		if after = d.rss(t); after < before+16<<20 || time.Now().After(deadline) {
			break
		}
	}
	if after >= before+16<<20 {
		t.Errorf("RSS %d MiB after the clients left, want less than %d MiB (%d MiB before)", after>>20, (before+16<<20)>>20, before>>20)
	}
}
