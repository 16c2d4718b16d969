package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What is in the pipes when the reader stops is written, not dropped: the
// last lines of jobs stopped at shutdown. A removed job's log waits for its
// pipes (drain) before it closes.
func TestPipeReaderStopDrains(t *testing.T) {
	dir := t.TempDir()
	p := newPipeReader(nil, nil)
	var sinks []*logSink
	var ws []*os.File
	for i := range 20 {
		l := newLogSink(filepath.Join(dir, fmt.Sprintf("j%d.log", i)), 0, 0)
		sinks = append(sinks, l)
		w, err := p.pipe(l, StreamOut)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	// Written once the reading loop has ended, as by jobs whose last
	// lines it had not reached when the daemon stopped.
	p.halt()
	for _, w := range ws {
		w.WriteString("bye\ntail")
		w.Close()
	}
	p.drainAll()
	for i, l := range sinks {
		l.drain(time.Second)
		l.close()
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("j%d.log", i)))
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != 2 || !strings.HasSuffix(lines[0], " out bye") || !strings.HasSuffix(lines[1], " out tail") {
			t.Fatalf("j%d.log: %q, want bye then tail", i, b)
		}
	}
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}

// TestPipeTailOfItsProcess: the lines of a process's pipes go to its own
// run's tail, also those the reader gets to only after the job started
// its next process (a crash restarted at once): the last words of a
// process are in its run, not in the next one's.
func TestPipeTailOfItsProcess(t *testing.T) {
	p := newPipeReader(nil, nil)
	defer p.stop()
	l := newLogSink(filepath.Join(t.TempDir(), "j.log"), 0, 0)
	defer l.close()
	first := l.startTail(20, 4096)
	w, err := p.pipe(l, StreamErr)
	if err != nil {
		t.Fatal(err)
	}
	// Written, and the next process started, before the reader reads.
	p.halt()
	p.paused = true
	w.WriteString("panic: the end\n")
	w.Close()
	next := l.startTail(20, 4096)
	p.resume()
	if got := first.Text(time.Now()); got != "err panic: the end" {
		t.Errorf("the first process's tail = %q, want its last words", got)
	}
	if got := next.Text(time.Now()); got != "" {
		t.Errorf("the next process's tail = %q, want none of the first's lines", got)
	}
}
