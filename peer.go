package main

import "net"

// peerUID returns the uid of the process at the other end of c, as the
// kernel saw it at connect (sockPeerUID: SO_PEERCRED on Linux,
// LOCAL_PEERCRED on macOS, what getpeereid reads).
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var uid int
	var uidErr error
	if err := raw.Control(func(fd uintptr) { uid, uidErr = sockPeerUID(int(fd)) }); err != nil {
		return 0, err
	}
	return uid, uidErr
}

// peerPID returns the pid of the process at the other end of c, as the
// kernel saw it at connect (sockPeerPID: SO_PEERCRED on Linux,
// LOCAL_PEERPID on macOS).
func peerPID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var pid int
	var pidErr error
	if err := raw.Control(func(fd uintptr) { pid, pidErr = sockPeerPID(int(fd)) }); err != nil {
		return 0, err
	}
	return pid, pidErr
}
