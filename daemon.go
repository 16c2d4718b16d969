package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"overseer/jobs"
	"overseer/sqlstore"
)

const (
	maxRequest   = 4096             // bytes in a request line, newline included
	readTimeout  = 5 * time.Second  // for the request line
	writeTimeout = 30 * time.Second // for the whole answer
)

// daemon is overseerd's running state.
type daemon struct {
	opts  options
	log   *slog.Logger
	mgr   *jobs.Manager
	store *sqlstore.DB

	die     chan struct{} // closed by the first DIE
	dieOnce sync.Once
	dead    chan struct{} // closed once jobs are stopped and state is closed

	firstReload     chan struct{} // closed by the first RELOAD request
	firstReloadOnce sync.Once

	swept atomic.Bool // set once rows of jobs gone while no daemon ran are marked removed

	streamsMu sync.Mutex // guards the two below
	streams   int        // EVENTS, LOGS FOLLOW and WAIT clients being served
	peak      int        // the most streams since memory was last given back

	connsMu sync.Mutex
	open    map[net.Conn]struct{} // connections being served; guarded by connsMu
	cut     bool                  // set once open connections are cut at exit; guarded by connsMu
}

// maxStreams bounds the EVENTS, LOGS FOLLOW and WAIT clients served at
// once: each holds a queue, buffers and two goroutines (about 20 KiB when
// it stalls), and the daemon must not grow without bound for clients that
// do not read. protocol.md (Answers) documents it.
const maxStreams = 256

// enterStream admits one more streaming client, or says false when
// maxStreams are being served.
func (d *daemon) enterStream() bool {
	d.streamsMu.Lock()
	defer d.streamsMu.Unlock()
	if d.streams >= maxStreams {
		return false
	}
	d.streams++
	d.peak = max(d.peak, d.streams)
	return true
}

// leaveStream counts a streaming client gone. Once many have left, it
// gives their memory back to the system at once: the runtime would keep
// it for minutes. Only on this event, never on a timer.
func (d *daemon) leaveStream() {
	d.streamsMu.Lock()
	defer d.streamsMu.Unlock()
	d.streams--
	if d.peak-d.streams >= freeAfterStreams && d.streams <= d.peak/2 {
		d.peak = d.streams
		go debug.FreeOSMemory()
	}
}

// freeAfterStreams is how many streaming clients must have left before
// their memory is handed back (a forced GC costs a few milliseconds).
const freeAfterStreams = 32

// streamWriteBuffer is the size of a streaming answer's buffer: lines are
// flushed as they come, so a small one costs a stalled client little.
const streamWriteBuffer = 1 << 10

