package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"overseer/jobs"
	"overseer/sqlstore"
)

// UPGRADE (protocol.md, README.md "Upgrading overseer"): the daemon
// re-executes a new binary in its own process, so every job stays its
// child. The old image checks the binary (-version), stops accepting (the
// listening socket stays open: clients wait in its backlog), lets go of
// every job (jobs.Manager.Detach: no process is touched), commits every
// queued write, and writes a handover to a memfd: the descriptors it keeps
// (listening socket, data dir lock, the asking client's connection, the
// jobs' output pipes) and the jobs' state. It then execs the binary with
// -handover-fd. The new image reopens the database (an SQLite connection
// cannot cross exec: its descriptors are close-on-exec, and it is
// reopened like after any start), adopts the jobs (jobs.Manager.Adopt),
// serves on the inherited socket and answers the client on the inherited
// connection. If exec fails, the old image adopts its own handover and
// answers ERR.

// versionDetailEnv, set in -version's environment, makes it print the
// schema version and handover format too, one "key value" a line: what an
// upgrading daemon checks of the new binary.
const versionDetailEnv = "OVERSEER_VERSION_DETAIL"

// handoverVersion is the format of the handover; a binary that does not
// print it (or prints another) is refused. 3: handover_codec.go's (2 was
// encoding/gob, whose type registry cost every start of the binary, the
// client's too, ~0.25 ms; 1 was JSON, whose decoding took the new image
// ~45 ms at 1000 jobs, gob's ~6 ms).
const handoverVersion = 3

// checkBinaryWait bounds how long `BINARY -version` may take.
const checkBinaryWait = 5 * time.Second

// handover is what the old image leaves the new one.
type handover struct {
	Version int       // handoverVersion
	From    string    // the old image's version
	Started time.Time // when the daemon first started: PING's up
	Socket  int       // the listening socket
	Lock    int       // the data dir, flocked
	Conn    int       // the UPGRADE client's connection: the new image answers it
	Swept   bool      // rows of jobs gone while no daemon ran are marked removed
	Jobs    *jobs.Handover
	// Holder is the pipe holder (Linux), kept across the exec: its
	// socketpair's end and its pid; PID 0: none.
	Holder struct{ FD, PID int }
}

// checkBinary runs `binary -version` and returns the version it prints,
// or why it cannot replace this daemon: it is not overseer, does not
// answer within checkBinaryWait, or reads an older database schema.
//
// It runs through the daemon's reaper, the one collector of its children.
func checkBinary(reaper *jobs.Reaper, binary string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer r.Close()
	cmd := &exec.Cmd{Path: binary, Args: []string{"overseer", "-version"},
		Env: append(os.Environ(), versionDetailEnv+"=1"), Stdout: w,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	pid, exited, err := reaper.Start(cmd)
	w.Close()
	if err != nil {
		return "", fmt.Errorf("%s -version: %v", binary, err)
	}
	deadline := time.Now().Add(checkBinaryWait)
	r.SetReadDeadline(deadline)
	out, rerr := io.ReadAll(io.LimitReader(r, 4096))
	var e jobs.Exit
	select {
	case e = <-exited:
	case <-time.After(time.Until(deadline)):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return "", fmt.Errorf("%s -version did not answer within %v", binary, checkBinaryWait)
	}
	switch {
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		syscall.Kill(-pid, syscall.SIGKILL)
		return "", fmt.Errorf("%s -version did not answer within %v", binary, checkBinaryWait)
	case e.Code != 0 || e.Signal != "":
		return "", fmt.Errorf("%s -version: %v", binary, e)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Scan()
	version, ok := strings.CutPrefix(sc.Text(), "overseer ")
	if !ok {
		return "", fmt.Errorf("%s is not overseer: its -version printed %q", binary, firstWords(sc.Text()))
	}
	detail := map[string]int{}
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			n, _ := strconv.Atoi(v)
			detail[k] = n
		}
	}
	if detail["handover"] != handoverVersion {
		return "", fmt.Errorf("%s (overseer %s) cannot take over a running daemon (handover format %d, this daemon writes %d)", binary, version, detail["handover"], handoverVersion)
	}
	if s := detail["schema"]; s < sqlstore.SchemaVersion() {
		return "", fmt.Errorf("%s (overseer %s) reads database schema version %d, older than the version %d in use: it cannot read the database", binary, version, s, sqlstore.SchemaVersion())
	}
	return version, nil
}

