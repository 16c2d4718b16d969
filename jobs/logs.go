package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Log line streams, the second field of every log line.
const (
	StreamOut  = "out"  // the job's stdout
	StreamErr  = "err"  // the job's stderr
	StreamTest = "test" // its TEST's stdout and stderr
)

const (
	maxLine     = 64 << 10 // longer lines are cut into pieces of this size
	followQueue = 1024     // lines a follower may fall behind before lines are dropped
)

// logSink is one job's log: LogDir/NAME.log, rotated by size to NAME.log.1
// ... NAME.log.K, plus live followers. Every line is written whole as
// "TIME STREAM TEXT\n", so lines from stdout, stderr and the TEST never
// interleave.
//
// Rotation is a rename chain written here rather than a library: the usual
// one (lumberjack v2) starts a goroutine per log that never ends, which a
// daemon whose jobs come and go cannot afford, and names backups by time,
// which makes "the previous file" a directory scan.
type logSink struct {
	path    string
	maxSize int64 // rotate before a write would pass this; 0: never
	keep    int   // rotated files kept

	// readers counts the pipes still being read into this log: drain
	// waits for them before a removed job's log is closed.
	readers sync.WaitGroup

	mu      sync.Mutex // guards the fields below and orders whole lines
	f       *os.File
	size    int64
	closed  bool
	follows map[*Follower]bool
}

// Follower receives a job's new log lines.
type Follower struct {
	ch      chan string
	stream  string       // the only stream it gets, or "" for all
	dropped atomic.Int64 // lines it was too slow to take
}

// Lines delivers the new lines; it is closed when the log is (the job was
// removed, the daemon stops).
func (f *Follower) Lines() <-chan string { return f.ch }

// Dropped returns how many lines were lost since it was last called,
// because the follower fell followQueue lines behind. Ask when Lines is
// empty: the loss is then all told.
func (f *Follower) Dropped() int64 { return f.dropped.Swap(0) }

func newLogSink(path string, maxSize int64, keep int) *logSink {
	return &logSink{path: path, maxSize: maxSize, keep: keep, follows: make(map[*Follower]bool)}
}

// copyLines reads r to its end, writing each line as stream, and closes r.
// Memory stays bounded: a line longer than maxLine is written in pieces.
//
// While the job is quiet it holds no buffer: it waits for r to become
// readable through the runtime's poller and only then borrows one, drains
// the pipe and gives it back. A thousand quiet jobs so cost their
// goroutines' stacks, not a thousand 64 KiB buffers.
func (l *logSink) copyLines(r *os.File, stream string) {
	defer l.readers.Done()
	defer r.Close()
	rc, err := r.SyscallConn()
	if err != nil {
		return
	}
	var carry []byte // the start of a line a read ended inside
	eof := false
	for !eof {
		err := rc.Read(func(fd uintptr) bool {
			buf := readBufs.Get().(*[]byte)
			defer readBufs.Put(buf)
			for {
				n, err := syscall.Read(int(fd), *buf)
				switch {
				case err == syscall.EINTR:
					continue
				case err == syscall.EAGAIN:
					return false // drained: wait for more
				case n <= 0:
					eof = true // the writers are gone, or the pipe broke
					return true
				}
				carry = l.writeLines(stream, carry, (*buf)[:n])
			}
		})
		if err != nil {
			break
		}
	}
	if len(carry) > 0 {
		l.writeLine(stream, carry)
	}
}

// readBufs lends copyLines the buffers it reads into.
var readBufs = sync.Pool{New: func() any { b := make([]byte, maxLine); return &b }}

// writeLines writes the whole lines of carry+b and returns what is left of
// the last one, cut to pieces of maxLine as it grows past it.
func (l *logSink) writeLines(stream string, carry, b []byte) []byte {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			carry = append(carry, b...)
			break
		}
		line := b[:i]
		if len(carry) > 0 {
			carry = append(carry, line...)
			line, carry = carry, carry[:0]
		}
		for len(line) > maxLine {
			l.writeLine(stream, line[:maxLine])
			line = line[maxLine:]
		}
		l.writeLine(stream, line)
		b = b[i+1:]
	}
	for len(carry) >= maxLine {
		l.writeLine(stream, carry[:maxLine])
		carry = append(carry[:0], carry[maxLine:]...)
	}
	if len(carry) == 0 {
		return nil // let a long line's buffer go
	}
	return carry
}

// writeLine appends one line to the file and hands it to followers.
func (l *logSink) writeLine(stream string, text []byte) {
	var b []byte
	b = time.Now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if err := l.write(b); err != nil {
		// Nowhere better to say it: the log is what failed.
		fmt.Fprintf(os.Stderr, "overseerd: write %s: %v\n", l.path, err)
	}
	line := string(b[:len(b)-1])
	for f := range l.follows {
		if f.stream != "" && f.stream != stream {
			continue
		}
		select {
		case f.ch <- line:
		default:
			f.dropped.Add(1) // never wait for a follower
		}
	}
}