// awaitGone reads what the client sends until it leaves (or half-closes,
// as nc -N does): a streaming client sends nothing more after its request.
// Its buffer is small, unlike io.Copy's, since thousands may wait here.
func awaitGone(c net.Conn) {
	c.SetReadDeadline(time.Time{})
	var b [64]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

// orphanStopTimeout is how long a new daemon waits for the processes a dead
// one left to end after TERM, before KILL.
const orphanStopTimeout = 5 * time.Second

// awaitReloadFor bounds how long a daemon launched by the client waits for
// the client's RELOAD before it loads the config dir by itself.
const awaitReloadFor = 10 * time.Second

// runDaemon is overseerd: it returns when DIE arrives or ctx is cancelled
// (SIGTERM, SIGINT), after every job has stopped.
func runDaemon(ctx context.Context, opts options, stderr io.Writer) (err error) {
	log := slog.New(slog.NewTextHandler(stderr, nil))

	// The client that launched us learns why we could not start through
	// this pipe, even when our log cannot be written (a full disk).
	var report *os.File
	if opts.reportFD > 0 {
		report = os.NewFile(uintptr(opts.reportFD), "start-up report")
		defer func() {
			if report != nil {
				if err != nil {
					fmt.Fprintf(report, "%v\n", err)
				}
				report.Close()
			}
		}()
	}

	// Our directories: private, since whoever writes them controls every
	// job. The data dir is resolved once, here, so that every spelling of
	// it (a symbolic link) marks and finds the same jobs (InstanceEnv).
	if err := checkPrivate(opts.dataDir, true); err != nil {
		return err
	}
	logDir := filepath.Join(opts.dataDir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if opts.dataDir, err = filepath.EvalSymlinks(opts.dataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	logDir = filepath.Join(opts.dataDir, "logs")
	for _, name := range dataFiles {
		if err := checkPrivate(filepath.Join(opts.dataDir, name), false); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(opts.configDir, 0o700); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	// Hold no directory busy and pass no stray descriptor to jobs: every
	// path is absolute, and jobs get stdin, stdout and stderr only.
	if err := os.Chdir("/"); err != nil {
		return err
	}
	closeOnExec()

	// One daemon per data dir: the lock (on the dir itself, which no
	// unlink defeats) is taken before the socket or the database is
	// touched, and released by the kernel if we die.
	unlock, err := lock(opts.dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// Open the store and close runs a dead predecessor left open. Start-up
	// only reads and queues writes: while another program holds the
	// database's write lock, the daemon supervises all the same, and its
	// writes follow, in order, when the lock is released.
	store, err := sqlstore.Open(filepath.Join(opts.dataDir, "overseer.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	store.SetWarn(func(err error) { log.Warn("store", "err", err) })
	held, err := store.Held(ctx)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	// Processes a daemon that died left running: stop them, whole, so that
	// no job runs twice, and close their runs.
	open, err := store.OpenRuns(ctx)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if len(open) > 0 {
		orphans := make([]jobs.Orphan, len(open))
		for i, r := range open {
			orphans[i] = jobs.Orphan{Run: r.ID, Pid: r.Pid, Start: r.ProcStart}
		}
		stopped := jobs.StopOrphans(orphans, orphanStopTimeout)
		for _, r := range open {
			reason := "unknown" // it ended while no daemon watched
			if stopped[r.ID] {
				reason = "orphaned"
			}
			if err := store.CloseRun(ctx, r.ID, time.Now(), reason); err != nil {
				return fmt.Errorf("open store: %w", err)
			}
		}
		log.Warn("an earlier overseerd died: closed its runs", "runs", len(open), "stopped", len(stopped))
	}
	// And whatever else it left: processes started just before it died,
	// TESTs, descendants that left their group (Linux).
	if n := jobs.Sweep(opts.dataDir, orphanStopTimeout); n > 0 {
		log.Warn("stopped processes an earlier overseerd left", "count", n)
	}
	store.SetKeepRuns(opts.keepRuns)
	store.SetKeepSamples(opts.keepSamples)

	// The reaper must be subscribed to SIGCHLD before the first child starts.
	reapCtx, stopReaper := context.WithCancel(context.Background())
	defer stopReaper()
	reaper := jobs.NewReaper()
	go reaper.Run(reapCtx)

	home, _ := os.UserHomeDir()
	d := &daemon{
		opts:        opts,
		log:         log,
		store:       store,
		die:         make(chan struct{}),
		dead:        make(chan struct{}),
		firstReload: make(chan struct{}),
		open:        make(map[net.Conn]struct{}),
		mgr: jobs.NewManager(jobs.Config{
			Recorder:   store,
			Reaper:     reaper,
			LogDir:     logDir,
			Instance:   opts.dataDir,
			Home:       home,
			Environ:    os.Environ(),
			Logger:     log,
			LogMaxSize: int64(opts.logMaxSize),
			LogKeep:    opts.logKeep,
			Held:       held,
			Samples:    store,
			// Sampling is opt-in: without it no timer runs for it.
			MetricsInterval: opts.metricsInterval,
			Cgroups:         opts.cgroups,
		}),
	}

	// Listen. A socket file left here is stale unless a daemon answers on
	// it (one of another data dir given the same -socket): never steal it,
	// and never remove what is not a socket.
	if err := clearSocket(opts.socket); err != nil {
		return err
	}
	sock, err := listen(opts.socket)
	if err != nil {
		return err
	}
	log.Info("overseerd started", "pid", os.Getpid(), "socket", opts.socket, "config", opts.configDir)
	if report != nil {
		report.Close() // we started: the client's read ends
		report = nil
	}

	// First reconcile, in the background so STATUS answers meanwhile. A
	// daemon the client launched leaves it to the client's RELOAD, which
	// follows at once, so that its answer shows what started (and TESTs
	// run once): unless that RELOAD does not come.
	var conns sync.WaitGroup
	conns.Go(func() {
		if opts.awaitReload {
			t := time.NewTimer(awaitReloadFor)
			defer t.Stop()
			select {
			case <-d.firstReload:
				return
			case <-d.die:
				return
			case <-t.C:
			}
		}
		if _, err := d.reload(); err != nil {
			log.Error("start-up reload", "err", err)
		}
	})

	// Serve, one goroutine and one request per connection.
	sock.serve(func(c net.Conn) {
		conns.Go(func() {
			if d.track(c) {
				defer d.untrack(c)
				d.serve(c)
			}
		})
	}, log)

	// SIGHUP reloads, like RELOAD; and listens again if our socket file
	// was removed (the one way back for a daemon clients cannot reach).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	conns.Go(func() {
		for {
			select {
			case <-hup:
				if err := sock.relisten(); err != nil {
					log.Error("listen again", "socket", opts.socket, "err", err)
				}
				if _, err := d.reload(); err != nil {
					log.Error("reload on SIGHUP", "err", err)
				}
			case <-d.die:
				return
			}
		}
	})

	select {
	case <-ctx.Done():
		log.Info("signal received: stopping every job")
	case <-d.die:
		log.Info("DIE received: stopping every job")
	}
	d.dieOnce.Do(func() { close(d.die) })

	// Stop every job while still answering (STATUS shows the stopping,
	// RELOAD says ERR shutting down), and whatever their descendants left
	// behind; then close state in order, and only then let the DIE answer
	// go, so whoever waits on it can launch a new daemon at once.
	d.mgr.Shutdown()
	if n := jobs.KillChildren(time.Second); n > 0 {
		log.Info("killed processes jobs had left behind", "count", n)
	}
	sock.close() // removes the socket file only if it is still ours
	stopReaper()
	err = store.Close()
	unlock()
	close(d.dead)
	// Answers get shutdownGrace to go; a client that does not read its
	// answer does not hold our exit for writeTimeout.
	served := make(chan struct{})
	go func() { conns.Wait(); close(served) }()
	select {
	case <-served:
	case <-time.After(shutdownGrace):
		d.cutConns()
		<-served
	}
	log.Info("overseerd stopped")
	return err
}

// shutdownGrace is how long answers still being written may take once the
// daemon has stopped, before their connections are cut.
const shutdownGrace = time.Second

// track adds c to the connections being served, or says false (and closes
// c) once they have been cut.
func (d *daemon) track(c net.Conn) bool {
	d.connsMu.Lock()
	defer d.connsMu.Unlock()
	if d.cut {
		c.Close()
		return false
	}
	d.open[c] = struct{}{}
	return true
}

func (d *daemon) untrack(c net.Conn) {
	d.connsMu.Lock()
	defer d.connsMu.Unlock()
	delete(d.open, c)
}

// cutConns closes every connection still being served: its reads and
// writes fail at once.
func (d *daemon) cutConns() {
	d.connsMu.Lock()
	defer d.connsMu.Unlock()
	d.cut = true
	for c := range d.open {
		c.Close()
	}
}

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

// heldError says another daemon holds the data dir.
type heldError struct{ dir, pid string }

func (e *heldError) Error() string {
	if e.pid == "" {
		return fmt.Sprintf("another overseerd holds %s", tilde(e.dir))
	}
	return fmt.Sprintf("another overseerd (pid %s) holds %s", e.pid, tilde(e.dir))
}

// lock takes an exclusive flock on the data dir itself, which removing a
// file cannot defeat, and writes our pid in DIR/overseer.lock for people
// and clients. unlock empties that file (no daemon runs) and releases the
// lock.
func lock(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	pidPath := filepath.Join(dir, "overseer.lock")
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(pidPath)
			return nil, &heldError{dir: dir, pid: strings.TrimSpace(string(b))}
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	f, err := os.OpenFile(pidPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	var once sync.Once
	return func() {
		once.Do(func() {
			f.Truncate(0)
			f.Close()
			d.Close()
		})
	}, nil
}

// reload converges the jobs to the config dir and logs what changed. After
// the first pass it marks removed the database rows of jobs whose files went
// away while no daemon ran (later removals the manager records itself).
func (d *daemon) reload() (jobs.Report, error) {
	rep, err := d.mgr.Reload(context.Background(), d.opts.configDir)
	if err != nil {
		return rep, err
	}
	changed := 0
	for _, c := range rep.Changes {
		if c.Verb != jobs.Unchanged {
			d.log.Info("reload: "+c.Verb.String(), "job", c.Name, "detail", c.Detail)
		}
		if c.Verb != jobs.Unchanged && c.Verb != jobs.RejectedIt && c.Verb != jobs.Warned {
			changed++ // a file still rejected, or a key warned of, changes nothing
		}
	}
	if changed > 0 {
		// Reading the files and starting the jobs left garbage the size of
		// the jobs' own state: give it back now rather than keep it resident
		// while nothing happens (the runtime returns it only slowly).
		debug.FreeOSMemory()
	}
	if !d.swept.Load() {
		if err := d.store.MarkRemoved(context.Background(), d.mgr.Names(), time.Now()); err != nil {
			d.log.Warn("mark removed jobs", "err", err)
		} else {
			d.swept.Store(true)
		}
	}
	return rep, nil
}

// serve answers one request; protocol.md is the contract.
func (d *daemon) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(writeTimeout))
	// Only our own user: the socket's modes say so too, but they can be
	// loosened by mistake; the kernel's word on the peer cannot.
	if uid, err := peerUID(c.(*net.UnixConn)); err != nil || uid != os.Getuid() {
		d.log.Warn("refused a connection from another user", "uid", uid, "err", err)
		fmt.Fprintf(c, "ERR permission denied: this overseerd serves only uid %d\n", os.Getuid())
		drain(c)
		return
	}
	c.SetReadDeadline(time.Now().Add(readTimeout))
	line, err := readRequest(c)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		fmt.Fprintf(c, "ERR no request line within %v\n", readTimeout)
		return
	case errors.Is(err, io.EOF):
		return // connected and said nothing
	case err != nil:
		fmt.Fprintf(c, "ERR %v\n", err)
		drain(c)
		return
	}
	// An answer may take long to make (a STOP waits out STOP_TIMEOUT, a
	// RELOAD its TESTs); only writing it is bounded.
	c.SetDeadline(time.Time{})
	r, err := parseRequest(line)
	if err == nil && r.tied {
		// The kernel's word on who asked: a pid in the request is never trusted.
		if r.peerPid, err = peerPID(c.(*net.UnixConn)); err != nil {
			d.log.Warn("read the peer's pid", "err", err)
			err = fmt.Errorf("SPAWN: TIED: cannot tell which process asked: %v", err)
		}
	}
	if err == nil && r.verb == "WAIT" && d.already(r) {
		d.wait(c, r) // answers at once: no stream to count
		return
	}
	if err == nil && (r.follow || r.verb == "EVENTS" || r.verb == "WAIT") {
		if !d.enterStream() {
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			fmt.Fprintf(c, "ERR too many streaming clients: %d EVENTS, LOGS FOLLOW and WAIT are served at once; try again later\n", maxStreams)
			return
		}
		defer d.leaveStream()
		switch {
		case r.follow:
			d.follow(c, r)
		case r.verb == "EVENTS":
			d.events(c, r)
		default:
			d.wait(c, r)
		}
		return
	}
	var b bytes.Buffer
	if err != nil {
		fmt.Fprintf(&b, "ERR %v\n", err)
	} else {
		d.answer(&b, r)
		if changes[r.verb] {
			d.flush() // what the answer tells is in the database
		}
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.Write(b.Bytes())
	if r.verb == "DIE" && err == nil {
		// The answer waits until every job is gone.
		<-d.dead
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		fmt.Fprintf(c, "OK overseerd stopped\n")
	}
}

// drain reads what the client sent and we did not (bounded in size and
// time) before we hang up, so that it reads our answer rather than a reset
// connection.
func drain(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// readRequest reads one line of at most maxRequest bytes. A last line
// without its newline counts (printf STATUS | nc -U).
func readRequest(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, maxRequest)
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("request longer than %d bytes", maxRequest)
	case errors.Is(err, io.EOF) && len(line) > 0:
	case err != nil:
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// verbs lists the verbs with their arguments, for HELP; protocol.md is the contract.
var verbs = []struct{ name, args, help string }{
	{"STATUS", " [NAME]", "every job: NAME STATE PID FOR RESTARTS LAST [NOTE]; with NAME, that job in detail"},
	{"RELOAD", " [DRY] [VERBOSE]", "re-read the config dir and converge; lists what changed (DRY: what it would do and why, touching nothing; VERBOSE: unchanged jobs too)"},
	{"START", " NAME", "start a job (its TEST first), releasing a STOP hold"},
	{"STOP", " NAME", "stop a job and hold it stopped until START"},
	{"RESTART", " NAME", "stop a job if it runs, then start it"},
	{"SIGNAL", " NAME SIG", "send SIG (HUP, USR1, ...) to a job's process group"},
	{"LOGS", " NAME [N] [stdout|stderr|test] [FOLLOW]", "the last N (50) lines of a job's log, or of one stream; FOLLOW: then new lines as they come"},
	{"HISTORY", " [NAME] [N]", "the last N (20) runs, newest first: ID JOB PID STARTED ENDED FOR HOW REASON"},
	{"EVENTS", " [NAME]", "stream every state change (of NAME): TIME JOB OLD NEW PID REASON, until the client leaves"},
	{"WAIT", " NAME STATE [TIMEOUT]", "answer OK once the job is in STATE (running, stopped, exited, failed, ...), ERR timeout after TIMEOUT (30s)"},
	{"INSPECT", " NAME [N]", "a job in detail, as STATUS NAME, and its last N (10) resource samples, newest first"},
	{"SPAWN", " NAME [TTL] [TIED [PARENT]] -- COMMAND...", "start an ephemeral job (no file), forgotten once stopped, its TTL passed or (TIED) the asking process or its PARENT exited"},
	{"DIE", "", "stop every job and the daemon"},
	{"PING", "", "OK with the daemon's version and pid"},
	{"HELP", "", "this list"},
}

const (
	defaultLogLines = 50
	defaultHistory  = 20
	defaultSamples  = 10
	maxLines        = 10000 // for LOGS, HISTORY and INSPECT
)

// request is one parsed request line.
type request struct {
	verb    string         // upper case
	name    string         // the job, for verbs that name one
	lines   int            // LOGS, HISTORY, INSPECT: how many
	follow  bool           // LOGS FOLLOW
	stream  string         // LOGS: the stream's name in the log (jobs.StreamOut, ...), or "" for all
	verbose bool           // RELOAD VERBOSE
	dry     bool           // RELOAD DRY
	sig     syscall.Signal // SIGNAL
	state   jobs.State     // WAIT
	timeout time.Duration  // WAIT
	// SPAWN
	command    []string      // after " -- ", split as a job file's COMMAND
	ttl        time.Duration // 0: none
	tied       bool          // TIED: to the requesting process
	tiedParent bool          // TIED PARENT: to its parent
	peerPid    int           // the requesting process, from the socket (not the request)
}

// parseRequest parses and checks a request line.
func parseRequest(line string) (request, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return request{}, errors.New("empty request: send a verb such as STATUS (HELP lists them)")
	}
	r := request{verb: strings.ToUpper(fields[0])}
	args := fields[1:]
	usage := func() error {
		for _, v := range verbs {
			if v.name == r.verb {
				return fmt.Errorf("usage: %s%s", v.name, v.args)
			}
		}
		return nil
	}
	count := func(a string) (int, error) {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 || n > maxLines {
			return 0, fmt.Errorf("%s: a count must be a number from 0 to %d, not %q", r.verb, maxLines, clip(a))
		}
		return n, nil
	}
	switch r.verb {
	case "DIE", "PING", "HELP":
		if len(args) > 0 {
			return request{}, fmt.Errorf("%s takes no arguments", r.verb)
		}
	case "STATUS":
		if len(args) > 1 {
			return request{}, usage()
		}
		if len(args) == 1 {
			r.name = args[0]
		}
	case "RELOAD":
		if len(args) > 0 && strings.EqualFold(args[0], "DRY") {
			r.dry, args = true, args[1:]
		}
		if len(args) > 1 || len(args) == 1 && !strings.EqualFold(args[0], "VERBOSE") {
			return request{}, usage()
		}
		r.verbose = len(args) == 1
	case "START", "STOP", "RESTART":
		if len(args) != 1 {
			return request{}, usage()
		}
		r.name = args[0]
	case "SIGNAL":
		if len(args) != 2 {
			return request{}, usage()
		}
		r.name = args[0]
		if r.sig = jobs.ParseSignal(args[1]); r.sig == 0 {
			return request{}, fmt.Errorf("SIGNAL: unknown signal %q: use a name such as HUP, USR1 or TERM", clip(args[1]))
		}
	case "INSPECT":
		if len(args) == 0 || len(args) > 2 {
			return request{}, usage()
		}
		r.name, r.lines = args[0], defaultSamples
		if len(args) == 2 {
			n, err := count(args[1])
			if err != nil {
				return request{}, err
			}
			r.lines = n
		}
	case "LOGS":
		if len(args) == 0 || len(args) > 4 {
			return request{}, usage()
		}
		r.name, r.lines = args[0], defaultLogLines
		seenN := false
		for _, a := range args[1:] {
			stream, isStream := logStream(a)
			switch {
			case strings.EqualFold(a, "FOLLOW"):
				if r.follow {
					return request{}, usage()
				}
				r.follow = true
			case isStream:
				if r.stream != "" {
					return request{}, usage()
				}
				r.stream = stream
			case seenN:
				return request{}, usage()
			case strings.ContainsFunc(a, unicode.IsLetter):
				return request{}, fmt.Errorf("LOGS: %q is not a count (0 to %d), a stream (stdout, stderr, test) or FOLLOW", clip(a), maxLines)
			default:
				n, err := count(a)
				if err != nil {
					return request{}, err
				}
				r.lines, seenN = n, true
			}
		}
	case "HISTORY":
		if len(args) > 2 {
			return request{}, usage()
		}
		r.lines = defaultHistory
		if len(args) == 2 {
			r.name = args[0]
			n, err := count(args[1])
			if err != nil {
				return request{}, err
			}
			r.lines = n
		} else if len(args) == 1 {
			// One argument: a count if it is a number, else a job. (A job
			// named by digits alone needs the count too: HISTORY 42 20.)
			if strings.Trim(args[0], "0123456789") != "" {
				r.name = args[0]
			} else {
				n, err := count(args[0])
				if err != nil {
					return request{}, err
				}
				r.lines = n
			}
		}
	case "EVENTS":
		if len(args) > 1 {
			return request{}, usage()
		}
		if len(args) == 1 {
			r.name = args[0]
		}
	case "WAIT":
		if len(args) < 2 || len(args) > 3 {
			return request{}, usage()
		}
		r.name, r.timeout = args[0], defaultWait
		r.state = jobs.State(strings.ToLower(args[1]))
		if !waitStates[r.state] {
			return request{}, fmt.Errorf("WAIT: unknown state %q: use running, stopped, exited or failed (or starting, backoff, stopping, skipped)", clip(args[1]))
		}
		if len(args) == 3 {
			t, err := time.ParseDuration(args[2])
			if err != nil || t < 0 || t > maxWait {
				return request{}, fmt.Errorf("WAIT: a timeout must be a duration from 0s to %v such as 10s or 2m, not %q", maxWait, clip(args[2]))
			}
			r.timeout = t
		}
	case "SPAWN":
		return parseSpawn(r, line, usage)
	default:
		return request{}, fmt.Errorf("unknown verb %q: HELP lists the verbs", clip(fields[0]))
	}
	return r, nil
}

// WAIT's timeouts: protocol.md (WAIT) documents them.
const (
	defaultWait = 30 * time.Second
	maxWait     = 24 * time.Hour
)

// waitStates are the states WAIT accepts: those a job with a definition
// can be in. Each means the STATUS state of the same name.
var waitStates = map[jobs.State]bool{
	jobs.Running: true, jobs.Stopped: true, jobs.Exited: true, jobs.Failed: true,
	jobs.Starting: true, jobs.Backoff: true, jobs.Stopping: true, jobs.Skipped: true,
}

// logStream returns the stream name the log uses for a LOGS argument
// (stdout, stderr, test; any case), and whether word is one.
func logStream(word string) (string, bool) {
	switch strings.ToLower(word) {
	case "stdout":
		return jobs.StreamOut, true
	case "stderr":
		return jobs.StreamErr, true
	case "test":
		return jobs.StreamTest, true
	}
	return "", false
}

// parseSpawn parses SPAWN NAME [TTL] [TIED [PARENT]] -- COMMAND...: the
// command is the rest of the line after the first "--" word.
func parseSpawn(r request, line string, usage func() error) (request, error) {
	head, cmd, ok := cutDashes(line)
	args := strings.Fields(head)[1:]
	if !ok || len(args) == 0 {
		return request{}, usage()
	}
	r.name = args[0]
	if p := jobs.NameProblem(r.name); p != "" {
		return request{}, fmt.Errorf("SPAWN: invalid job name %q: %s", clip(r.name), p)
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.EqualFold(a, "TIED") && !r.tied:
			r.tied = true
			if i+1 < len(args) && strings.EqualFold(args[i+1], "PARENT") {
				r.tiedParent = true
				i++
			}
		case r.ttl == 0:
			d, err := time.ParseDuration(a)
			if err != nil || d <= 0 {
				return request{}, fmt.Errorf("SPAWN: a TTL must be a duration such as 90s or 1h, not %q", clip(a))
			}
			r.ttl = d
		default:
			return request{}, usage()
		}
	}
	argv, err := jobs.SplitCommand(cmd)
	if err != nil {
		return request{}, fmt.Errorf("SPAWN: the command after --: %v", err)
	}
	r.command = argv
	return r, nil
}

// cutDashes cuts line around its first word "--".
func cutDashes(line string) (head, rest string, found bool) {
	isSpace := func(b byte) bool { return b == ' ' || b == '\t' }
	for i := 0; i < len(line); {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		j := i
		for j < len(line) && !isSpace(line[j]) {
			j++
		}
		if line[i:j] == "--" {
			return line[:i], line[j:], true
		}
		i = j
	}
	return line, "", false
}

// clip shortens a piece of a request for an error message.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// removedWhy says why a job WAIT waited for went away, from the error
// Manager.Wait returned.
func removedWhy(err error) string {
	var re *jobs.RemovedError
	if !errors.As(err, &re) || re.Reason == "reload: file removed" {
		return "its file is gone"
	}
	return re.Reason
}

// flush waits, a little at most, until the store has committed every
// write queued so far: what STATUS shows is then in the database too, so a
// user who sees a job running finds its run with sqlite3. It returns why
// not, if not; the writes stay queued and are retried until they commit.
func (d *daemon) flush() error {
	err := d.store.Settle(context.Background())
	if err != nil {
		d.log.Warn("store is slow to write: answering anyway", "err", err)
	}
	return err
}

// changes holds the verbs whose answers tell of changes the store records.
// START, STOP and RESTART are not in it: their answers promise a hold, or
// its end, that outlives the daemon, so they wait for it themselves and
// say ERR when it is not saved (see saved).
var changes = map[string]bool{"RELOAD": true, "SPAWN": true}

// saved waits, as flush does, for the hold (or its release) that the
// answer ok promises, and writes it when it is committed. Else it writes an
// ERR that says what was done, that what is not saved and why, what holds
// meanwhile, and what to do once the database can be written (again).
// already reports whether the job a WAIT names is in its state now, so
// that the WAIT answers at once: stalled streams never deny such a look.
func (d *daemon) already(r request) bool {
	dt, err := d.mgr.Job(r.name)
	return err == nil && dt.State == r.state
}

// held reports whether STOP holds the named job now: only then has START
// or RESTART a hold's end to save, and an answer to wait for it.
func (d *daemon) held(name string) bool {
	dt, err := d.mgr.Job(name)
	return err == nil && dt.Held
}

func (d *daemon) saved(w io.Writer, ok, done, what, holds, again string) {
	if err := d.flush(); err != nil {
		fmt.Fprintf(w, "ERR %s, but %s is not saved: %v: %s; %s once the database can be written\n", done, what, err, holds, again)
		return
	}
	fmt.Fprintf(w, "OK %s\n", ok)
}

func (d *daemon) answer(w io.Writer, r request) {
	switch r.verb {
	case "STATUS":
		if r.name != "" {
			d.statusOne(w, r.name)
			return
		}
		all := d.mgr.Status()
		d.flush() // what it shows is in the database
		fmt.Fprintf(w, "OK %d jobs\n", len(all))
		now := time.Now()
		for _, st := range all {
			fmt.Fprintln(w, statusLine(st, now))
		}
	case "RELOAD":
		if r.dry {
			d.plan(w, r.verbose)
			return
		}
		d.firstReloadOnce.Do(func() { close(d.firstReload) })
		rep, err := d.reload()
		if err != nil {
			writeError(w, "", err)
			return
		}
		writeReport(w, rep, r.verbose)
	case "START":
		held := d.held(r.name)
		o, err := d.mgr.Start(r.name)
		switch {
		case err != nil:
			writeError(w, r.name, err)
		case o.Verb == jobs.Started && !held:
			d.flush() // nothing to save but what the answer shows
			fmt.Fprintf(w, "OK started %s\n", r.name)
		case o.Verb == jobs.Started:
			d.saved(w, "started "+r.name, "started "+r.name, "the end of its hold",
				"if STOP held it, a restarted overseerd may hold it again", "START "+r.name+" again")
		case o.Verb == jobs.Unchanged:
			fmt.Fprintf(w, "OK %s is already running\n", r.name)
		default: // skipped, failed
			d.flush() // what ended meanwhile is in the database
			fmt.Fprintf(w, "ERR %s not started: %s\n", r.name, oneLine(o.Detail))
		}
	case "STOP":
		o, err := d.mgr.Stop(r.name)
		switch {
		case err != nil:
			writeError(w, r.name, err)
		case o.Detail == jobs.Forgotten && o.Verb == jobs.StoppedIt:
			fmt.Fprintf(w, "OK stopped %s and forgot it: it was ephemeral\n", r.name)
		case o.Detail == jobs.Forgotten:
			fmt.Fprintf(w, "OK %s was not running; forgot it: it was ephemeral\n", r.name)
		case o.Verb == jobs.StoppedIt:
			d.saved(w, fmt.Sprintf("stopped %s; it stays stopped until START", r.name), "stopped "+r.name, "the hold",
				"it stays stopped while this overseerd runs, but a restarted one may start it", "STOP "+r.name+" again")
		default:
			d.saved(w, fmt.Sprintf("%s was not running; it stays stopped until START", r.name), r.name+" was not running", "the hold",
				"it stays stopped while this overseerd runs, but a restarted one may start it", "STOP "+r.name+" again")
		}
	case "RESTART":
		held := d.held(r.name)
		o, err := d.mgr.Restart(r.name)
		switch {
		case err != nil:
			writeError(w, r.name, err)
		case (o.Verb == jobs.Restarted || o.Verb == jobs.Started) && !held:
			d.flush() // nothing to save but what the answer shows
			fmt.Fprintf(w, "OK %s %s\n", o.Verb, r.name)
		case o.Verb == jobs.Restarted || o.Verb == jobs.Started:
			d.saved(w, o.Verb.String()+" "+r.name, o.Verb.String()+" "+r.name, "the end of its hold",
				"if STOP held it, a restarted overseerd may hold it again", "RESTART "+r.name+" again")
		case o.Verb == jobs.Unchanged:
			fmt.Fprintf(w, "OK %s is running\n", r.name)
		default:
			d.flush() // the run it stopped is in the database
			fmt.Fprintf(w, "ERR %s not started: %s\n", r.name, oneLine(o.Detail))
		}
	case "SIGNAL":
		o, err := d.mgr.Signal(r.name, r.sig)
		switch {
		case err != nil:
			writeError(w, r.name, err)
		case o.Verb == jobs.Unchanged:
			fmt.Fprintf(w, "ERR %s is not running\n", r.name)
		default:
			fmt.Fprintf(w, "OK sent %s to %s (process group %s)\n", jobs.SignalName(r.sig), r.name, o.Detail)
		}
	case "LOGS":
		lines, err := d.mgr.Logs(r.name, r.lines, r.stream)
		if err != nil {
			writeError(w, r.name, err)
			return
		}
		fmt.Fprintf(w, "OK %d lines\n", len(lines))
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	case "HISTORY":
		runs, err := d.store.Runs(context.Background(), r.name, r.lines)
		if err != nil {
			writeError(w, r.name, err)
			return
		}
		if r.lines == 0 {
			runs = nil
		}
		fmt.Fprintf(w, "OK %d runs\n", len(runs))
		for _, run := range runs {
			fmt.Fprintln(w, historyLine(run))
		}
	case "INSPECT":
		d.inspect(w, r.name, r.lines)
	case "SPAWN":
		d.spawn(w, r)
	case "DIE":
		d.dieOnce.Do(func() { close(d.die) })
	case "PING":
		fmt.Fprintf(w, "OK overseer %s pid %d cleanup=%s\n", version, os.Getpid(), d.mgr.Cleanup())
	case "HELP":
		writeHelp(w)
	}
}

// spawn answers SPAWN: an ephemeral job, unless a job file has its name
// (loaded or not yet) or it cannot start.
func (d *daemon) spawn(w io.Writer, r request) {
	if _, err := os.Lstat(filepath.Join(d.opts.configDir, r.name+".env")); err == nil {
		fmt.Fprintf(w, "ERR SPAWN: the name %s belongs to the job file %s.env: pick another name\n", r.name, r.name)
		return
	}
	sp := jobs.Spawn{Name: r.name, Command: r.command, TTL: r.ttl, TiedParent: r.tiedParent}
	if r.tied {
		sp.TiedPid = r.peerPid
	}
	o, info, err := d.mgr.Spawn(sp)
	switch {
	case err != nil:
		writeError(w, r.name, err)
	case o.Verb == jobs.FailedIt:
		fmt.Fprintf(w, "ERR %s not started: %s\n", r.name, oneLine(o.Detail))
	default:
		fmt.Fprintf(w, "OK spawned %s%s\n", r.name, ephemeralNote(info, time.Now(), ": "))
	}
}

// ephemeralNote describes an ephemeral job's bounds: " ttl=1h0m0s tied=4242",
// each part after sep.
func ephemeralNote(e jobs.Ephemeral, now time.Time, sep string) string {
	var parts []string
	if !e.Expires.IsZero() {
		parts = append(parts, "ttl="+max(e.Expires.Sub(now), 0).Round(time.Second).String())
	}
	if e.TiedTo > 0 {
		parts = append(parts, "tied="+strconv.Itoa(e.TiedTo))
	}
	if len(parts) == 0 {
		return ""
	}
	return sep + strings.Join(parts, " ")
}

// writeHelp writes the HELP answer.
func writeHelp(w io.Writer) {
	fmt.Fprintf(w, "OK %d verbs\n", len(verbs))
	for _, v := range verbs {
		fmt.Fprintf(w, "%s%s\t%s\n", v.name, v.args, v.help)
	}
}

// writeError answers ERR for err: the user's words for the errors users
// cause, "internal error" (and the daemon's log) for the others.
func writeError(w io.Writer, name string, err error) {
	switch {
	case errors.Is(err, jobs.ErrNoJob):
		fmt.Fprintf(w, "ERR no job named %q\n", clip(name))
	case errors.Is(err, jobs.ErrRejected):
		fmt.Fprintf(w, "ERR %s has no running version: %v\n", name, err)
	case errors.As(err, new(*jobs.SpawnError)):
		fmt.Fprintf(w, "ERR %v\n", err)
	case errors.Is(err, jobs.ErrClosed):
		fmt.Fprintf(w, "ERR shutting down\n")
	case errors.Is(err, syscall.ELOOP):
		fmt.Fprintf(w, "ERR %v: overseer follows no symbolic link in its data dir; remove it\n", err)
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(w, "ERR %v\n", err) // e.g. the config dir is gone
	default:
		slog.Error("request failed", "job", name, "err", err)
		fmt.Fprintf(w, "ERR internal error\n")
	}
}

// statusOne answers STATUS NAME: one "key: value" line per fact. Values
// from the job file other than COMMAND, TEST and DIR are never shown: only
// the names of its environment keys.
func (d *daemon) statusOne(w io.Writer, name string) {
	dt, err := d.mgr.Job(name)
	if err != nil {
		writeError(w, name, err)
		return
	}
	runs, err := d.store.Runs(context.Background(), name, 5)
	if err != nil {
		writeError(w, name, err)
		return
	}
	j := dt.Job
	show := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "%s: %s\n", k, oneLine(v))
	}
	fmt.Fprintf(w, "OK %s %s\n", name, dt.State)
	show("name", name)
	show("state", string(dt.State))
	show("note", dt.Reason)
	if dt.Pid > 0 {
		show("pid", strconv.Itoa(dt.Pid))
	} else {
		show("pid", "")
	}
	show("since", dt.Since.UTC().Format("2006-01-02T15:04:05.000Z"))
	show("for", time.Since(dt.Since).Round(time.Second).String())
	show("restarts", strconv.Itoa(dt.Restarts))
	if dt.LastExit != nil {
		show("last-exit", dt.LastExit.String())
	} else {
		show("last-exit", "")
	}
	show("held", map[bool]string{true: "yes: STOP holds it stopped until START", false: "no"}[dt.Held])
	if e := dt.Ephemeral; e != nil {
		show("ephemeral", "yes: started by SPAWN; STOP forgets it")
		if !e.Expires.IsZero() {
			show("expires", e.Expires.UTC().Format("2006-01-02T15:04:05.000Z"))
		} else {
			show("expires", "")
		}
		if e.TiedTo > 0 {
			show("tied-to", "pid "+strconv.Itoa(e.TiedTo))
		} else {
			show("tied-to", "")
		}
		show("file", "")
	} else {
		show("ephemeral", "no")
		show("file", name+".env")
	}
	show("file-rejected", dt.Rejected)
	show("config-hash", j.Hash)
	show("command", jobs.ShellJoin(j.Command))
	show("test", jobs.ShellJoin(j.Test))
	dir := j.Dir
	if dir == "" && j.User != "" {
		dir = "the USER's home (default)"
	} else if dir == "" {
		dir = "$HOME (default)"
	}
	show("dir", dir)
	user := j.User
	if j.Group != "" {
		user += ":" + j.Group
	}
	show("user", user)
	show("restart", j.Restart)
	var keys []string
	for _, kv := range j.Env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	show("env-keys", strings.Join(keys, " "))
	show("cleanup", d.mgr.CleanupOf(name))
	for _, run := range runs {
		show("run", historyLine(run))
	}
}

// oneLine returns v for an answer line: as it is, or, when v holds a
// control character or bytes that are not UTF-8 (a value from a job file
// may), double-quoted with Go's escapes ("a\nb"), so that no value splits
// or forges a line. protocol.md (STATUS NAME) documents it.
func oneLine(v string) string {
	if utf8.ValidString(v) && !strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return v
	}
	return strconv.Quote(v)
}

