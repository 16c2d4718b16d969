package jobs

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The pipe holder keeps a copy of the read end of every job's output pipe
// in a small process of its own (`overseerd -hold DATA-DIR`, one per
// daemon), so that a job that writes does not die of SIGPIPE (or EPIPE)
// when the daemon is killed: while the holder has its copy the pipe stays
// whole, and a writer blocks once the pipe is full (64 KiB on Linux)
// instead. The next daemon takes the copies back through HoldSocket and
// writes what the pipes hold to the jobs' logs.
//
// The daemon hands each read end over when it makes the pipe
// (SCM_RIGHTS on a SOCK_SEQPACKET socketpair); the holder drops it once
// the pipe has no writer left (EPOLLHUP, which epoll reports unasked), so
// it holds one descriptor per live pipe and nothing else. At an orderly
// exit the daemon says "bye" and the holder goes; when the socketpair ends
// without it, the daemon died: the holder keeps every pipe that may still
// bring lines and waits for the next daemon, or ends once no pipe is left.
//
// Messages, one per packet: daemon to holder "P JOB STREAM" with one
// descriptor, and "B" (bye); holder to daemon "R" once it listens; holder
// to the next daemon "P JOB STREAM" with a descriptor for each pipe, then
// "E".

// HoldSocket is the name, in the data dir, of the socket on which the pipe
// holder of a daemon that died hands its pipes to the next one.
const HoldSocket = "overseer.hold"

// HoldFlag is the daemon's argument that makes it the pipe holder:
// overseerd -hold DATA-DIR, with the socketpair as descriptor 3.
const HoldFlag = "-hold"

// holderWait bounds how long the daemon waits for its holder to answer,
// and a holder for its dead daemon's socketpair to end.
const holderWait = 5 * time.Second

// Holder is the daemon's side of its pipe holder. Its methods may be
// called from any goroutine. A holder that ends while the daemon lives
// (killed on its own) is replaced at once (watch), and given every pipe
// the daemon reads (rehold), so that crash protection comes back.
type Holder struct {
	reaper   *Reaper
	exe, dir string

	mu     sync.Mutex // guards the fields below, and orders sends with Close
	ctl    int        // our end of the socketpair
	pid    int
	gone   chan struct{} // closed when the holder process pid has ended
	failed bool          // a hand-over failed: said once
	bye    bool          // Close began: a holder that ends is not replaced
	closed bool          // ctl is closed
	rehold func(hold func(fd int, job, stream string))
	log    func(msg string, args ...any)

	closing sync.Once
}

// StartHolder starts the pipe holder of the daemon of data dir dir, the
// program exe, and waits until it listens. reaper collects it when it ends.
func StartHolder(reaper *Reaper, exe, dir string, warn func(msg string, args ...any)) (*Holder, error) {
	ctl, pid, exited, err := spawnHolder(reaper, exe, dir)
	if err != nil {
		return nil, err
	}
	h := &Holder{reaper: reaper, exe: exe, dir: dir, ctl: ctl, pid: pid, gone: make(chan struct{}), log: warn}
	go h.watch(exited, h.gone)
	return h, nil
}

// watch waits for the holder process to end (the reaper says so: no
// polling). Unless the daemon is closing it, it was killed on its own:
// a new one is started and handed every pipe the daemon reads.
func (h *Holder) watch(exited <-chan Exit, gone chan struct{}) {
	for {
		<-exited
		close(gone)
		h.mu.Lock()
		if h.bye || h.closed {
			h.mu.Unlock()
			return
		}
		ctl, pid, ex, err := spawnHolder(h.reaper, h.exe, h.dir)
		if err != nil {
			h.failed = true
			h.mu.Unlock()
			h.log("pipe holder ended, and no new one starts: a job that writes would die of SIGPIPE should the daemon die", "err", err)
			return
		}
		old := h.pid
		unix.Close(h.ctl)
		h.ctl, h.pid, h.failed = ctl, pid, false
		h.gone = make(chan struct{})
		exited, gone = ex, h.gone
		rehold := h.rehold
		h.mu.Unlock()
		h.log("pipe holder ended: started a new one", "old", old, "pid", pid)
		if rehold != nil {
			rehold(h.hold)
		}
		h.log("pipe holder holds every pipe again", "pid", pid)
	}
}

