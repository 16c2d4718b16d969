package jobs

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeReader copies the output of every job's processes to their logs in
// one goroutine, waiting on all the pipes at once with epoll. A goroutine
// per pipe would cost two stacks per job (about 7 MB at 1000 jobs); this
// costs one goroutine, one OS thread blocked in epoll_wait while all is
// quiet, and one read buffer.
type pipeReader struct {
	log    *slog.Logger
	epfd   int // -1: epoll is unavailable; a goroutine per pipe then
	wakefd int // an eventfd that stop writes to

	holder *Holder // keeps a copy of each read end, should the daemon die; nil: none

	mu    sync.Mutex
	pipes map[int]*pipe // by the read end's fd

	done   chan struct{} // closed when run has returned
	paused bool          // detach ended run, for resume to start again
}

// pipe is the read end of one stream's pipe.
type pipe struct {
	sink   *logSink
	stream string
	carry  []byte // the start of a line a read ended inside
	tail   *tail  // the tail its lines go to, told when it ends; nil: none
	held   bool   // the holder has (been sent) a copy
}

func newPipeReader(log *slog.Logger, holder *Holder) *pipeReader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &pipeReader{log: log, holder: holder, epfd: -1, wakefd: -1, pipes: make(map[int]*pipe), done: make(chan struct{})}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		log.Warn("no epoll: reading each job's output in a goroutine of its own", "err", err)
		close(p.done)
		return p
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)})
	}
	if err != nil {
		log.Warn("no eventfd: reading each job's output in a goroutine of its own", "err", err)
		unix.Close(epfd)
		if wakefd >= 0 {
			unix.Close(wakefd)
		}
		close(p.done)
		return p
	}
	p.epfd, p.wakefd = epfd, wakefd
	holder.setRehold(p.rehold)
	go p.run()
	return p
}

// rehold hands every pipe read to hold: a new pipe holder's (Holder.watch).
func (p *pipeReader) rehold(hold func(fd int, job, stream string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for fd, pp := range p.pipes {
		if pp.held {
			hold(fd, pp.sink.job(), pp.stream)
		}
	}
}

// pipe makes a pipe whose lines go to sink as stream, and returns its
// write end, for a child's stdout or stderr. Close it once the child has
// its copy: the lines end when every copy is closed.
func (p *pipeReader) pipe(sink *logSink, stream string) (*os.File, error) {
	w, r, err := p.unheld(sink, stream)
	if err == nil {
		p.hold(r)
	}
	return w, err
}

// unheld is pipe without the holder's copy: hold(r) gives it. A start
// gives it after the fork, off the way from a job's exit to its restart:
// a start the daemon died before recording is not adopted (the next
// daemon stops its process), so no process adopted lacks its copy. r is
// -1 when there is nothing to hold.
func (p *pipeReader) unheld(sink *logSink, stream string) (w *os.File, r int, err error) {
	if p.epfd < 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, -1, err
		}
		sink.readers.Add(1)
		t := sink.openTail(stream)
		go func() {
			sink.copyLines(r, stream, t)
			t.closed()
		}()
		return w, -1, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, -1, os.NewSyscallError("pipe2", err)
	}
	r, wfd := fds[0], fds[1]
	// Only our end is non-blocking: the child's stays as programs expect.
	err = unix.SetNonblock(r, true)
	if err == nil {
		sink.readers.Add(1)
		p.mu.Lock()
		p.pipes[r] = &pipe{sink: sink, stream: stream, tail: sink.openTail(stream)}
		p.mu.Unlock()
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, r, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r)})
		if err != nil {
			p.mu.Lock()
			pp := p.pipes[r]
			delete(p.pipes, r)
			p.mu.Unlock()
			pp.tail.closed()
			sink.readers.Done()
		}
	}
	if err != nil {
		unix.Close(r)
		unix.Close(wfd)
		return nil, -1, os.NewSyscallError("epoll_ctl", err)
	}
	return os.NewFile(uintptr(wfd), "|1"), r, nil
}

// hold hands the holder a copy of the read end r of a pipe made by
// unheld, whose write end is still open (so r is still the pipe's). The
// holder's copy keeps the pipe whole should the daemon die: the job's
// writes then block once it is full rather than kill it.
func (p *pipeReader) hold(r int) {
	if r < 0 || p.holder == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.pipes[r]
	if pp == nil || pp.held {
		return
	}
	pp.held = true
	p.holder.hold(r, strings.TrimSuffix(filepath.Base(pp.sink.path), ".log"), pp.stream)
}

// run copies lines until stop. It reads each ready pipe once per round
// (level-triggered epoll brings it back if more is waiting), so a job that
// writes without pause cannot keep the others' lines waiting.
func (p *pipeReader) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, maxLine)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			p.log.Error("epoll_wait: job output is no longer read", "err", err)
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == p.wakefd {
				return
			}
			p.mu.Lock()
			pp := p.pipes[fd]
			p.mu.Unlock()
			if pp == nil {
				continue
			}
			n, err := unix.Read(fd, buf)
			switch {
			case n > 0:
				pp.carry = pp.sink.writeLines(pp.stream, pp.carry, buf[:n], pp.tail)
			case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
			default: // every writer is gone (n == 0), or the pipe broke
				p.remove(fd, pp)
			}
		}
	}
}