// inspect answers INSPECT NAME N: STATUS NAME's answer, then how the job
// is sampled and its last n samples, newest first.
func (d *daemon) inspect(w io.Writer, name string, n int) {
	var b bytes.Buffer
	d.statusOne(&b, name)
	if !bytes.HasPrefix(b.Bytes(), []byte("OK ")) {
		w.Write(b.Bytes()) // the error
		return
	}
	dt, err := d.mgr.Job(name)
	if err != nil {
		writeError(w, name, err)
		return
	}
	var samples []jobs.Sample
	if n > 0 {
		if samples, err = d.store.Samples(context.Background(), name, n); err != nil {
			writeError(w, name, err)
			return
		}
	}
	w.Write(b.Bytes())
	switch {
	case dt.MetricsInterval > 0:
		fmt.Fprintf(w, "metrics-interval: %v\n", dt.MetricsInterval)
	case dt.Ephemeral != nil:
		fmt.Fprintf(w, "metrics-interval: off: an ephemeral job is sampled only when overseerd runs with -metrics-interval\n")
	case dt.Job != nil && dt.Job.MetricsIntervalSet:
		fmt.Fprintf(w, "metrics-interval: off: %s.env sets METRICS_INTERVAL=0\n", name)
	default:
		fmt.Fprintf(w, "metrics-interval: off: set METRICS_INTERVAL in %s.env, or run overseerd with -metrics-interval\n", name)
	}
	fmt.Fprintf(w, "samples: %d\n", len(samples))
	for _, s := range samples {
		fmt.Fprintf(w, "sample: %s cpu=%.1f%% rss=%d threads=%d files=%d procs=%d pid=%d\n",
			s.At.UTC().Format("2006-01-02T15:04:05.000Z"), s.CPU, s.RSS, s.Threads, s.Files, s.Procs, s.Pid)
	}
}