func (l *logSink) write(b []byte) error {
	if l.f != nil && l.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.maxSize {
		l.f.Close()
		l.f = nil
		l.rotate()
	}
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		l.f, l.size = f, fi.Size()
		if l.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.maxSize {
			return l.write(b) // full from an earlier daemon: rotate first
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	return err
}

// rotate renames NAME.log.K-1 to NAME.log.K, ..., NAME.log to NAME.log.1.
func (l *logSink) rotate() {
	if l.keep <= 0 {
		os.Remove(l.path)
		return
	}
	for i := l.keep - 1; i >= 1; i-- {
		os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
	}
	os.Rename(l.path, l.path+".1")
}

// drain waits until every pipe into the log has ended and its lines are
// written, at most limit: a leftover of the job may keep a pipe open.
func (l *logSink) drain(limit time.Duration) {
	done := make(chan struct{})
	go func() {
		l.readers.Wait()
		close(done)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// drainLimit bounds how long a removed job's log waits for its last lines.
const drainLimit = 500 * time.Millisecond

// close stops writing and ends every follower.
func (l *logSink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	for f := range l.follows {
		close(f.ch)
		delete(l.follows, f)
	}
}

// follow returns a new Follower of stream (every stream when stream is
// "") and a function to stop following.
func (l *logSink) follow(stream string) (*Follower, func()) {
	f := &Follower{ch: make(chan string, followQueue), stream: stream}
	l.mu.Lock()
	if l.closed {
		close(f.ch)
	} else {
		l.follows[f] = true
	}
	l.mu.Unlock()
	return f, func() {
		l.mu.Lock()
		if l.follows[f] {
			delete(l.follows, f)
			close(f.ch)
		}
		l.mu.Unlock()
	}
}

// tail returns the last n lines of the log of stream (all streams when
// stream is ""), reaching into rotated files when the current one holds
// fewer, and at most maxTail bytes of them (the newest), so that a request
// for many long lines cannot swell the daemon.
func (l *logSink) tail(n int, stream string) ([]string, error) {
	var out []string
	budget := maxTail
	for i := 0; i <= l.keep && len(out) < n && budget > 0; i++ {
		path := l.path
		if i > 0 {
			path += "." + strconv.Itoa(i)
		}
		lines, size, err := lastLines(path, n-len(out), budget, stream)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(lines, out...)
		budget -= size
	}
	return out, nil
}

// maxTail bounds the bytes one LOGS answer reads from the files.
const maxTail = 4 << 20

// lastLines reads the file at path from its end and returns its last n
// whole lines of stream (any stream when stream is ""), at most limit bytes
// of them, in order, and their size. Memory stays bounded by limit and a
// chunk, however much of the file it reads to find them.
func lastLines(path string, n, limit int, stream string) ([]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, err
	}
	if off > 0 { // leave out the newline that ends the last line
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, off-1); err != nil {
			return nil, 0, err
		}
		if last[0] == '\n' {
			off--
		}
	}
	const chunk = 64 << 10
	var out []string // newest first
	total := 0
	var rest []byte // the file from off up to the lines looked at: its first line may be cut
	for len(out) < n && (off > 0 || len(rest) > 0) {
		if off > 0 {
			if len(rest) > limit {
				break // a line longer than the answer may be: nothing older can come
			}
			c := min(int64(chunk), off)
			off -= c
			b := make([]byte, int(c), int(c)+len(rest))
			if _, err := f.ReadAt(b, off); err != nil {
				return nil, 0, err
			}
			rest = append(b, rest...)
		}
		// Take the whole lines at the end of rest, newest first.
		for len(out) < n {
			i := bytes.LastIndexByte(rest, '\n')
			if i < 0 && off > 0 {
				break // its start is in the part not read yet
			}
			line := rest[i+1:]
			rest = rest[:max(i, 0)]
			if stream == "" || string(lineStream(line)) == stream {
				if total+len(line)+1 > limit {
					slices.Reverse(out)
					return out, total, nil
				}
				total += len(line) + 1
				out = append(out, string(line))
			}
			if i < 0 {
				break // the file's first line
			}
		}
	}
	slices.Reverse(out)
	return out, total, nil
}

// lineStream returns the STREAM field of a log line "TIME STREAM TEXT".
func lineStream(line []byte) []byte {
	_, after, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil
	}
	s, _, _ := bytes.Cut(after, []byte(" "))
	return s
}
