package jobs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The pipe reader turns what writers send, in any pieces, into whole log
// lines per stream: a line cut across writes is joined, one longer than
// maxLine is cut, and a last line without a newline is kept when the
// writers are gone. Several pipes are read at once.
func TestPipeReader(t *testing.T) {
	dir := t.TempDir()
	p := newPipeReader(nil, nil)
	defer p.stop()
	sinks := map[string]*logSink{}
	for _, name := range []string{"a", "b"} {
		sinks[name] = newLogSink(filepath.Join(dir, name+".log"), 0, 0)
	}
	long := strings.Repeat("x", maxLine+10)
	writes := map[string][]string{
		"a": {"one\ntw", "o\n", long + "\n", "last"},
		"b": {"b1\n", "b2\nb3\n"},
	}
	for name, ws := range writes {
		for _, stream := range []string{StreamOut, StreamErr} {
			w, err := p.pipe(sinks[name], stream)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range ws {
				if _, err := w.WriteString(s); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
		}
	}
	want := map[string][]string{
		"a": {"one", "two", long[:maxLine], long[maxLine:], "last"},
		"b": {"b1", "b2", "b3"},
	}
	for name, lines := range want {
		var got []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			if got = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(got) >= 2*len(lines) {
				break
			}
		}
		for _, stream := range []string{StreamOut, StreamErr} {
			var texts []string
			for _, l := range got {
				f := strings.SplitN(l, " ", 3)
				if len(f) == 3 && f[1] == stream {
					texts = append(texts, f[2])
				}
			}
			if strings.Join(texts, "|") != strings.Join(lines, "|") {
				t.Errorf("%s %s: got %d lines %.80q, want %d %.80q", name, stream, len(texts), texts, len(lines), lines)
			}
		}
	}
}

// drain waits for a log's pipes to end and their lines to be written, and
// gives up on a pipe that stays open (a leftover of the job holds it).
func TestLogDrain(t *testing.T) {
	dir := t.TempDir()
	p := newPipeReader(nil, nil)
	defer p.stop()
	l := newLogSink(filepath.Join(dir, "slow.log"), 0, 0)
	w, err := p.pipe(l, StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("last words\n")
	w.Close()
	l.drain(5 * time.Second)
	l.close()
	if b, _ := os.ReadFile(filepath.Join(dir, "slow.log")); !strings.HasSuffix(string(b), " out last words\n") {
		t.Fatalf("slow.log: %q", b)
	}
	held := newLogSink(filepath.Join(dir, "held.log"), 0, 0)
	w, err = p.pipe(held, StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	held.drain(50 * time.Millisecond) // a leftover keeps it open: gives up
}