// setRehold gives the holder the function that hands a new holder every
// pipe the daemon reads.
func (h *Holder) setRehold(f func(hold func(fd int, job, stream string))) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.rehold = f
	h.mu.Unlock()
}

// spawnHolder starts a holder process and waits until it listens; ctl is
// our end of its socketpair.
func spawnHolder(reaper *Reaper, exe, dir string) (ctl, pid int, exited <-chan Exit, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("pipe holder: socketpair: %w", err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "holder")
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{"overseerd", HoldFlag, dir},
		ExtraFiles: []*os.File{theirs}, // descriptor 3
		// Its own session: a Ctrl-C meant for a foreground daemon, or a
		// stop of a job's group, never reaches it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	pid, exited, err = reaper.Start(cmd)
	theirs.Close()
	if err != nil {
		unix.Close(fds[0])
		return 0, 0, nil, fmt.Errorf("pipe holder: %w", err)
	}
	ctl = fds[0]
	tv := unix.NsecToTimeval(holderWait.Nanoseconds())
	unix.SetsockoptTimeval(ctl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, 16)
	n, _, _, _, err := unix.Recvmsg(ctl, buf, nil, 0)
	if err != nil || n != 1 || buf[0] != 'R' {
		unix.Close(ctl)
		if err == nil {
			err = errors.New("it did not start")
		}
		return 0, 0, nil, fmt.Errorf("pipe holder: %w", err)
	}
	return ctl, pid, exited, nil
}

// hold hands the holder a copy of a pipe's read end fd, of job's stream.
// A failure is said once; the job runs on all the same, only without the
// holder's copy.
func (h *Holder) hold(fd int, job, stream string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	err := unix.Sendmsg(h.ctl, []byte("P "+job+" "+stream), unix.UnixRights(fd), nil, 0)
	if err != nil {
		if !h.failed && h.log != nil {
			h.log("pipe holder: a job's output would not survive a crash of the daemon", "job", job, "err", err)
		}
		h.failed = true
	}
}

// Handover returns what the next image of this daemon needs to keep the
// holder (an upgrade): our end of the socketpair, which it clears
// FD_CLOEXEC on, and the holder's pid. 0, 0: none.
func (h *Holder) Handover() (fd, pid int, err error) {
	if h == nil {
		return 0, 0, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := unix.FcntlInt(uintptr(h.ctl), unix.F_SETFD, 0); err != nil {
		return 0, 0, os.NewSyscallError("fcntl", err)
	}
	return h.ctl, h.pid, nil
}

// KeepPrivate sets FD_CLOEXEC again on the socketpair after an exec that
// failed (see Handover).
func (h *Holder) KeepPrivate() {
	if h != nil {
		h.mu.Lock()
		unix.CloseOnExec(h.ctl)
		h.mu.Unlock()
	}
}

// AdoptHolder takes over the holder of this process's earlier image (an
// upgrade): fd is the socketpair's end Handover gave, pid the holder's,
// registered with reaper before its first pass. exe and dir start a new
// one should it end (StartHolder).
func AdoptHolder(reaper *Reaper, fd, pid int, exe, dir string, warn func(msg string, args ...any)) *Holder {
	unix.CloseOnExec(fd)
	h := &Holder{reaper: reaper, exe: exe, dir: dir, ctl: fd, pid: pid, gone: make(chan struct{}), log: warn}
	go h.watch(reaper.Adopt(pid), h.gone)
	return h
}

// Close tells the holder the daemon stops in order, and waits (a little)
// until it has gone.
func (h *Holder) Close() {
	if h == nil {
		return
	}
	h.closing.Do(func() {
		h.mu.Lock()
		h.bye = true
		gone := h.gone
		unix.Sendmsg(h.ctl, []byte("B"), nil, nil, 0)
		h.mu.Unlock()
		select {
		case <-gone:
		case <-time.After(holderWait):
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.closed = true
		unix.Close(h.ctl)
	})
}

// HeldPipe is a pipe's read end that the holder of a daemon that died kept,
// taken back by the next daemon.
type HeldPipe struct {
	Job    string
	Stream string
	File   *os.File
}

// Reclaim takes back the pipes that the holder of a daemon that died
// kept, if one waits on dir's HoldSocket; none if not (a stale socket file
// is removed).
func Reclaim(dir string) ([]HeldPipe, error) {
	path := filepath.Join(dir, HoldSocket)
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reclaim held pipes: %w", err)
	}
	defer unix.Close(s)
	err = unix.Connect(s, &unix.SockaddrUnix{Name: path})
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case errors.Is(err, unix.ECONNREFUSED):
		os.Remove(path) // its holder is gone
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reclaim held pipes: %w", err)
	}
	tv := unix.NsecToTimeval(2 * holderWait.Nanoseconds())
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var held []HeldPipe
	buf := make([]byte, 1024)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(s, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return held, fmt.Errorf("reclaim held pipes: %w", err)
		}
		if n == 0 || string(buf[:n]) == "E" {
			return held, nil
		}
		fd := rightsOf(oob[:oobn])
		f := strings.Fields(string(buf[:n]))
		if fd < 0 {
			continue
		}
		if len(f) != 3 || f[0] != "P" {
			unix.Close(fd)
			continue
		}
		held = append(held, HeldPipe{Job: f[1], Stream: f[2], File: os.NewFile(uintptr(fd), "held|"+f[1])})
	}
}

