package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	followQueue = 256      // lines a follower may fall behind before lines are dropped: what a stalled one holds
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

	log *slog.Logger // where the sink's own failures are said

	mu      sync.Mutex // guards the fields below and orders whole lines
	f       *os.File
	fi      os.FileInfo // f's, to tell whether path still names it
	size    int64
	closed  bool
	ragged  bool                 // f ends inside a line a failed write cut: a newline comes first
	follows map[*Follower]string // each follower, and what its lines start with

	// last is the tail of the job's live (or last) process, for runs.tail,
	// which the pipes made for it feed (see openTail); nil: none is kept.
	last *tail

	checked time.Time // when path was last seen to name f

	// trouble is made when a write or a rotation fails, and let go of once
	// all is well again: most logs never fail (a sink of 224 bytes was
	// 160 without it; 5000 jobs hold 5000).
	trouble *sinkTrouble
}

// sinkTrouble is what a log sink remembers of its failures. Failures are
// said at most once per complainEvery (see complain).
type sinkTrouble struct {
	rotateErr error     // why the last rotation failed, nil if it did not
	rotatedAt time.Time // when rotation was last tried and failed
	saidAt    time.Time // when a failure was last said; zero while all is well
	failed    int       // writes that failed since
}

// troubled returns the sink's trouble, made if there is none.
func (l *logSink) troubled() *sinkTrouble {
	if l.trouble == nil {
		l.trouble = new(sinkTrouble)
	}
	return l.trouble
}

// settle lets go of the sink's trouble once it holds nothing.
func (l *logSink) settle() {
	if t := l.trouble; t != nil && *t == (sinkTrouble{}) {
		l.trouble = nil
	}
}

// complainEvery is how often at most a job's log failures are said in the
// daemon's log: a full disk fails every line a job writes.
const complainEvery = time.Minute

// recheckEvery is how often at most the sink checks that its file is still
// where it wrote it (someone may remove the logs dir), and retries a failed
// rotation.
const recheckEvery = time.Second

// Follower receives the new log lines of one job, or of several (each
// line then after its job's name).
type Follower struct {
	ch      chan string
	stream  string       // the only stream it gets, or "" for all
	dropped atomic.Int64 // lines it was too slow to take

	mu   sync.Mutex // guards open; taken after a log's mu, never before
	open int        // the logs that may still send to ch, and its maker: ch is closed when none is left
}

// newFollower returns a Follower of stream ("" for all) held open by its
// maker, who calls leave once it has attached it to its logs.
func newFollower(stream string) *Follower {
	return &Follower{ch: make(chan string, followQueue), stream: stream, open: 1}
}

// leave says that one log (or the maker) no longer sends to f; when none
// is left, Lines is closed.
func (f *Follower) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open--; f.open == 0 {
		close(f.ch)
	}
}

// Lines delivers the new lines; it is closed when the log is (the job was
// removed, the daemon stops).
func (f *Follower) Lines() <-chan string { return f.ch }

// Dropped returns how many lines were lost since it was last called,
// because the follower fell followQueue lines behind. Ask when Lines is
// empty: the loss is then all told.
func (f *Follower) Dropped() int64 { return f.dropped.Swap(0) }

// job is the name of the job whose log this is.
func (l *logSink) job() string { return strings.TrimSuffix(filepath.Base(l.path), ".log") }

func newLogSink(path string, maxSize int64, keep int) *logSink {
	return &logSink{path: path, maxSize: maxSize, keep: keep, log: slog.New(slog.DiscardHandler)}
}

// copyLines reads r to its end, writing each line as stream (and to t,
// nil-safe), and closes r.
// Memory stays bounded: a line longer than maxLine is written in pieces.
//
// While the job is quiet it holds no buffer: it waits for r to become
// readable through the runtime's poller and only then borrows one, drains
// the pipe and gives it back. A thousand quiet jobs so cost their
// goroutines' stacks, not a thousand 64 KiB buffers.
func (l *logSink) copyLines(r *os.File, stream string, t *tail) {
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
				carry = l.writeLines(stream, carry, (*buf)[:n], t)
			}
		})
		if err != nil {
			break
		}
	}
	if len(carry) > 0 {
		l.writeLine(stream, carry, t)
	}
}

