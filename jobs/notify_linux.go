package jobs

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// notifySupported says whether READY=notify can be used: sd_notify needs
// SCM_CREDENTIALS to tell who sent a datagram, which Linux has.
const notifySupported = true

// notifier is the daemon's sd_notify socket, a datagram socket made on
// first use in the data dir, with SO_PASSCRED so that the kernel attaches
// each sender's pid (SCM_CREDENTIALS): a message counts for the job whose
// session its sender is in, whatever it says. A job starts as a session
// leader and all it forks stays in that session unless it calls setsid;
// no other process can join it (setsid only makes new sessions, setpgid
// cannot cross them), so only the job's own processes speak for it. The
// session is read when the message arrives: one from a process that has
// already exited is dropped.
type notifier struct {
	routes notifyRoutes
	log    *slog.Logger

	mu   sync.Mutex
	path string        // guarded by mu
	conn *net.UnixConn // guarded by mu; nil until first use
	done chan struct{} // closed when the reader ends
	err  error         // guarded by mu: why the socket cannot be made
}

func newNotifier(dir string, log *slog.Logger) *notifier {
	return &notifier{path: filepath.Join(dir, notifySocket), log: log}
}

// socket returns the socket's path, made on first use.
func (n *notifier) socket() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil || n.err != nil {
		return n.path, n.err
	}
	os.Remove(n.path) // a dead daemon's: the data dir's lock is ours
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err == nil {
		err = setPassCred(conn)
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		n.err = fmt.Errorf("sd_notify socket: %w", err)
		return n.path, n.err
	}
	// Any user may send: a job with USER runs as another one, and the
	// sender's credentials, not the file's mode, decide what counts.
	os.Chmod(n.path, 0o666)
	n.conn, n.done = conn, make(chan struct{})
	go n.read(conn, n.done)
	return n.path, nil
}

func setPassCred(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// read routes each datagram by its sender's session until the socket closes.
func (n *notifier) read(conn *net.UnixConn, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, maxNotifySize+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)*4) // room for descriptors sent along, which are closed
	for {
		nb, noob, flags, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				n.log.Warn("sd_notify socket", "err", err)
			}
			return
		}
		pid := sender(oob[:noob])
		if pid <= 0 || nb > maxNotifySize || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			continue // no credentials, or too long: dropped
		}
		sid, err := unix.Getsid(pid)
		if err != nil {
			continue // gone already
		}
		n.routes.deliver(sid, parseNotice(string(buf[:nb])))
	}
}

// sender returns the pid of a datagram's SCM_CREDENTIALS, or 0; it closes
// any descriptor sent along.
func sender(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	pid := 0
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			pid = int(cred.Pid)
		}
	}
	return pid
}

// close closes the socket, removes its file and waits for the reader.
func (n *notifier) close() {
	n.mu.Lock()
	conn, done := n.conn, n.done
	n.conn, n.err = nil, errors.New("shutting down")
	n.mu.Unlock()
	if conn != nil {
		conn.Close()
		<-done
		os.Remove(n.path)
	}
}