// rightsOf returns the one descriptor a message carried, or -1.
func rightsOf(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1
	}
	fd := -1
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, f := range fds {
			if fd < 0 {
				fd = f
			} else {
				unix.Close(f) // one a message; never leak extras
			}
		}
	}
	return fd
}

// DrainHeld writes what the held pipes still hold to their jobs' logs in
// logDir, as far as it is there now (their writers are stopped, or gone),
// and closes them.
func DrainHeld(held []HeldPipe, logDir string, maxSize int64, keep int) {
	sinks := make(map[string]*logSink)
	buf := make([]byte, maxLine)
	for _, hp := range held {
		sink := sinks[hp.Job]
		if sink == nil && ValidName(hp.Job) {
			sink = newLogSink(filepath.Join(logDir, hp.Job+".log"), maxSize, keep)
			sinks[hp.Job] = sink
		}
		fd := int(hp.File.Fd())
		unix.SetNonblock(fd, true)
		var carry []byte
		for sink != nil {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if n <= 0 {
				break // all read (EAGAIN: a writer still lives; 0: none does)
			}
			carry = sink.writeLines(hp.Stream, carry, buf[:n], nil)
		}
		if len(carry) > 0 {
			sink.writeLine(hp.Stream, carry, nil)
		}
		hp.File.Close()
	}
	for _, s := range sinks {
		s.close()
	}
}

// RunHolder is the pipe holder (`overseerd -hold DIR`): it holds the pipes
// its daemon hands it on the socketpair ctl until their writers are gone,
// and after a crash of the daemon hands them to the next one. It returns
// when the daemon says bye, when it has handed the pipes over, or when
// none is left after the daemon died.
func RunHolder(dir string, ctl int) error {
	path := filepath.Join(dir, HoldSocket)
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	os.Remove(path) // a holder that died left it; the daemon holds the lock
	if err := unix.Bind(ln, &unix.SockaddrUnix{Name: path}); err != nil {
		return err
	}
	defer os.Remove(path)
	if err := os.Chmod(path, 0o600); err != nil { // in a private dir, as every file of ours
		return err
	}
	if err := unix.Listen(ln, 4); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	for _, fd := range []int{ctl, ln} {
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return err
		}
	}
	if err := unix.Sendmsg(ctl, []byte("R"), nil, nil, 0); err != nil {
		return err
	}
	h := holder{ep: ep, ctl: ctl, held: make(map[int]string)}
	defer h.close(ln)
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		// The daemon's words first: a writer that ends just after the
		// daemon died must find its pipe kept, not dropped as if the
		// daemon still read it.
		slices.SortStableFunc(events[:n], func(a, b unix.EpollEvent) int {
			return cmp.Compare(b2i(int(a.Fd) != h.ctl), b2i(int(b.Fd) != h.ctl))
		})
		for _, ev := range events[:n] {
			switch fd := int(ev.Fd); fd {
			case h.ctl:
				if bye := h.receive(); bye {
					return nil
				}
			case ln:
				c, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
				if err != nil {
					continue
				}
				if cred, err := unix.GetsockoptUcred(c, unix.SOL_SOCKET, unix.SO_PEERCRED); err != nil || int(cred.Uid) != os.Getuid() {
					unix.Close(c) // the data dir is private; still, our user's only
					continue
				}
				if h.ctl >= 0 && !h.awaitDeath() {
					unix.Close(c) // our daemon lives: not for the taking
					continue
				}
				if h.bye {
					unix.Close(c)
					return nil
				}
				os.Remove(path) // before the next daemon starts its own holder
				h.handOver(c)
				return nil
			default:
				h.hungUp(fd)
			}
		}
		if h.ctl < 0 && len(h.held) == 0 {
			return nil // the daemon died, and no pipe is left to keep
		}
	}
}