// historyLine formats one run: ID JOB PID STARTED ENDED FOR HOW REASON.
func historyLine(r sqlstore.Run) string {
	ended, dur, how, reason := "-", "-", "running", "-"
	if r.EndedAt != nil {
		ended = r.EndedAt.UTC().Format("2006-01-02T15:04:05.000Z")
		dur = r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		switch {
		case r.Signal != "":
			how = "signal=" + r.Signal
		case r.ExitCode != nil:
			how = fmt.Sprintf("exit=%d", *r.ExitCode)
		default:
			how = "unknown"
		}
	}
	if r.Reason != "" {
		reason = r.Reason
	}
	return fmt.Sprintf("%d %s %d %s %s %s %s %s", r.ID, r.Job, r.Pid,
		r.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"), ended, dur, how, reason)
}

// follow answers LOGS NAME [N] [STREAM] FOLLOW: the last lines, then every new line
// until the client goes away, the job is removed or the daemon stops.
func (d *daemon) follow(c net.Conn, r request) {
	last, f, stop, err := d.mgr.Follow(r.name, r.lines, r.stream)
	if err != nil {
		var b bytes.Buffer
		writeError(&b, r.name, err)
		c.Write(b.Bytes())
		return
	}
	defer stop()
	gone := make(chan struct{})
	go func() {
		awaitGone(c)
		close(gone)
	}()
	w := bufio.NewWriterSize(c, streamWriteBuffer)
	fmt.Fprintf(w, "OK following %s\n", r.name)
	for _, l := range last {
		fmt.Fprintln(w, l)
	}
	for {
		if len(f.Lines()) == 0 {
			if n := f.Dropped(); n > 0 {
				fmt.Fprintf(w, "-- %d lines dropped: this reader was too slow --\n", n)
			}
		}
		// A reader too slow to take a line in writeTimeout is dropped;
		// no deadline is left armed while nothing is written.
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if w.Flush() != nil {
			return
		}
		c.SetWriteDeadline(time.Time{})
		select {
		case l, ok := <-f.Lines():
			if !ok {
				return
			}
			fmt.Fprintln(w, l)
		case <-gone:
			return
		}
	}
}

// statusLine formats one STATUS line: NAME STATE PID FOR RESTARTS LAST [NOTE].
func statusLine(st jobs.Status, now time.Time) string {
	pid, age, last := "-", "-", "-"
	if st.Pid > 0 {
		pid = strconv.Itoa(st.Pid)
	}
	if !st.Since.IsZero() {
		age = now.Sub(st.Since).Round(time.Second).String()
	}
	if st.LastExit != nil {
		last = st.LastExit.String()
	}
	line := fmt.Sprintf("%s %s %s %s %d %s", st.Name, st.State, pid, age, st.Restarts, last)
	note := oneLine(st.Reason)
	if st.Ephemeral != nil {
		// A marker at the note's start, never quoted: field 7 is the word
		// "ephemeral".
		note = "ephemeral" + ephemeralNote(*st.Ephemeral, now, " ")
		if st.Reason != "" {
			note += "; " + oneLine(st.Reason)
		}
	}
	if note != "" {
		line += " " + note
	}
	return line
}

// plan answers RELOAD DRY: what a RELOAD would do now and why, one line
// per job (keeps only when verbose), touching nothing.
func (d *daemon) plan(w io.Writer, verbose bool) {
	actions, err := d.mgr.Plan(d.opts.configDir)
	if err != nil {
		writeError(w, "", err)
		return
	}
	count := make(map[jobs.Verb]int)
	for _, a := range actions {
		count[a.Verb]++
	}
	fmt.Fprintf(w, "OK plan: %d start, %d restart, %d update, %d stop, %d skip, %d reject, %d keep\n",
		count[jobs.Started], count[jobs.Restarted], count[jobs.Updated], count[jobs.StoppedIt],
		count[jobs.SkippedIt], count[jobs.RejectedIt], count[jobs.Unchanged])
	for _, a := range actions {
		if a.Verb != jobs.Unchanged || verbose {
			fmt.Fprintln(w, oneLine(a.String()))
		}
	}
}

// writeReport writes a RELOAD answer: a summary, then one line per change
// (and, verbose, one per unchanged job).
func writeReport(w io.Writer, rep jobs.Report, verbose bool) {
	fmt.Fprintf(w, "OK %d jobs: %d started, %d restarted, %d stopped, %d skipped, %d failed, %d rejected\n",
		rep.Jobs, rep.Count(jobs.Started), rep.Count(jobs.Restarted), rep.Count(jobs.StoppedIt),
		rep.Count(jobs.SkippedIt), rep.Count(jobs.FailedIt), rep.Count(jobs.RejectedIt))
	for _, c := range rep.Changes {
		switch {
		case c.Verb == jobs.Unchanged && !verbose:
		case c.Verb == jobs.RejectedIt:
			// The detail names the file first: quoted if it must be.
			if detail, ok := strings.CutPrefix(c.Detail, c.Name); ok {
				fmt.Fprintf(w, "rejected %s%s\n", quoteName(c.Name), detail)
			} else {
				fmt.Fprintf(w, "rejected %s\n", c.Detail)
			}
		case c.Detail != "":
			fmt.Fprintf(w, "%s %s: %s\n", c.Verb, quoteName(c.Name), oneLine(c.Detail))
		default:
			fmt.Fprintf(w, "%s %s\n", c.Verb, quoteName(c.Name))
		}
	}
}

// quoteName returns a file name as it is, or Go-quoted ("\xff.env") if it
// is not valid UTF-8 or holds a space or control character: an answer is
// text, one item per line, and its names must not break it.
func quoteName(name string) string {
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' }) {
		return strconv.Quote(name)
	}
	return name
}

