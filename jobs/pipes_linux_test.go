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

// TestPipeHeldAfterFork: a start's pipe goes to the holder only when
// hold gives it (after the fork), once, and a new holder is given only
// the pipes given to the old one.
func TestPipeHeldAfterFork(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	h := &Holder{ctl: fds[0]}
	defer unix.Close(fds[0])
	p := newPipeReader(nil, h)
	defer p.stop()
	sent := func() []string {
		var got []string
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
		for {
			n, oobn, _, _, err := unix.Recvmsg(fds[1], buf, oob, 0)
			if err != nil {
				return got
			}
			if msgs, _ := unix.ParseSocketControlMessage(oob[:oobn]); len(msgs) == 1 {
				if rights, _ := unix.ParseUnixRights(&msgs[0]); len(rights) == 1 {
					unix.Close(rights[0])
				}
			}
			got = append(got, string(buf[:n]))
		}
	}
	dir := t.TempDir()
	web := newLogSink(filepath.Join(dir, "web.log"), 0, 0)
	w1, r1, err := p.unheld(web, StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, r2, err := p.unheld(web, StreamErr)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if got := sent(); len(got) != 0 {
		t.Fatalf("before hold, the holder was sent %q", got)
	}
	p.hold(r1)
	p.hold(r1)
	if got := sent(); len(got) != 1 || got[0] != "P web out" {
		t.Fatalf("after hold twice, the holder was sent %q, want one \"P web out\"", got)
	}
	var reheld []int
	p.rehold(func(fd int, job, stream string) { reheld = append(reheld, fd) })
	if len(reheld) != 1 || reheld[0] != r1 {
		t.Fatalf("rehold gave %v, want only the held pipe %d (not %d)", reheld, r1, r2)
	}
}
