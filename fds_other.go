//go:build !linux

package main

import "syscall"

// closeRangeOnExec: no close_range here; closeOnExec lists /dev/fd.
func closeRangeOnExec() bool { return false }

// unixSocket makes a stream Unix socket, then marks it close-on-exec (no
// SOCK_CLOEXEC on macOS; the client forks nothing meanwhile).
func unixSocket() (int, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	return fd, err
}
