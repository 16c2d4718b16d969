package jobs

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openFds counts this process's open descriptors.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHolder runs the pipe holder in this process: it holds each pipe only
// while a writer may still write to it, so its descriptors stay flat
// however many pipes come and go; when its daemon dies without a bye, it
// keeps the pipes that may bring lines and hands them to the next daemon.
func TestHolder(t *testing.T) {
	dir := t.TempDir()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- RunHolder(dir, fds[1]) }()
	h := &Holder{ctl: fds[0]}
	buf := make([]byte, 8)
	if n, _, _, _, err := unix.Recvmsg(h.ctl, buf, nil, 0); err != nil || string(buf[:n]) != "R" {
		t.Fatalf("holder's first word = %q, %v", buf[:n], err)
	}
	base := openFds(t)

	// 200 pipes whose writers wrote and went: none is left held.
	for range 200 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		h.hold(int(r.Fd()), "web", StreamOut)
		io.WriteString(w, "line\n")
		w.Close()
		io.ReadAll(r) // as the daemon does
		r.Close()
	}
	waitFor(t, "the holder still holds pipes whose writers are gone", func() bool { return openFds(t) == base })

	// The daemon dies with three pipes: one whose writer lives, one whose
	// writer went leaving a line, one whose writer went leaving nothing.
	pipe := func(job, line string, keepWriter bool) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		h.hold(int(r.Fd()), job, StreamErr)
		r.Close()
		io.WriteString(w, line)
		if !keepWriter {
			w.Close()
			return nil
		}
		return w
	}
	// The daemon dies with three pipes: one whose writer lives on, one
	// whose writer then goes leaving a line, one whose writer then goes
	// leaving nothing.
	w := pipe("live", "alive\n", true)
	defer w.Close()
	left := pipe("left", "last words\n", true)
	empty := pipe("empty", "", true)
	unix.Close(h.ctl) // no bye: a crash
	left.Close()
	empty.Close()
	// The live writer still writes: its pipe is whole.
	if _, err := io.WriteString(w, "after\n"); err != nil {
		t.Fatalf("write after the daemon died: %v", err)
	}
	held, err := Reclaim(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string)
	for _, hp := range held {
		unix.SetNonblock(int(hp.File.Fd()), true)
		b := make([]byte, 100)
		n, _ := hp.File.Read(b)
		got[hp.Job+" "+hp.Stream] = string(b[:max(n, 0)])
		hp.File.Close()
	}
	if len(got) != 2 || got["live err"] != "alive\nafter\n" || got["left err"] != "last words\n" {
		t.Errorf("reclaimed %q; want live's two lines and left's", got)
	}
	if err := <-done; err != nil {
		t.Errorf("RunHolder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, HoldSocket)); !os.IsNotExist(err) {
		t.Errorf("the holder's socket is still there: %v", err)
	}
	// With no holder, nothing is reclaimed.
	if held, err := Reclaim(dir); err != nil || len(held) != 0 {
		t.Errorf("Reclaim with no holder = %v, %v", held, err)
	}
}

// TestHolderBye: a daemon that stops in order says bye, and its holder
// goes at once, holding nothing for anyone.
func TestHolderBye(t *testing.T) {
	dir := t.TempDir()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- RunHolder(dir, fds[1]) }()
	buf := make([]byte, 8)
	if _, _, _, _, err := unix.Recvmsg(fds[0], buf, nil, 0); err != nil {
		t.Fatal(err)
	}
	r, w, _ := os.Pipe()
	defer w.Close()
	h := &Holder{ctl: fds[0]}
	h.hold(int(r.Fd()), "web", StreamOut)
	r.Close()
	unix.Sendmsg(fds[0], []byte("B"), nil, nil, 0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the holder is still there 10s after bye")
	}
	if _, err := io.WriteString(w, "x\n"); err == nil {
		t.Error("the pipe is still held after bye")
	}
}