// readBufs lends copyLines the buffers it reads into.
var readBufs = sync.Pool{New: func() any { b := make([]byte, maxLine); return &b }}

// writeLines writes the whole lines of carry+b (to t too, nil-safe) and
// returns what is left of the last one, cut to pieces of maxLine as it
// grows past it.
func (l *logSink) writeLines(stream string, carry, b []byte, t *tail) []byte {
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
			l.writeLine(stream, line[:maxLine], t)
			line = line[maxLine:]
		}
		l.writeLine(stream, line, t)
		b = b[i+1:]
	}
	for len(carry) >= maxLine {
		l.writeLine(stream, carry[:maxLine], t)
		carry = append(carry[:0], carry[maxLine:]...)
	}
	if len(carry) == 0 {
		return nil // let a long line's buffer go
	}
	return carry
}

// startTail gives the job's next process a tail of its own, of maxLines
// lines and maxBytes bytes, which the pipes made from now on feed (see
// openTail), and returns it; nil when either bound is 0 (no tail).
func (l *logSink) startTail(maxLines, maxBytes int) *tail {
	t := newTail(maxLines, maxBytes)
	l.mu.Lock()
	l.last = t
	l.mu.Unlock()
	return t
}

// openTail counts a new pipe of stream in the tail of the job's live
// process and returns that tail (nil when none is kept, or for the TEST's
// stream): the reader writes the pipe's lines to it, to the end, even
// once the job has started its next process, and calls its closed then.
func (l *logSink) openTail(stream string) *tail {
	if stream == StreamTest {
		return nil
	}
	l.mu.Lock()
	t := l.last
	l.mu.Unlock()
	t.opened()
	return t
}

// writeLine appends one line to the file and hands it to followers, and
// to t (nil-safe), the tail of the process whose pipe it came from.
func (l *logSink) writeLine(stream string, text []byte, t *tail) {
	now := time.Now()
	var b []byte
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
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
	if t != nil {
		t.add(stream, text)
	}
	l.complain(l.write(b, now), now)
	line := string(b[:len(b)-1])
	for f, prefix := range l.follows {
		if f.stream != "" && f.stream != stream {
			continue
		}
		select {
		case f.ch <- prefix + line:
		default:
			f.dropped.Add(1) // never wait for a follower
		}
	}
}

// complain says in the daemon's log that writing the job's log failed
// (err), at most once per complainEvery with the count of failures since,
// and once when a write works again. It needs no timer: each failure
// compares its time with the last complaint's.
func (l *logSink) complain(err error, now time.Time) {
	if err == nil && (l.trouble == nil || l.trouble.saidAt.IsZero()) {
		return // all is well: the path of every line
	}
	job := strings.TrimSuffix(filepath.Base(l.path), ".log")
	t := l.troubled()
	switch {
	case err == nil:
		l.log.Info("job log written again", "job", job, "failed", t.failed)
		t.saidAt, t.failed = time.Time{}, 0
	case t.saidAt.IsZero() || now.Sub(t.saidAt) >= complainEvery:
		l.log.Error("cannot write job log (said at most once a minute)", "job", job, "err", err, "failed", t.failed+1)
		t.saidAt, t.failed = now, 0
	default:
		t.failed++
	}
	l.settle()
}

