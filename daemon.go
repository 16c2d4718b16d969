package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"overseer/jobs"
	"overseer/sqlstore"
)

// daemon is overseerd's running state.
type daemon struct {
	opts  options
	verbs []verb // the protocol: protocol.go's table, which HELP lists
	log   *slog.Logger
	mgr   *jobs.Manager
	store *sqlstore.DB

	die     chan struct{} // closed by the first DIE
	dieOnce sync.Once
	dead    chan struct{} // closed once jobs are stopped and state is closed

	firstReload     chan struct{} // closed by the first RELOAD request
	firstReloadOnce sync.Once

	// freeAfter: the last reload changed jobs (giveBack).
	freeAfter atomic.Bool
	swept     atomic.Bool // set once rows of jobs gone while no daemon ran are marked removed

	big chan struct{} // a slot for each answer of megabytes being made or sent (maxBigAnswers)

	streamsMu sync.Mutex // guards the two below
	streams   int        // EVENTS, LOGS FOLLOW and WAIT clients being served
	peak      int        // the most streams since memory was last given back

	connsMu sync.Mutex
	open    map[net.Conn]struct{} // connections being served; guarded by connsMu
	cut     bool                  // set once open connections are cut at exit; guarded by connsMu

	sock      *socket
	reaper    *jobs.Reaper
	holder    *jobs.Holder // the pipe holder (Linux); nil: none
	lockFD    int          // the data dir's descriptor, which holds its lock
	started   time.Time    // when the daemon first started, upgrades or not: PING's up
	upgrading sync.Mutex   // held by the UPGRADE under way

	// running counts the goroutines started to serve: the first
	// reconcile, the SIGHUP loop, one per connection (each waits for
	// those it starts itself) and FreeOSMemory's. runDaemon returns once
	// they have all ended.
	running sync.WaitGroup
}

