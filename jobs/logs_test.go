package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogTailAndRotation(t *testing.T) {
	dir := t.TempDir()
	l := newLogSink(filepath.Join(dir, "web.log"), 10<<10, 2)
	for i := range 300 {
		l.writeLine(StreamOut, fmt.Appendf(nil, "line %03d %s", i, strings.Repeat("x", 90)))
	}
	l.close()
	for _, name := range []string{"web.log", "web.log.1", "web.log.2"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() > 10<<10 {
			t.Errorf("%s: %v, %v", name, fi, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "web.log.3")); err == nil {
		t.Error("web.log.3 kept beyond -log-max-files 2")
	}
	got, err := l.tail(150)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 100 || !strings.Contains(got[len(got)-1], " out line 299 ") {
		t.Fatalf("tail(150): %d lines, last %q", len(got), got[len(got)-1])
	}
	for i := 1; i < len(got); i++ { // in order, across the rotated files
		var a, b int
		fmt.Sscanf(strings.Fields(got[i-1])[3], "%d", &a)
		fmt.Sscanf(strings.Fields(got[i])[3], "%d", &b)
		if b != a+1 {
			t.Fatalf("line %d follows line %d", b, a)
		}
	}
}

func TestLogTailIsBounded(t *testing.T) {
	l := newLogSink(filepath.Join(t.TempDir(), "big.log"), 0, 0)
	long := strings.Repeat("y", maxLine)
	for range 200 { // 12.8 MiB of 64 KiB lines
		l.writeLine(StreamOut, []byte(long))
	}
	got, err := l.tail(10000)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, line := range got {
		size += len(line) + 1
	}
	if size > maxTail || len(got) == 0 {
		t.Errorf("tail(10000) gave %d lines, %d bytes; want at most %d bytes", len(got), size, maxTail)
	}
}

func TestFollowerToldOfDroppedLines(t *testing.T) {
	l := newLogSink(filepath.Join(t.TempDir(), "f.log"), 0, 0)
	f, stop := l.follow()
	defer stop()
	for i := range followQueue + 500 {
		l.writeLine(StreamOut, fmt.Appendf(nil, "%d", i))
	}
	if n := len(f.Lines()); n != followQueue {
		t.Errorf("%d lines queued, want %d", n, followQueue)
	}
	if n := f.Dropped(); n != 500 {
		t.Errorf("Dropped() = %d, want 500", n)
	}
	if n := f.Dropped(); n != 0 {
		t.Errorf("Dropped() again = %d, want 0", n)
	}
}
