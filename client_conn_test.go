package main

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The client's blocking connection behaves as net's did for runClient: a
// missing socket is no daemon, a silent daemon runs into the deadline
// (os.ErrDeadlineExceeded), an answer reads to io.EOF, a daemon that
// hangs up on a request it did not read went away.
func TestBlockingConn(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "s.sock")
	if _, err := dialBlocking(sock); !noDaemon(err) || describeDialError(err) != "no such file or directory" {
		t.Fatalf("no socket: %v", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serve := make(chan func(net.Conn), 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			(<-serve)(c)
		}
	}()

	// Silent: the deadline ends the read.
	done := make(chan struct{})
	serve <- func(c net.Conn) { go func() { <-done; c.Close() }() }
	c, err := dialBlocking(sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := io.WriteString(c, "STATUS\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a silent daemon: %v, want the deadline", err)
	}
	c.SetDeadline(time.Now().Add(-time.Second))
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a write past the deadline: %v", err)
	}
	c.Close()
	close(done)

	// An answer, then the end.
	serve <- func(c net.Conn) {
		go func() {
			defer c.Close()
			b := make([]byte, 7)
			io.ReadFull(c, b)
			io.WriteString(c, "OK 1 job\n"+string(b))
		}()
	}
	c, err = dialBlocking(sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitFor))
	io.WriteString(c, "STATUS\n")
	if b, err := io.ReadAll(c); err != nil || string(b) != "OK 1 job\nSTATUS\n" {
		t.Errorf("the answer: %q, %v", b, err)
	}
	c.Close()

	// Hung up without reading the request: a reset, which went away.
	serve <- func(c net.Conn) { c.Close() }
	c, err = dialBlocking(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
	io.WriteString(c, "STATUS\n")
	if _, err := io.ReadAll(c); err != nil && !wentAway(err) {
		t.Errorf("a daemon that hung up: %v", err)
	}
}