// holder is RunHolder's state.
type holder struct {
	ep   int
	ctl  int            // -1 once the daemon is gone
	bye  bool           // the daemon said bye
	held map[int]string // each pipe's read end: "JOB STREAM"
}

// receive reads the daemon's messages that are there; it says true when
// the daemon said bye. When the socketpair ends the daemon died: the
// pipes with no writer and nothing to read go.
func (h *holder) receive() (bye bool) {
	buf := make([]byte, 1024)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(h.ctl, buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return false
		}
		if err != nil || n == 0 {
			unix.EpollCtl(h.ep, unix.EPOLL_CTL_DEL, h.ctl, nil)
			unix.Close(h.ctl)
			h.ctl = -1
			for fd := range h.held {
				if !h.mayBring(fd) {
					h.drop(fd)
				}
			}
			return false
		}
		msg := string(buf[:n])
		if msg == "B" {
			h.bye = true
			return true
		}
		fd := rightsOf(oob[:oobn])
		if fd < 0 {
			continue
		}
		if !strings.HasPrefix(msg, "P ") {
			unix.Close(fd)
			continue
		}
		// No event asked for: epoll reports EPOLLHUP, all writers gone,
		// unasked.
		if err := unix.EpollCtl(h.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Fd: int32(fd)}); err != nil {
			unix.Close(fd)
			continue
		}
		h.held[fd] = strings.TrimPrefix(msg, "P ")
	}
}

// awaitDeath reads the daemon's last messages until its socketpair ends
// (a new daemon got the lock: the old one is dying), at most holderWait.
// It says false if the daemon still lives.
func (h *holder) awaitDeath() bool {
	deadline := time.Now().Add(holderWait)
	for h.ctl >= 0 && !h.bye && time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(h.ctl), Events: unix.POLLIN}}
		unix.Poll(pfd, int(time.Until(deadline).Milliseconds())+1)
		h.receive()
	}
	return h.ctl < 0 || h.bye
}

// hungUp handles a pipe whose writers are all gone: while the daemon
// lives it reads its own copy, so ours goes; after, ours is kept (no
// longer watched) while it holds lines for the next daemon. (An event
// for a descriptor since closed and reused is told by its pipe's state.)
func (h *holder) hungUp(fd int) {
	if _, ok := h.held[fd]; !ok {
		return
	}
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	unix.Poll(pfd, 0)
	if pfd[0].Revents&unix.POLLHUP == 0 {
		return // a writer is back: a new pipe by that number
	}
	if h.ctl >= 0 || !h.mayBring(fd) {
		h.drop(fd)
		return
	}
	unix.EpollCtl(h.ep, unix.EPOLL_CTL_DEL, fd, nil) // HUP would come back at once
}

// mayBring says whether pipe fd may still bring lines: it has a writer,
// or unread bytes.
func (h *holder) mayBring(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	unix.Poll(pfd, 0)
	if pfd[0].Revents&unix.POLLHUP == 0 {
		return true
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
	return err == nil && n > 0
}

// close closes what is left: the pipes (their processes' writes now
// fail, should any still run), the socketpair, epoll and the listener.
func (h *holder) close(ln int) {
	for fd := range h.held {
		h.drop(fd)
	}
	if h.ctl >= 0 {
		unix.Close(h.ctl)
	}
	unix.Close(h.ep)
	unix.Close(ln)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (h *holder) drop(fd int) {
	unix.EpollCtl(h.ep, unix.EPOLL_CTL_DEL, fd, nil)
	unix.Close(fd)
	delete(h.held, fd)
}

// handOver sends every pipe held to the next daemon on c, then "E".
func (h *holder) handOver(c int) {
	for fd, label := range h.held {
		if !h.mayBring(fd) {
			continue
		}
		unix.Sendmsg(c, []byte("P "+label), unix.UnixRights(fd), nil, 0)
	}
	unix.Sendmsg(c, []byte("E"), nil, nil, 0)
	unix.Close(c)
}
