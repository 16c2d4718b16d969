package jobs

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Tail defaults: the last lines of a run kept in memory, and in runs.tail
// once it ends (the daemon's -tail-lines and -tail-bytes).
const (
	DefaultTailLines = 20
	DefaultTailBytes = 4 << 10
)

// tail holds the last lines one run's process wrote on stdout and stderr,
// as the daemon read them on their way to the log: at most maxLines lines
// and maxBytes bytes of text. It costs a small struct until the first
// line, then a slice of maxLines strings: 5000 quiet jobs cost little, and
// none more than its bounds. A run gets a tail of its own at each start
// (logSink.startTail), which the pipes made for its process feed to their
// end: what the reader gets from the old process's pipes after the next
// start (a crash restarted at once) is the old run's last words, never
// the new one's.
type tail struct {
	maxLines, maxBytes int

	mu    sync.Mutex
	lines []tailLine // a ring of up to maxLines, made on the first line
	first int        // index of the oldest line in lines
	n     int        // lines held
	bytes int        // text bytes held
	// open counts the process's stdout and stderr pipes not yet read to
	// their end; drained is closed when it drops to 0 (nil until Text
	// waits for it: a channel for each of 5000 running jobs was half a
	// megabyte).
	open    int
	drained chan struct{}
	wait    time.Duration // tailWait; tests make it longer
}

// tailWait bounds how long Text waits for the pipes of a process that
// ended to be read to their end: what it wrote just before it exited may
// still be in them when the store writes its exit. Their end comes within
// a read or two, unless something it left behind holds them open.
const tailWait = 100 * time.Millisecond

type tailLine struct {
	stream string // StreamOut or StreamErr
	text   string
}

// newTail returns an empty tail of maxLines lines and maxBytes bytes, or
// nil when either is 0 or less: no tail is kept.
func newTail(maxLines, maxBytes int) *tail {
	if maxLines <= 0 || maxBytes <= 0 {
		return nil
	}
	return &tail{maxLines: maxLines, maxBytes: maxBytes, wait: tailWait}
}

// add keeps line, cut to maxBytes at a character's edge (or at maxBytes,
// when no character starts within a character's length of it: bytes that
// are no UTF-8), and forgets the oldest lines it no longer has room for.
func (t *tail) add(stream string, line []byte) {
	if len(line) > t.maxBytes {
		cut := t.maxBytes
		for cut > 0 && cut > t.maxBytes-(utf8.UTFMax-1) && !utf8.RuneStart(line[cut]) {
			cut--
		}
		if !utf8.RuneStart(line[cut]) {
			cut = t.maxBytes
		}
		line = line[:cut]
	}
	text := string(line)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lines == nil {
		t.lines = make([]tailLine, t.maxLines)
	}
	for t.n > 0 && (t.n == t.maxLines || t.bytes+len(text) > t.maxBytes) {
		t.bytes -= len(t.lines[t.first].text)
		t.lines[t.first] = tailLine{}
		t.first = (t.first + 1) % t.maxLines
		t.n--
	}
	t.lines[(t.first+t.n)%t.maxLines] = tailLine{stream, text}
	t.n++
	t.bytes += len(text)
}

// opened counts one more pipe whose lines come to t; nil-safe.
func (t *tail) opened() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open++
}

// closed says that one of t's pipes was read to its end; nil-safe.
func (t *tail) closed() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open--; t.open == 0 && t.drained != nil {
		close(t.drained)
		t.drained = nil
	}
}

// Text returns the lines held, oldest first, in the form of runs.tail
// (schema_v9.sql): one line each, "out " or "err " and the line's text,
// apart by newlines; "" when there are none. It first waits for the
// process's pipes to be read to their end, until tailWait after end, when
// the process ended: the store calls it from its writer, never on the
// restart path, and a writer that is behind (a crash storm whose jobs
// leave something holding their pipes) waits for none of the exits it
// catches up with, rather than tailWait for each.
func (t *tail) Text(end time.Time) string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	open := t.open
	if open > 0 && t.drained == nil {
		t.drained = make(chan struct{})
	}
	drained := t.drained
	t.mu.Unlock()
	if left := time.Until(end.Add(t.wait)); open > 0 && left > 0 {
		wait := time.NewTimer(left)
		select {
		case <-drained:
		case <-wait.C:
		}
		wait.Stop()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for i := range t.n {
		l := t.lines[(t.first+i)%t.maxLines]
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l.stream)
		b.WriteByte(' ')
		b.WriteString(l.text)
	}
	return b.String()
}
