package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// socket is the daemon's listening socket: the file it bound, so that it
// removes only its own, and the accept loops.
type socket struct {
	path string
	mu   sync.Mutex
	ln   net.Listener // guarded by mu
	fi   os.FileInfo  // the socket file ln bound; guarded by mu
	loop sync.WaitGroup
	conn func(net.Conn) // set by serve
	log  *slog.Logger
}

// listen binds path, private to us.
func listen(path string) (*socket, error) {
	s := &socket{path: path}
	ln, fi, err := bind(path)
	if err != nil {
		return nil, err
	}
	s.ln, s.fi = ln, fi
	return s, nil
}

func bind(path string) (net.Listener, os.FileInfo, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // we remove it ourselves, in order, if it is ours
	fi, err := os.Lstat(path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return ln, fi, nil
}

// serve accepts connections and hands each to conn, until close.
func (s *socket) serve(conn func(net.Conn), log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn, s.log = conn, log // before SIGHUP may call relisten
	s.accept(s.ln)
}

// accept runs ln's accept loop in the background.
func (s *socket) accept(ln net.Listener) {
	s.loop.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Error("accept", "err", err)
				time.Sleep(10 * time.Millisecond) // out of fds: do not spin
				continue
			}
			s.conn(c)
		}
	})
}

// relisten binds the socket path again if our socket file is gone from it
// (removed by hand: clients cannot reach us, and a new daemon could not
// start beside us), and serves there; the old listener is closed.
func (s *socket) relisten() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil // closed
	}
	if _, err := os.Lstat(s.path); !errors.Is(err, fs.ErrNotExist) {
		return err // still there (ours or not: never steal a path)
	}
	ln, fi, err := bind(s.path)
	if err != nil {
		return err
	}
	s.ln.Close()
	s.ln, s.fi = ln, fi
	s.accept(ln)
	s.log.Warn("our socket file was removed: listening again", "socket", s.path)
	return nil
}

// close stops accepting and removes the socket file if it is still the one
// we bound: another daemon may have bound the path since.
func (s *socket) close() {
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.fi) {
			os.Remove(s.path)
		}
		s.ln = nil
	}
	s.mu.Unlock()
	s.loop.Wait()
}

// pause stops accepting, for an upgrade: it returns a duplicate of the
// listening socket's descriptor, which keeps the socket open (clients
// connecting meanwhile wait in its backlog), and closes the listener.
func (s *socket) pause() (*os.File, error) {
	s.mu.Lock()
	if s.ln == nil {
		s.mu.Unlock()
		return nil, errors.New("not listening")
	}
	f, err := s.ln.(*net.UnixListener).File()
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.ln.Close()
	s.ln = nil
	s.mu.Unlock()
	s.loop.Wait()
	return f, nil
}

// resume accepts again on the socket pause returned (f stays the caller's).
func (s *socket) resume(f *os.File) error {
	ln, err := net.FileListener(f)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ln = ln
	s.accept(ln)
	return nil
}

// inherit returns the socket listening on fd, which an earlier image of
// this process bound at path (overseer upgrade).
func inherit(path string, fd int) (*socket, error) {
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return &socket{path: path, ln: ln, fi: fi}, nil
}

// clearSocket removes a stale socket file at path, and refuses to go on if
// path is something else, or a live socket.
func clearSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: move it away or pass another -socket", path)
	}
	if err := checkPrivate(path, false); err != nil {
		return err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another daemon listens on %s: pass another -socket", path)
	}
	return os.Remove(path)
}
