package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestRotationFailureDoesNotRecurse gives a sink a log that is full from
// an earlier daemon and a NAME.log.1 that rotation cannot replace (a
// directory): each write must return, the lines must still be written,
// and the failure be said once.
func TestRotationFailureDoesNotRecurse(t *testing.T) {
	// A recursion would take minutes to pass the default 1 GB stack.
	defer debug.SetMaxStack(debug.SetMaxStack(16 << 20))
	dir := t.TempDir()
	path := filepath.Join(dir, "web.log")
	if err := os.WriteFile(path, bytes.Repeat([]byte("old line\n"), 200), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path+".1", "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	var said bytes.Buffer
	l := newLogSink(path, 1<<10, 1)
	l.log = slog.New(slog.NewTextHandler(&said, nil))
	t0 := time.Now()
	for i := range 100 {
		now := t0.Add(time.Duration(i) * 100 * time.Millisecond) // 10 s: ten retries
		err := l.write(fmt.Appendf(nil, "line %d\n", i), now)
		if err == nil || !strings.Contains(err.Error(), "rotate: ") {
			t.Fatalf("write %d: %v, want a rotation error", i, err)
		}
		l.complain(err, now)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("\nline 98\nline 99\n")) {
		t.Errorf("the lines were not kept while rotation failed; the log ends %q", b[max(0, len(b)-40):])
	}
	if n := strings.Count(said.String(), "cannot write job log"); n != 1 {
		t.Errorf("the failure was said %d times, want once:\n%s", n, said.String())
	}

	// Once rotation works it happens, and that is said.
	if err := os.RemoveAll(path + ".1"); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(11 * time.Second)
	err = l.write([]byte("rotated\n"), now)
	l.complain(err, now)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "rotated\n" {
		t.Errorf("after rotation the log holds %q", b)
	}
	if !strings.Contains(said.String(), "job log written again") || !strings.Contains(said.String(), "failed=99") {
		t.Errorf("the recovery was not said with the failures since:\n%s", said.String())
	}
}

// TestComplaintsAreRateLimited: failures are said at most once a minute
// per log, with how many there were since, and once when writing works.
func TestComplaintsAreRateLimited(t *testing.T) {
	full := errors.New("no space left on device")
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	steps := []struct {
		at   time.Time
		err  error
		said string // what the daemon's log gets, "" for nothing
	}{
		{at(0), nil, ""},
		{at(1), full, "level=ERROR msg=\"cannot write job log (said at most once a minute)\" job=web err=\"no space left on device\" failed=1"},
		{at(2), full, ""},
		{at(59), full, ""},
		{at(61), full, "level=ERROR msg=\"cannot write job log (said at most once a minute)\" job=web err=\"no space left on device\" failed=3"},
		{at(62), full, ""},
		{at(63), nil, "level=INFO msg=\"job log written again\" job=web failed=1"},
		{at(64), nil, ""},
		{at(65), full, "level=ERROR msg=\"cannot write job log (said at most once a minute)\" job=web err=\"no space left on device\" failed=1"},
	}
	var said bytes.Buffer
	l := newLogSink("/nowhere/web.log", 0, 0)
	l.log = slog.New(slog.NewTextHandler(&said, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	for i, s := range steps {
		said.Reset()
		l.complain(s.err, s.at)
		if got := strings.TrimSuffix(said.String(), "\n"); got != s.said {
			t.Errorf("step %d: said %q, want %q", i, got, s.said)
		}
	}
}

// TestLogDirRecreated: a removed logs dir is made again at the next write
// after recheckEvery, and the lines go where LOGS reads them.
func TestLogDirRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := newLogSink(filepath.Join(dir, "web.log"), 0, 0)
	t0 := time.Now()
	if err := l.write([]byte("before\n"), t0); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := l.write([]byte("after\n"), t0.Add(recheckEvery)); err != nil {
		t.Fatal(err)
	}
	l.close()
	got, err := l.tail(10, "")
	if err != nil || len(got) != 1 || got[0] != "after" {
		t.Errorf("tail after the logs dir was removed: %q, %v", got, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("logs dir: %v, %v; want it made again, 0700", fi, err)
	}
}