// eventsWriteBuffer is the kernel's send buffer for an EVENTS connection:
// small, so that a subscriber that stops reading holds little memory and
// learns soon, by a DROPPED line, that it missed events.
const eventsWriteBuffer = 16 << 10

// events answers EVENTS [NAME]: a line per state transition, from now
// until the client leaves or the daemon stops. A subscriber that falls
// behind loses events, never slows supervision, and is told how many it
// lost once it has caught up.
func (d *daemon) events(c net.Conn, r request) {
	sub, err := d.mgr.Subscribe(r.name)
	if err != nil {
		var b bytes.Buffer
		writeError(&b, r.name, err)
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		c.Write(b.Bytes())
		return
	}
	defer sub.Close()
	c.(*net.UnixConn).SetWriteBuffer(eventsWriteBuffer)
	gone := make(chan struct{})
	go func() {
		awaitGone(c)
		close(gone)
	}()
	// A write blocked on a subscriber that does not read ends when it
	// leaves, soon after the daemon has stopped its jobs, or after
	// writeTimeout: then it is dropped, as a LOGS FOLLOW reader is.
	finished := make(chan struct{})
	defer close(finished)
	var deadlineMu sync.Mutex
	ending := false // a deadline set by the watcher below is the last word
	deadline := func(t time.Time, last bool) {
		deadlineMu.Lock()
		defer deadlineMu.Unlock()
		if !ending {
			ending = last
			c.SetWriteDeadline(t)
		}
	}
	go func() {
		select {
		case <-gone:
			deadline(time.Now(), true)
		case <-d.dead:
			deadline(time.Now().Add(time.Second), true)
		case <-finished:
		}
	}()
	flush := func(w *bufio.Writer) error {
		deadline(time.Now().Add(writeTimeout), false)
		if err := w.Flush(); err != nil {
			return err
		}
		deadline(time.Time{}, false) // no timer armed while idle
		return nil
	}
	w := bufio.NewWriterSize(c, streamWriteBuffer)
	if r.name == "" {
		fmt.Fprintf(w, "OK following events of every job\n")
	} else {
		fmt.Fprintf(w, "OK following events of %s\n", r.name)
	}
	for {
		if len(sub.Events()) == 0 {
			if n := sub.Dropped(); n > 0 {
				fmt.Fprintf(w, "DROPPED %d\n", n)
			}
			if flush(w) != nil {
				return
			}
		}
		select {
		case e, ok := <-sub.Events():
			if !ok {
				w.Flush()
				return
			}
			fmt.Fprintln(w, eventLine(e))
		case <-gone:
			return
		}
	}
}