// firstWords cuts what a stranger printed to a short, printable excerpt.
func firstWords(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// upgrade serves UPGRADE: it answers ERR, or execs the new binary, whose
// image answers OK on this connection.
func (d *daemon) upgrade(c net.Conn, r request) {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := d.upgradeTo(c, r.binary)
	fmt.Fprintf(c, "ERR upgrade: %s\n", oneLine(err.Error()))
}

// upgradeTo is UPGRADE; it returns only if the upgrade did not happen,
// saying why, with every job and the socket as they were.
func (d *daemon) upgradeTo(c net.Conn, binary string) error {
	if !d.upgrading.TryLock() {
		return errors.New("another upgrade is under way")
	}
	defer d.upgrading.Unlock()
	select {
	case <-d.die:
		return jobs.ErrClosed
	default:
	}
	if binary == "" {
		var err error
		if binary, err = os.Executable(); err != nil {
			return fmt.Errorf("find overseerd's own binary: %w\nhint: name one with overseer upgrade -binary PATH", err)
		}
	}
	newVersion, err := checkBinary(d.reaper, binary)
	if err != nil {
		return err
	}
	if err := d.mgr.Busy(); err != nil {
		return err
	}
	connFile, err := c.(*net.UnixConn).File()
	if err != nil {
		return err
	}
	defer connFile.Close()

	// Pause, once no reload is under way: no accepting (clients wait in
	// the backlog), no job supervised.
	var began time.Time
	var ln *os.File
	jh, err := d.mgr.Detach(func() (err error) {
		began = time.Now()
		ln, err = d.sock.pause()
		return err
	})
	if ln != nil {
		defer ln.Close()
	}
	if err != nil {
		if ln != nil {
			d.sock.resume(ln)
		}
		return err
	}
	// From here on, a failure adopts the handover again.
	restore := func(why error) error {
		d.holder.KeepPrivate()
		if err := d.mgr.Adopt(jh); err != nil {
			d.log.Error("upgrade failed: take the jobs back", "err", err)
		}
		d.sock.resume(ln)
		d.log.Warn("upgrade failed: carrying on", "binary", binary, "err", why)
		return why
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = d.store.Flush(flushCtx)
	cancel()
	if err != nil {
		return restore(fmt.Errorf("commit the database before exec: %w", err))
	}
	h := handover{Version: handoverVersion, From: buildVersion(), Started: d.started, Socket: int(ln.Fd()), Lock: d.lockFD, Conn: int(connFile.Fd()), Swept: d.swept.Load(), Jobs: jh}
	// The holder goes on holding the jobs' pipes: were its socketpair
	// closed by the exec, it would take us for dead.
	if h.Holder.FD, h.Holder.PID, err = d.holder.Handover(); err != nil {
		return restore(fmt.Errorf("keep the pipe holder: %w", err))
	}
	b, err := encodeHandover(handoverVersion, &h)
	if err != nil {
		return restore(fmt.Errorf("encode the handover: %w", err))
	}
	hf, err := handoverFile(b)
	if err != nil {
		return restore(fmt.Errorf("write the handover: %w", err))
	}
	defer hf.Close()
	keep := []int{h.Socket, h.Lock, h.Conn, int(hf.Fd())}
	for _, fd := range keep {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			err = restore(os.NewSyscallError("fcntl", err))
			for _, fd := range keep {
				unix.CloseOnExec(fd)
			}
			return err
		}
	}
	if err := jh.ClearCloseOnExec(); err != nil {
		jh.SetCloseOnExec()
		for _, fd := range keep {
			unix.CloseOnExec(fd)
		}
		return restore(err)
	}
	d.log.Info("upgrading: exec", "binary", binary, "from", h.From, "to", newVersion, "jobs", len(jh.Jobs), "paused", time.Since(began))
	err = syscall.Exec(binary, upgradeArgs(os.Args, int(hf.Fd())), os.Environ())
	// Still here: exec failed, and this image carries on (restore keeps the
	// holder's socketpair private again).
	jh.SetCloseOnExec()
	for _, fd := range keep {
		unix.CloseOnExec(fd)
	}
	return restore(fmt.Errorf("exec %s: %w", binary, err))
}

// upgradeArgs is the new image's command line: ours (its argv[0] says
// overseerd or overseer -d), without the flags of a launch or of an
// earlier upgrade, and -handover-fd.
func upgradeArgs(args []string, fd int) []string {
	out := []string{args[0]}
	for i := 1; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		switch name {
		case "await-reload":
			continue
		case "report-fd", "handover-fd":
			if !hasValue {
				i++ // its value
			}
			continue
		}
		out = append(out, a)
	}
	return append(out, "-handover-fd="+strconv.Itoa(fd))
}

// readHandover reads the handover the old image left on fd, and closes it.
func readHandover(fd int) (*handover, error) {
	f := os.NewFile(uintptr(fd), "handover")
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read the handover: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read the handover: %w", err)
	}
	var h handover
	if err := decodeHandover(b, handoverVersion, &h); err != nil {
		return nil, fmt.Errorf("read the handover: %w", err)
	}
	if h.Version != handoverVersion {
		return nil, fmt.Errorf("read the handover: format %d, not %d", h.Version, handoverVersion)
	}
	if h.Jobs == nil {
		h.Jobs = &jobs.Handover{}
	}
	return &h, nil
}

// answerUpgrade tells the client that asked for the upgrade that it is
// done, on its connection, which this image inherited.
func answerUpgrade(h *handover) {
	f := os.NewFile(uintptr(h.Conn), "upgrade client")
	defer f.Close()
	unix.CloseOnExec(h.Conn)
	c, err := net.FileConn(f)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	fmt.Fprintf(c, "OK upgraded overseerd %s -> %s\n", quoteName(h.From), quoteName(buildVersion()))
}
