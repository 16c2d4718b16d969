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