// remove writes what is left of fd's last line and closes it.
func (p *pipeReader) remove(fd int, pp *pipe) {
	if len(pp.carry) > 0 {
		pp.sink.writeLine(pp.stream, pp.carry, pp.tail)
	}
	p.mu.Lock()
	delete(p.pipes, fd)
	p.mu.Unlock()
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	unix.Close(fd)
	pp.tail.closed()
	pp.sink.readers.Done()
}

// stop ends run and closes every pipe still open (their processes are
// gone, or outlived their job).
func (p *pipeReader) stop() {
	if p.epfd < 0 {
		return
	}
	p.halt()
	p.drainAll()
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
	p.epfd = -1
}

// halt ends run.
func (p *pipeReader) halt() {
	unix.Write(p.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	<-p.done
}

// drainAll reads every pipe still open and closes it.
func (p *pipeReader) drainAll() {
	// What the processes wrote before they went is still in the pipes:
	// read it to the end, or to what a leftover has not written yet.
	buf := make([]byte, maxLine)
	p.mu.Lock()
	open := make(map[int]*pipe, len(p.pipes))
	for fd, pp := range p.pipes {
		open[fd] = pp
	}
	p.mu.Unlock()
	for fd, pp := range open {
		for {
			n, err := unix.Read(fd, buf)
			if n <= 0 {
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				break
			}
			pp.carry = pp.sink.writeLines(pp.stream, pp.carry, buf[:n], pp.tail)
		}
		p.remove(fd, pp)
	}
}

// givePipe makes a pipe's write end the job user's: on Linux /dev/stdout
// reopens the pipe (through /proc/self/fd), which takes the right to.
func givePipe(w *os.File, uid, gid int) error { return w.Chown(uid, gid) }

// detach ends run and forgets every pipe without closing it, for an
// upgrade: their read ends go to the next image (see Manager.Detach), and
// so does the epoll instance (returned), whose interest list still holds
// them all: the next image takes it (takeEpoll) rather than registering
// each pipe again (two epoll_ctl calls per pipe cost ~8 ms of the pause at
// 1000 jobs). resume undoes it, should the upgrade fail.
func (p *pipeReader) detach() ([]HandedPipe, int, error) {
	if p.epfd < 0 {
		return nil, -1, errors.New("job output is read without epoll here")
	}
	p.halt()
	p.paused = true
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]HandedPipe, 0, len(p.pipes))
	for fd, pp := range p.pipes {
		out = append(out, HandedPipe{FD: fd, Job: pp.sink.job(), Stream: pp.stream, Carry: pp.carry})
		pp.sink.readers.Done()
		delete(p.pipes, fd)
	}
	return out, p.epfd, nil
}

// resume runs run again after detach or takeEpoll.
func (p *pipeReader) resume() {
	if p.epfd < 0 || !p.paused {
		return // run runs
	}
	p.paused = false
	var b [8]byte
	unix.Read(p.wakefd, b[:]) // halt's wake-up, still counted
	p.done = make(chan struct{})
	go p.run()
}

// takeEpoll makes fd, the epoll instance an earlier image of this process
// handed over (detach), the one p waits on, its pipes still registered:
// adopt them with registered set. It leaves run ended until resume, so
// that no pipe is ready before it is adopted. fd p's own instance (an
// upgrade that failed) changes nothing. On error p keeps its own, and
// each pipe must be registered again.
func (p *pipeReader) takeEpoll(fd int) error {
	if p.epfd < 0 {
		return errors.New("job output is read without epoll here")
	}
	if fd == p.epfd {
		return nil
	}
	if !p.paused {
		p.halt()
		p.paused = true
	}
	var b [8]byte
	unix.Read(p.wakefd, b[:]) // halt's wake-up: not for the new instance
	if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, p.wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.wakefd)}); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	unix.Close(p.epfd)
	p.epfd = fd
	return nil
}

// adopt reads the pipe h.FD, handed over by an earlier image, into sink.
// registered: it is in p's epoll instance already (takeEpoll), and its
// descriptor close-on-exec and non-blocking as detach left it (the
// caller marks every descriptor close-on-exec again after an exec, or one
// that failed); else it is made so and registered.
func (p *pipeReader) adopt(h HandedPipe, sink *logSink, registered bool) error {
	if p.epfd < 0 {
		return errors.New("job output is read without epoll here")
	}
	if !registered {
		unix.CloseOnExec(h.FD)
		if err := unix.SetNonblock(h.FD, true); err != nil {
			return err
		}
	}
	sink.readers.Add(1)
	p.mu.Lock()
	// Its lines go to the tail of the job's process as adopted (Manager.Adopt
	// gives it one first).
	p.pipes[h.FD] = &pipe{sink: sink, stream: h.Stream, carry: h.Carry, tail: sink.openTail(h.Stream)}
	p.mu.Unlock()
	if registered {
		return nil
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, h.FD, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(h.FD)}); err != nil {
		p.mu.Lock()
		pp := p.pipes[h.FD]
		delete(p.pipes, h.FD)
		p.mu.Unlock()
		pp.tail.closed()
		sink.readers.Done()
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}
