package main

import (
	"bufio"
	"fmt"
	"net"
	"time"
)

// logsClosedLine ends a LOGS FOLLOW stream whose logs closed because their
// jobs are gone (removed, forgotten), not because the daemon stops, so that
// the client can tell the two apart: a log line starts with its time (or
// its job's name and time), never so. protocol.md, LOGS.
const logsClosedLine = "-- log closed: the job is gone --"

// endFollow ends a LOGS FOLLOW whose logs have closed: with logsClosedLine
// when the jobs are gone, with nothing (the connection closes) when the
// daemon is stopping, which is the client's "overseerd went away".
func (d *daemon) endFollow(c net.Conn, w *bufio.Writer) {
	select {
	case <-d.die:
		return
	default:
	}
	fmt.Fprintln(w, logsClosedLine)
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	w.Flush()
}