// write appends b, one line, to the file. It makes each attempt once (no
// failure recurses or retries), so a failure costs a few system calls:
//   - the file is opened when none is, making the logs dir again if it is
//     gone; at most once per recheckEvery the sink checks that path still
//     names its file, and opens it anew if not (rm -r logs);
//   - before the file would pass maxSize it is rotated; if that fails the
//     line goes to the file all the same, and rotation is tried again
//     after recheckEvery;
//   - a write that a full disk cuts part-way is taken back (the file is
//     truncated to its last whole line); if that fails too, the next line
//     starts with a newline, so a cut line is never glued to another.
//
// Its error says why the line was lost, or why rotation failed.
func (l *logSink) write(b []byte, now time.Time) error {
	if l.f != nil && now.Sub(l.checked) >= recheckEvery {
		l.checked = now
		if fi, err := os.Stat(l.path); err != nil || !os.SameFile(fi, l.fi) {
			l.f.Close() // removed or replaced: write where LOGS reads
			l.f = nil
		}
	}
	if l.f == nil {
		if err := l.open(now); err != nil {
			return err
		}
	}
	if l.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.maxSize &&
		(l.trouble == nil || l.trouble.rotateErr == nil || now.Sub(l.trouble.rotatedAt) >= recheckEvery) {
		if err := l.rotate(); err != nil {
			t := l.troubled()
			t.rotateErr, t.rotatedAt = err, now
		} else {
			if t := l.trouble; t != nil {
				t.rotateErr, t.rotatedAt = nil, time.Time{}
				l.settle()
			}
			l.f.Close()
			l.f = nil
			if err := l.open(now); err != nil {
				return err
			}
		}
	}
	if l.ragged {
		b = append([]byte{'\n'}, b...)
	}
	n, err := l.f.Write(b)
	if err != nil && n > 0 {
		// Cut part-way: take the piece back, or end it at the next line.
		// The piece ends the file (O_APPEND), which may be shorter than
		// l.size says if someone emptied it (": > NAME.log" to free space):
		// truncating to l.size would then fill it with NUL bytes.
		if fi, serr := l.f.Stat(); serr == nil && l.f.Truncate(fi.Size()-int64(n)) == nil {
			l.size, n = fi.Size()-int64(n), 0
		} else {
			l.ragged = true
		}
	}
	l.size += int64(n)
	if err != nil {
		return err
	}
	l.ragged = false
	if t := l.trouble; t != nil && t.rotateErr != nil {
		return fmt.Errorf("rotate: %w (the log grows past -log-max-size until rotation works)", t.rotateErr)
	}
	return nil
}

// open opens the log file for appending, making the logs dir again if it
// is gone: removing it must not lose every later line.
func (l *logSink) open(now time.Time) error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(filepath.Dir(l.path), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	}
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.fi, l.size, l.checked, l.ragged = f, fi, fi.Size(), now, false
	return nil
}

// rotate renames NAME.log.K-1 to NAME.log.K, ..., NAME.log to NAME.log.1
// (with keep 0 it removes NAME.log). A file that is missing is skipped;
// any other failure stops it, so that NAME.log never replaces a file that
// was not moved on.
func (l *logSink) rotate() error {
	var err error
	if l.keep <= 0 {
		err = os.Remove(l.path)
	} else {
		for i := l.keep - 1; i >= 1 && (err == nil || errors.Is(err, fs.ErrNotExist)); i-- {
			err = os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
		}
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			err = os.Rename(l.path, l.path+".1")
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil // NAME.log is gone already (rm -r logs): open makes it again
	}
	return err
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
		delete(l.follows, f)
		f.leave()
	}
}

// follow returns a new Follower of stream (every stream when stream is
// "") and a function to stop following.
func (l *logSink) follow(stream string) (*Follower, func()) {
	f := newFollower(stream)
	stop := l.attach(f, "")
	f.leave()
	return f, stop
}

// attach makes f receive the log's new lines (of f.stream), each after
// prefix; detach undoes it. A closed log leaves f at once.
func (l *logSink) attach(f *Follower, prefix string) (detach func()) {
	f.mu.Lock()
	f.open++
	f.mu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		f.leave()
		return func() {}
	}
	if l.follows == nil {
		l.follows = make(map[*Follower]string) // made for the first follower: most logs have none
	}
	l.follows[f] = prefix
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		_, ok := l.follows[f]
		delete(l.follows, f)
		l.mu.Unlock()
		if ok {
			f.leave()
		}
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
	// Not through a symbolic link: LOGS shows the job's log, nothing else.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
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
