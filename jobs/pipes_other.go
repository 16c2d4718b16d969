//go:build !linux

package jobs

import (
	"log/slog"
	"os"
)

// pipeReader copies the output of every job's processes to their logs: on
// this system with a goroutine per pipe, each waiting through the
// runtime's poller (pipes_linux.go has one goroutine for all).
type pipeReader struct{}

func newPipeReader(*slog.Logger, *Holder) *pipeReader { return &pipeReader{} }

// pipe makes a pipe whose lines go to sink as stream, and returns its
// write end, for a child's stdout or stderr. Close it once the child has
// its copy: the lines end when every copy is closed.
func (p *pipeReader) pipe(sink *logSink, stream string) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	sink.readers.Add(1)
	t := sink.openTail(stream)
	go func() {
		sink.copyLines(r, stream, t)
		t.closed()
	}()
	return w, nil
}

// unheld is pipe: there is no holder here.
func (p *pipeReader) unheld(sink *logSink, stream string) (*os.File, int, error) {
	w, err := p.pipe(sink, stream)
	return w, -1, err
}

func (p *pipeReader) hold(r int) {}

func (p *pipeReader) stop() {}

// givePipe does nothing here: /dev/stdout duplicates the descriptor rather
// than reopening the pipe, and macOS cannot chown a pipe (EINVAL).
func givePipe(w *os.File, uid, gid int) error { return nil }

func (p *pipeReader) detach() ([]HandedPipe, int, error)              { return nil, -1, errNoUpgrade }
func (p *pipeReader) resume()                                         {}
func (p *pipeReader) takeEpoll(fd int) error                          { return errNoUpgrade }
func (p *pipeReader) adopt(h HandedPipe, sink *logSink, _ bool) error { return errNoUpgrade }
