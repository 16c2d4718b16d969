package main

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// blockingConn is the client's connection for a request that is not a
// stream: a socket in blocking mode, connected, written and read by
// plain system calls on the calling thread. Through net, the socket is
// registered with the runtime's poller (an epoll instance and an eventfd
// made at the first dial), its deadline is a runtime timer, and each read
// that finds nothing yet parks the goroutine until the thread in epoll_wait
// wakes it: thread hand-offs that, on a machine a crash storm keeps busy,
// each wait for a CPU. Here the thread sleeps in read(2) and the kernel
// wakes it with the answer; the deadline is the socket's own timeout
// (SO_RCVTIMEO, SO_SNDTIMEO), set to what is left before each call.
// A stream (EVENTS, LOGS -f, WAIT) keeps net's connection: a signal ends
// it by closing the connection from another goroutine, which does not
// wake a blocked read(2).
type blockingConn struct {
	fd       int
	deadline time.Time // zero: none
}

// dialBlocking connects to socket as dial does: a full listen queue is
// waited for (up to dialTimeout, the kernel's wait for a blocking
// connect), and only a daemon of our own user, or root's, is trusted.
func dialBlocking(socket string) (net.Conn, error) {
	fd, err := unixSocket()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("socket", err)}
	}
	c := &blockingConn{fd: fd, deadline: time.Now().Add(dialTimeout)}
	c.timeout(syscall.SO_SNDTIMEO) // connect waits for room in the listen queue so long
	for {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: socket})
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: socket, Net: "unix"}, Err: os.NewSyscallError("connect", err)}
	}
	uid, err := sockPeerUID(fd)
	if !trusted(uid, err) {
		syscall.Close(fd)
		return nil, &untrustedError{socket: socket, uid: uid, err: err}
	}
	c.deadline = time.Time{}
	return c, nil
}

// timeout sets opt (SO_RCVTIMEO or SO_SNDTIMEO) to what is left before
// the deadline; false when it has passed.
func (c *blockingConn) timeout(opt int) bool {
	var tv syscall.Timeval // zero: wait for ever
	if !c.deadline.IsZero() {
		left := time.Until(c.deadline)
		if left <= 0 {
			return false
		}
		tv = syscall.NsecToTimeval(max(left, time.Microsecond).Nanoseconds())
	}
	syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, opt, &tv)
	return true
}

// opError makes err what net's connection returns: a timeout is
// os.ErrDeadlineExceeded.
func opError(op string, err error) error {
	if err == syscall.EAGAIN {
		err = os.ErrDeadlineExceeded
	} else {
		err = os.NewSyscallError(op, err)
	}
	return &net.OpError{Op: op, Net: "unix", Err: err}
}

func (c *blockingConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if !c.timeout(syscall.SO_RCVTIMEO) {
			return 0, opError("read", syscall.EAGAIN)
		}
		n, err := syscall.Read(c.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, opError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *blockingConn) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		if !c.timeout(syscall.SO_SNDTIMEO) {
			return done, opError("write", syscall.EAGAIN)
		}
		n, err := syscall.Write(c.fd, b[done:])
		if n > 0 {
			done += n
		}
		switch {
		case err == syscall.EINTR:
		case err != nil:
			return done, opError("write", err)
		}
	}
	return done, nil
}

func (c *blockingConn) Close() error {
	if c.fd < 0 {
		return errors.New("close: already closed")
	}
	err := syscall.Close(c.fd)
	c.fd = -1
	return err
}

// The deadline is one for reads and writes: the client sets it once, for
// the request and its whole answer.
func (c *blockingConn) SetDeadline(t time.Time) error      { c.deadline = t; return nil }
func (c *blockingConn) SetReadDeadline(t time.Time) error  { c.deadline = t; return nil }
func (c *blockingConn) SetWriteDeadline(t time.Time) error { c.deadline = t; return nil }
func (c *blockingConn) LocalAddr() net.Addr                { return &net.UnixAddr{Net: "unix"} }
func (c *blockingConn) RemoteAddr() net.Addr               { return &net.UnixAddr{Net: "unix"} }