// openedStore is sqlstore.Open's result.
type openedStore struct {
	db  *sqlstore.DB
	err error
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

	// An upgrade's new image builds its whole state at once (the handover
	// decoded, a supervisor per job): the collector would run cycle after
	// cycle over it while clients wait (~12 ms of CPU at 1000 jobs). It
	// runs once the socket is served again.
	gcPercent := 0
	if opts.handoverFD > 0 {
		gcPercent = debug.SetGCPercent(-1)
		defer func() { debug.SetGCPercent(gcPercent) }() // a return before serving
	}

	// One daemon per data dir: the lock (on the dir itself, which no
	// unlink defeats) is taken before the socket or the database is
	// touched, and released by the kernel if we die.
	// An upgrade's new image holds the lock already: its predecessor in
	// this process took it, and passed it on with the rest (upgrade.go).
	var up *handover
	dbPath := filepath.Join(opts.dataDir, "overseer.db")
	var early chan openedStore
	if opts.handoverFD > 0 {
		// The lock is ours already: the database opens (~3 ms) while the
		// handover is read, on the other core.
		early = make(chan openedStore, 1)
		var opening sync.WaitGroup
		defer opening.Wait()
		opening.Go(func() {
			db, err := sqlstore.Open(dbPath)
			early <- openedStore{db, err}
		})
		defer func() { // returned before taking it: close it
			if early != nil {
				if o := <-early; o.db != nil {
					o.db.Close()
				}
			}
		}()
		if up, err = readHandover(opts.handoverFD); err != nil {
			return err
		}
	}
	unlock, lockFD, err := lock(opts.dataDir, up)
	if err != nil {
		return err
	}
	defer unlock()

	// Open the store and close runs a dead predecessor left open. Start-up
	// only reads and queues writes: while another program holds the
	// database's write lock, the daemon supervises all the same, and its
	// writes follow, in order, when the lock is released.
	var store *sqlstore.DB
	if early != nil {
		o := <-early
		early = nil
		store, err = o.db, o.err
	} else {
		store, err = sqlstore.Open(dbPath)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	store.SetWarn(func(err error) { log.Warn("store", "err", err) })
	// The key of the definitions table's digests, before any job file is
	// read (after the store: a full disk is then the store's to say).
	key, err := digestKey(opts.dataDir)
	if err != nil {
		return err
	}
	jobs.SetDigestKey(key)
	// Jobs held by STOP (after an upgrade, the handover says which).
	var held map[string]bool
	if up == nil {
		if held, err = store.Held(ctx); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
	}
	// Processes a daemon that died left running: stop them, whole, so that
	// no job runs twice, and close their runs.
	// (After an upgrade, the open runs are those of the jobs adopted below.)
	var open []sqlstore.Run
	if up == nil {
		if open, err = store.OpenRuns(ctx); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
	}
	lost := make(map[string]jobs.Exit)
	// The pipes of its jobs, which its pipe holder kept: taken back before
	// anything is stopped, so that no writer dies of a broken pipe. (Not
	// after an upgrade: the pipes came in the handover, and the holder
	// lives on, ours.)
	var kept []jobs.HeldPipe
	if up == nil {
		if kept, err = jobs.Reclaim(opts.dataDir); err != nil {
			log.Warn("the pipes an earlier overseerd left", "err", err)
		}
	}
	// Survivors whose pipes the holder kept, whose job file is the one
	// they started from, and whose exit a pidfd can watch (Linux 5.3) are
	// adopted below, running on; the others are stopped.
	home, _ := os.UserHomeDir()
	survivors := make([]jobs.Survivor, len(open))
	for i, r := range open {
		row, _, err := store.Job(ctx, r.Job)
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		survivors[i] = jobs.Survivor{Run: r.ID, Job: r.Job, Pid: r.Pid, Start: r.ProcStart, StartedAt: r.StartedAt, Hash: row.ConfigHash, Held: held[r.Job]}
		if r.ReadyAt != nil {
			survivors[i].ReadyAt = *r.ReadyAt
		}
	}
	adopt, toStop, notAdopted, kept := jobs.ChooseSurvivors(opts.configDir, os.Environ(), home, survivors, kept)
	if len(toStop) > 0 {
		orphans := make([]jobs.Orphan, len(toStop))
		for i, r := range toStop {
			orphans[i] = jobs.Orphan{Run: r.Run, Pid: r.Pid, Start: r.Start}
			if why := notAdopted[r.Run]; why != "" {
				log.Warn("an earlier overseerd died: not adopting its job's process, stopping it", "job", r.Job, "pid", r.Pid, "why", why)
			}
		}
		stopped := jobs.StopOrphans(orphans, orphanStopTimeout)
		for _, r := range toStop {
			// It ended while no daemon watched: when, nobody knows (no
			// end time); else it ends now, stopped.
			reason, at := "unknown", time.Time{}
			if stopped[r.Run] {
				reason, at = "orphaned", time.Now()
			}
			if err := store.CloseRun(ctx, r.Run, at, reason); err != nil {
				return fmt.Errorf("open store: %w", err)
			}
			// How the job's last process ended is unknown: STATUS says so.
			lost[r.Job] = jobs.Exit{Pid: r.Pid, Code: -1, Unknown: true, Reason: reason}
		}
		log.Warn("an earlier overseerd died: closed its runs", "runs", len(toStop), "stopped", len(stopped))
	}
	// And whatever else it left: processes started just before it died,
	// TESTs, descendants that left their group (Linux); not what the jobs
	// adopted started.
	if up == nil {
		if n := jobs.Sweep(opts.dataDir, jobs.Names(adopt), orphanStopTimeout); n > 0 {
			log.Warn("stopped processes an earlier overseerd left", "count", n)
		}
	}
	// What its jobs wrote since it died, and until they stopped, goes to
	// their logs (the adopted jobs' pipes are read on, below).
	if len(kept) > 0 {
		jobs.DrainHeld(kept, logDir, int64(opts.logMaxSize), opts.logKeep)
		log.Info("wrote what the jobs of an earlier overseerd wrote after it died", "pipes", len(kept))
	}
	store.SetKeepRuns(opts.keepRuns)
	store.SetKeepSamples(opts.keepSamples)

	// The reaper must be subscribed to SIGCHLD before the first child
	// starts. stopReaper ends it and waits until it has.
	reapCtx, cancelReaper := context.WithCancel(context.Background())
	var reaping sync.WaitGroup
	stopReaper := func() {
		cancelReaper()
		reaping.Wait()
	}
	defer stopReaper()
	reaper := jobs.NewReaper()
	startReaper := func() { reaping.Go(func() { reaper.Run(reapCtx) }) }
	if up == nil {
		startReaper()
	}

	// The pipe holder: jobs that write outlive a crash of the daemon
	// (Linux). Without it they run all the same.
	// After an upgrade, the old image's holder is ours: registered with
	// the reaper before its first pass.
	var holder *jobs.Holder
	if up != nil && up.Holder.PID > 0 {
		exe, _ := os.Executable()
		holder = jobs.AdoptHolder(reaper, up.Holder.FD, up.Holder.PID, exe, opts.dataDir, log.Warn)
	} else if exe, err := os.Executable(); err == nil {
		holder, err = jobs.StartHolder(reaper, exe, opts.dataDir, log.Warn)
		if err != nil && runtime.GOOS == "linux" {
			log.Warn("no pipe holder: a job that writes would die of SIGPIPE should the daemon die", "err", err)
		}
	}
	defer holder.Close()

	d := &daemon{
		opts:        opts,
		verbs:       verbs,
		log:         log,
		store:       store,
		die:         make(chan struct{}),
		dead:        make(chan struct{}),
		firstReload: make(chan struct{}),
		open:        make(map[net.Conn]struct{}),
		big:         make(chan struct{}, maxBigAnswers),
		lockFD:      lockFD,
		reaper:      reaper,
		holder:      holder,
		started:     time.Now(),
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
			TailLines:  opts.tailLines,
			TailBytes:  int(opts.tailBytes),
			Held:       held,
			Lost:       lost,
			Samples:    store,
			// Sampling is opt-in: without it no timer runs for it.
			MetricsInterval: opts.metricsInterval,
			Cgroups:         opts.cgroups,
			Holder:          holder,
			Adopting:        up != nil,
			Survivors:       jobs.Names(adopt),
		}),
	}

	// After a crash: adopt the survivors chosen above, before the first
	// reload (which then finds them running, unchanged), and note it in
	// their runs.
	if len(adopt) > 0 {
		adopted, err := d.mgr.AdoptSurvivors(adopt)
		if err != nil {
			log.Error("adopt the jobs of an earlier overseerd", "err", err)
		}
		now := time.Now()
		for _, a := range adopted {
			if err := store.MarkAdopted(ctx, a.Run, now); err != nil {
				return fmt.Errorf("open store: %w", err)
			}
		}
		log.Warn("an earlier overseerd died: adopted its jobs that still ran, with their output pipes", "jobs", len(adopted))
	}

	// After an upgrade: take over the jobs the old image let go of, before
	// the reaper's first pass, which collects the children that exited
	// during the exec with their true status.
	if up != nil {
		d.started = up.Started
		d.swept.Store(up.Swept)
		if err := d.mgr.Adopt(up.Jobs); err != nil {
			log.Error("upgrade: adopt jobs", "err", err)
		}
		startReaper()
	}

	// Listen. A socket file left here is stale unless a daemon answers on
	// it (one of another data dir given the same -socket): never steal it,
	// and never remove what is not a socket.
	var sock *socket
	if up != nil {
		sock, err = inherit(opts.socket, up.Socket)
	} else if err = clearSocket(opts.socket); err == nil {
		sock, err = listen(opts.socket)
	}
	if err != nil {
		return err
	}
	d.sock = sock
	if up != nil {
		log.Info("overseerd upgraded", "pid", os.Getpid(), "from", up.From, "to", buildVersion(), "jobs", len(up.Jobs.Jobs))
		answerUpgrade(up)
	} else {
		log.Info("overseerd started", "pid", os.Getpid(), "socket", opts.socket, "config", opts.configDir)
	}
	if report != nil {
		report.Close() // we started: the client's read ends
		report = nil
	}

	// First reconcile, in the background so STATUS answers meanwhile. A
	// daemon the client launched leaves it to the client's RELOAD, which
	// follows at once, so that its answer shows what started (and TESTs
	// run once): unless that RELOAD does not come.
	d.running.Go(func() {
		if up != nil {
			return // the jobs run as the old image left them
		}
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
		if _, err := d.reload(false); err != nil {
			log.Error("start-up reload", "err", err)
		}
		d.giveBack()
	})

	// Serve, one goroutine and one request per connection.
	sock.serve(func(c net.Conn) {
		d.running.Go(func() {
			if d.track(c) {
				defer d.untrack(c)
				d.serve(c)
			}
		})
	}, log)
	if opts.handoverFD > 0 {
		debug.SetGCPercent(gcPercent)
	}

	// SIGHUP reloads, like RELOAD; and listens again if our socket file
	// was removed (the one way back for a daemon clients cannot reach).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d.running.Go(func() {
		for {
			select {
			case <-hup:
				if err := sock.relisten(); err != nil {
					log.Error("listen again", "socket", opts.socket, "err", err)
				}
				if _, err := d.reload(false); err != nil {
					log.Error("reload on SIGHUP", "err", err)
				}
				d.giveBack()
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
	holder.Close() // before KillChildren: it goes in order, removing its socket
	if n := jobs.KillChildren(time.Second); n > 0 {
		log.Info("killed processes jobs had left behind", "count", n)
	}
	sock.close() // removes the socket file only if it is still ours
	stopReaper()
	err = store.Close()
	unlock()
	close(d.dead)
	// Answers get shutdownGrace to go; a client that does not read its
	// answer does not hold our exit for writeTimeout. Every goroutine we
	// started has ended when we return.
	var waiter sync.WaitGroup
	served := make(chan struct{})
	waiter.Go(func() {
		d.running.Wait()
		close(served)
	})
	select {
	case <-served:
	case <-time.After(shutdownGrace):
		d.cutConns()
		<-served
	}
	waiter.Wait()
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
//
// After an upgrade (up), the lock is the one the old image took, on the
// descriptor it passed on. fd is the data dir's descriptor.
func lock(dir string, up *handover) (unlock func(), fd int, err error) {
	pidPath := filepath.Join(dir, "overseer.lock")
	var d *os.File
	if up != nil {
		d = os.NewFile(uintptr(up.Lock), dir)
		syscall.CloseOnExec(up.Lock)
	} else {
		if d, err = os.Open(dir); err != nil {
			return nil, 0, fmt.Errorf("lock: %w", err)
		}
		if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			d.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				b, _ := os.ReadFile(pidPath)
				return nil, 0, &heldError{dir: dir, pid: strings.TrimSpace(string(b))}
			}
			return nil, 0, fmt.Errorf("lock %s: %w", dir, err)
		}
	}
	f, err := os.OpenFile(pidPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		d.Close()
		return nil, 0, fmt.Errorf("lock: %w", err)
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
	}, int(d.Fd()), nil
}

// reload converges the jobs to the config dir and logs what changed. After
// the first pass it marks removed the database rows of jobs whose files went
// away while no daemon ran (later removals the manager records itself).
func (d *daemon) reload(nowait bool) (jobs.Report, error) {
	rep, err := d.mgr.Reload(context.Background(), d.opts.configDir, nowait)
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
	// Reading the files and starting the jobs left garbage the size of
	// the jobs' own state: it goes back to the system (giveBack) once the
	// reload is done, its sweep below, its records committed and its
	// answer written, rather than stay resident while nothing happens
	// (the runtime returns it only slowly).
	if changed > 0 {
		d.freeAfter.Store(true)
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