// eventLine formats one EVENTS line: TIME JOB OLD NEW PID REASON.
func eventLine(e jobs.Event) string {
	pid := "-"
	if e.Pid > 0 {
		pid = strconv.Itoa(e.Pid)
	}
	reason := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' ' // one event, one line
		}
		return r
	}, e.Reason)
	if reason == "" {
		reason = "-"
	}
	return fmt.Sprintf("%s %s %s %s %s %s", e.At.UTC().Format("2006-01-02T15:04:05.000Z"), e.Job, e.Old, e.New, pid, reason)
}

// wait answers WAIT NAME STATE [TIMEOUT]: OK once the job is in STATE,
// ERR timeout if TIMEOUT passes first; nothing if the client leaves.
func (d *daemon) wait(c net.Conn, r request) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	go func() {
		// When the client leaves (or half-closes) nobody waits for the answer.
		awaitGone(c)
		cancel()
	}()
	last, err := d.mgr.Wait(ctx, r.name, r.state)
	var b bytes.Buffer
	switch {
	case err == nil:
		d.flush() // what it reports is in the database
		fmt.Fprintf(&b, "OK %s is %s\n", r.name, last)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(&b, "ERR timeout after %v: %s is %s, not %s\n", r.timeout, r.name, last, r.state)
	case errors.Is(err, context.Canceled):
		return // the client left
	case errors.Is(err, jobs.ErrRemoved):
		fmt.Fprintf(&b, "ERR %s was removed: %s\n", r.name, removedWhy(err))
	default:
		writeError(&b, r.name, err)
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.Write(b.Bytes())
}
