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
		l.writeLine(StreamOut, fmt.Appendf(nil, "line %03d %s", i, strings.Repeat("x", 90)), nil)
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
	got, err := l.tail(150, "")
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
		l.writeLine(StreamOut, []byte(long), nil)
	}
	got, err := l.tail(10000, "")
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
	f, stop := l.follow("")
	defer stop()
	for i := range followQueue + 500 {
		l.writeLine(StreamOut, fmt.Appendf(nil, "%d", i), nil)
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

// TestLastLinesByStream compares lastLines with a plain reading of the
// whole file, for every stream and count, on lines long and short, with
// and without a newline at the end.
func TestLastLinesByStream(t *testing.T) {
	dir := t.TempDir()
	var all []string
	streams := []string{StreamOut, StreamErr, StreamTest}
	for i := range 400 {
		text := fmt.Sprint(i)
		if i%37 == 0 {
			text += strings.Repeat("z", 70<<10) // longer than a chunk
		}
		all = append(all, fmt.Sprintf("2026-11-22T01:02:03.188Z %s %s", streams[(i*i)%3], text))
	}
	for _, end := range []string{"\n", ""} {
		path := filepath.Join(dir, "web.log")
		if err := os.WriteFile(path, []byte(strings.Join(all, "\n")+end), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, stream := range []string{"", StreamOut, StreamErr, StreamTest, "nope"} {
			var want []string
			for _, l := range all {
				if stream == "" || strings.Fields(l)[1] == stream {
					want = append(want, l)
				}
			}
			for _, n := range []int{0, 1, 2, 50, 133, 1000} {
				got, size, err := lastLines(path, n, maxTail, stream)
				if err != nil {
					t.Fatal(err)
				}
				w := want[max(0, len(want)-n):]
				if len(got) != len(w) || (len(w) > 0 && (got[0] != w[0] || got[len(got)-1] != w[len(w)-1])) {
					t.Fatalf("end %q, stream %q, n %d: got %d lines, want %d", end, stream, n, len(got), len(w))
				}
				total := 0
				for i := range got {
					if got[i] != w[i] {
						t.Fatalf("end %q, stream %q, n %d: line %d differs", end, stream, n, i)
					}
					total += len(got[i]) + 1
				}
				if size != total {
					t.Errorf("size %d, want %d", size, total)
				}
			}
		}
	}
}

func TestFollowerOfOneStream(t *testing.T) {
	l := newLogSink(filepath.Join(t.TempDir(), "f.log"), 0, 0)
	f, stop := l.follow(StreamErr)
	defer stop()
	l.writeLine(StreamOut, []byte("a"), nil)
	l.writeLine(StreamErr, []byte("b"), nil)
	l.writeLine(StreamTest, []byte("c"), nil)
	if n := len(f.Lines()); n != 1 {
		t.Fatalf("%d lines queued, want 1", n)
	}
	if line := <-f.Lines(); !strings.HasSuffix(line, " err b") {
		t.Errorf("got %q", line)
	}
}
