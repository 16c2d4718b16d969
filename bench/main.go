// Command bench runs the same workloads under overseer and under the
// supervisors its users would otherwise pick (s6, runit, supervisord), one
// after the other, and prints one table with the figures and overseer's
// ratio to each. Linux only: it reads /proc. See README.md, "Benchmarks".
//
//	go build -o /tmp/overseer . && go run ./bench -overseer /tmp/overseer
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-minimal-supervisor" {
		os.Exit(minimalSupervisor(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are bench's flags.
type options struct {
	overseer string   // the overseer binary to measure
	peers    []string // peers to measure beside it
	sizes    []int    // job counts for bring-up and memory
	kills    int      // restart-latency samples
	idle     time.Duration
	storm    time.Duration
	install  bool            // apt-get install missing peers
	quick    bool            // a smoke run: tiny sizes, few samples
	only     map[string]bool // workloads to run; empty: all
}

// workloads names the parts of a run that -only can choose.
var workloads = []string{"bringup", "restart", "idle", "status", "reload", "storm", "scale", "upgrade"}

func (o options) runs(w string) bool { return len(o.only) == 0 || o.only[w] }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var peers, sizes string
	fs.StringVar(&o.overseer, "overseer", "overseer", "the overseer `binary` to measure")
	fs.StringVar(&peers, "peers", "s6,runit,supervisord,go-minimal", "comma-separated peers to measure beside overseer (go-minimal: a reference, the smallest Go supervisor, run by bench itself)")
	fs.StringVar(&sizes, "n", "100,1000", "comma-separated job counts for bring-up and memory")
	fs.IntVar(&o.kills, "kills", 20, "restart-latency samples")
	fs.DurationVar(&o.idle, "idle", 20*time.Second, "how long to measure idle CPU")
	fs.DurationVar(&o.storm, "storm", 10*time.Second, "how long the crash storm lasts")
	fs.BoolVar(&o.install, "install", os.Getuid() == 0, "apt-get install peers that are missing (needs root)")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run: 5 jobs, 3 samples, short waits")
	only := fs.String("only", "", "comma-separated workloads to run, of "+strings.Join(workloads, ",")+" (default all)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, p := range strings.Split(peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.peers = append(o.peers, p)
		}
	}
	o.only = map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		if !slices.Contains(workloads, w) {
			fmt.Fprintf(stderr, "bench: -only: %q is not one of %s\n", w, strings.Join(workloads, ","))
			return 2
		}
		o.only[w] = true
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "bench: -n: %q is not a job count\n", s)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	if o.quick {
		o.sizes, o.kills, o.idle, o.storm = []int{5}, 3, 300*time.Millisecond, 500*time.Millisecond
	}
	path, err := exec.LookPath(o.overseer)
	if err != nil {
		fmt.Fprintf(stderr, "bench: cannot find overseer: %v\nhint: go build -o /tmp/overseer . && go run ./bench -overseer /tmp/overseer\n", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "overseer-bench-bin-")
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if o.overseer, err = copyBinary(path, dir); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	t, err := measureAll(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	t.print(stdout)
	return 0
}

// measureAll runs every workload for overseer and each available peer.
func measureAll(o options, log io.Writer) (*table, error) {
	t := &table{}
	t.floor = floor()
	subjects := []subject{&overseerSubject{bin: o.overseer}}
	for _, name := range o.peers {
		if name == "go-minimal" {
			subjects = append(subjects, &minimalSubject{})
			continue
		}
		p, err := newPeer(name)
		if err == nil {
			err = p.available(o.install, log)
		}
		if err != nil {
			fmt.Fprintf(log, "bench: skipping %s: %v\n", name, err)
			t.skipped = append(t.skipped, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		subjects = append(subjects, p)
	}
	for _, s := range subjects {
		fmt.Fprintf(log, "bench: measuring %s\n", s.name())
		col, err := measure(s, o, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name(), err)
		}
		t.cols = append(t.cols, col)
	}
	return t, nil
}

// column is one subject's figures; NaN-like zero values print as "-".
type column struct {
	name       string
	version    string
	restartMed time.Duration
	restartP90 time.Duration
	bringUp    map[int]time.Duration
	rss, pss   map[int]int64 // kB
	threads    map[int]int   // OS threads of the supervisor's processes
	idleCPU    time.Duration
	idleWakes  int64 // context switches of the supervisor's threads while idle
	statusMed  time.Duration
	// The same status round trip by the smallest Go client (a reference)
	// and from bench itself, no process started (subjects with a socket).
	statusSmall, statusRaw time.Duration
	reloadEdit             time.Duration // overseer only
	reloadMove             int           // other pids changed on that reload
	stormCPU               time.Duration
	stormRuns              int            // rows written to runs (overseer only)
	stormMaxSt             time.Duration  // slowest status during the storm
	stormMaxRaw            time.Duration  // the same, on the socket from bench (no client start)
	unfinished             map[int]string // bring-up that did not finish, by size: why
	scale                  scaleFigures   // at the largest size (scale.go)
	// An upgrade in place, at each size (overseer only): the longest time
	// the socket left a PINGing client unanswered (median and worst of
	// the upgrades), and the median time `overseer upgrade` took.
	upgradeGap, upgradeWorst, upgradeAnswer map[int]time.Duration
}

// measure runs the workloads for one subject, tearing it down after each.
func measure(s subject, o options, log io.Writer) (column, error) {
	c := column{name: s.name(), version: s.version(), bringUp: map[int]time.Duration{}, rss: map[int]int64{}, pss: map[int]int64{}, threads: map[int]int{}, unfinished: map[int]string{},
		upgradeGap: map[int]time.Duration{}, upgradeWorst: map[int]time.Duration{}, upgradeAnswer: map[int]time.Duration{}}
	small := o.sizes[0]
	if !o.quick {
		small = 100
	}

	// Bring-up and memory, at each size.
	for _, n := range o.sizes {
		if !o.runs("bringup") {
			break
		}
		if err := withJobs(s, n, sleeper, func(d time.Duration) error {
			c.bringUp[n] = d
			c.rss[n], c.pss[n] = memory(s.supervisorPids())
			c.threads[n] = threads(s.supervisorPids())
			return nil
		}); err != nil {
			if u := (*unfinishedError)(nil); errors.As(err, &u) {
				// A peer that cannot bring up this many: said in its
				// cell, and the run goes on.
				c.unfinished[n] = u.cell()
				fmt.Fprintf(log, "bench: %s: bring-up of %d: %v\n", s.name(), n, err)
				continue
			}
			return c, fmt.Errorf("bring-up of %d: %w", n, err)
		}
	}

	// Restart latency, idle CPU and status round trip, with `small` jobs.
	var err error
	if o.runs("restart") || o.runs("idle") || o.runs("status") {
		err = withJobs(s, small, sleeper, func(time.Duration) error {
			return steady(s, o, small, &c)
		})
	}
	if err != nil {
		return c, err
	}

	// Reload after one edit among the largest size (overseer only).
	if r, ok := s.(reloader); ok && o.runs("reload") {
		n := o.sizes[len(o.sizes)-1]
		if err := withJobs(s, n, sleeper, func(time.Duration) error {
			d, moved, err := r.reloadOneEdit(n)
			c.reloadEdit, c.reloadMove = d, moved
			return err
		}); err != nil {
			return c, fmt.Errorf("reload one edit: %w", err)
		}
	}
	if o.runs("scale") {
		if err := measureScale(s, o, &c, log); err != nil {
			return c, fmt.Errorf("scale: %w", err)
		}
	}
	if o.runs("storm") {
		if err := storm(s, o, small, &c); err != nil {
			return c, err
		}
	}

	// Upgrade in place, at each size (overseer only), last: a daemon of
	// its own, after every other figure is taken.
	if u, ok := s.(upgrader); ok && o.runs("upgrade") {
		k := 5
		if o.quick {
			k = 1
		}
		for _, n := range o.sizes {
			if err := upgrades(s, u, n, k, &c); err != nil {
				return c, fmt.Errorf("upgrade with %d jobs: %w", n, err)
			}
		}
	}
	return c, nil
}

// storm measures a crash storm: jobs that exit at once, again and again.
func storm(s subject, o options, small int, c *column) error {
	return withJobs(s, small, crasher, func(time.Duration) error {
		before := cpu(s.supervisorPids())
		var worst, worstRaw time.Duration
		so, hasSocket := s.(socketer)
		for end := time.Now().Add(o.storm); time.Now().Before(end); {
			t0 := time.Now()
			err := s.status()
			if errors.Is(err, errNoStatus) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err != nil {
				return fmt.Errorf("status during the storm: %w", err)
			}
			worst = max(worst, time.Since(t0))
			if hasSocket {
				// The same request without a client's start.
				d, err := rawStatus(so.socketPath())
				if err != nil {
					return fmt.Errorf("status on the socket during the storm: %w", err)
				}
				worstRaw = max(worstRaw, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.stormCPU = cpu(s.supervisorPids()) - before
		c.stormMaxSt, c.stormMaxRaw = worst, worstRaw
		if r, ok := s.(reloader); ok {
			c.stormRuns = r.runsRows()
		}
		return nil
	})
}

// steady measures restart latency, idle CPU and the status round trip
// with small jobs up.
func steady(s subject, o options, small int, c *column) error {
	if o.runs("restart") {
		if !o.quick {
			time.Sleep(3 * time.Second) // jobs up for more than 3 s
		}
		var lat []time.Duration
		for i := 0; i < o.kills; i++ {
			job := fmt.Sprintf("j%d", 1+i%small)
			d, err := restartLatency(s, job)
			if err != nil {
				return fmt.Errorf("restart latency: %w", err)
			}
			lat = append(lat, d)
			if verbose {
				fmt.Fprintf(os.Stderr, "bench: restart of %s: %v\n", job, d)
			}
			if !o.quick {
				time.Sleep(1200 * time.Millisecond) // past every peer's start-up grace
			}
		}
		c.restartMed, c.restartP90 = quantile(lat, 0.5), quantile(lat, 0.9)
	}
	if o.runs("idle") {
		cpu0, sw0 := usage(s.supervisorPids())
		time.Sleep(o.idle)
		cpu1, sw1 := usage(s.supervisorPids())
		c.idleCPU, c.idleWakes = cpu1-cpu0, sw1-sw0
	}
	if o.runs("status") && !errors.Is(s.status(), errNoStatus) {
		// For a subject with a socket (overseer), the same round trip
		// by the smallest Go client and from bench itself (no process
		// start), taken in turn with its own client's.
		sock := ""
		var small string
		if so, ok := s.(socketer); ok {
			sock = so.socketPath()
			var err error
			if small, err = smallClientBinary(); err != nil {
				return err
			}
		}
		var st, sm, raw []time.Duration
		for range 20 {
			t0 := time.Now()
			if err := s.status(); err != nil {
				return fmt.Errorf("status: %w", err)
			}
			st = append(st, time.Since(t0))
			if sock == "" {
				continue
			}
			d, err := smallStatus(small, sock)
			if err != nil {
				return fmt.Errorf("status by the small Go client: %w", err)
			}
			sm = append(sm, d)
			if d, err = rawStatus(sock); err != nil {
				return fmt.Errorf("status on the socket: %w", err)
			}
			raw = append(raw, d)
		}
		c.statusMed = quantile(st, 0.5)
		if sock != "" {
			c.statusSmall, c.statusRaw = quantile(sm, 0.5), quantile(raw, 0.5)
		}
	}
	return nil
}

// The job programs: each job runs `sleep` (or a shell that exits at once)
// with BENCH_JOB=NAME in its environment, by which bench finds it in /proc.
var (
	sleeper = []string{"sleep", "100000"}
	crasher = []string{"sh", "-c", "exit 1"}
)

// withJobs sets up s with n jobs running argv, waits until all run (or
// until the supervisor is up, for crashing jobs), calls f with the time
// that took, and tears everything down, leaving no process behind.
func withJobs(s subject, n int, argv []string, f func(time.Duration) error) error {
	dir, err := os.MkdirTemp("", "overseer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	id := filepath.Base(dir)
	if err := s.prepare(dir, id, n, argv); err != nil {
		return err
	}
	before := starts()
	t0 := time.Now()
	if err := s.launch(); err != nil {
		s.stop()
		killMarked(id)
		return err
	}
	defer func() {
		s.stop()
		killMarked(id)
	}()
	if verbose {
		fmt.Fprintf(os.Stderr, "bench: %s: %d jobs launched in %v\n", s.name(), n, time.Since(t0))
	}
	if argv[0] == "sleep" {
		if err := waitRunning(id, n, 60*time.Second, before); err != nil {
			return err
		}
	} else {
		// Crashing jobs never all run: wait for the supervisor to answer.
		up := func() bool { err := s.status(); return err == nil || errors.Is(err, errNoStatus) }
		for deadline := time.Now().Add(30 * time.Second); !up(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return errors.New("the supervisor does not answer")
			}
		}
	}
	return f(time.Since(t0))
}

// jobEnv is the environment variable that marks bench's jobs: RUN/NAME.
const jobEnv = "BENCH_JOB"

// marked lists the live processes whose jobEnv starts with id/, by job.
func marked(id string) map[string][]int {
	out := make(map[string][]int)
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(d + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, jobEnv+"="+id+"/"); ok {
				if stat, _ := os.ReadFile(d + "/stat"); strings.Contains(string(stat), ") Z ") {
					break // a zombie is no job
				}
				pid, _ := strconv.Atoi(filepath.Base(d))
				out[v] = append(out[v], pid)
			}
		}
	}
	return out
}

// waitRunning waits until n jobs of run id have a process. It reads the
// environment only of processes it has not placed yet, and not of those
// in before (there before the run began): reading a thousand environments
// a round would make the watching, not the supervisor, the slow part.
//
// A pid of before is skipped only while it is the same process (its start
// time): at 5000 jobs a run recycles pids of the one before it, which
// were still going, or zombies, when before was taken.
func waitRunning(id string, n int, limit time.Duration, before map[int]string) error {
	deadline := time.Now().Add(limit)
	jobOfPid := map[int]string{}
	for {
		running := map[string]bool{}
		for pid := range pids() {
			if st, ok := before[pid]; ok {
				if startOf(pid) == st {
					continue
				}
				delete(before, pid) // recycled: a new process
			}
			job, ok := jobOfPid[pid]
			if !ok {
				// Without the mark it has not exec'd yet, or is no job:
				// ask again next round.
				if job = jobOf(pid, id); job != "" {
					jobOfPid[pid] = job
				}
			}
			if job != "" {
				running[job] = true
			}
		}
		if len(running) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return &unfinishedError{running: len(running), n: n, limit: limit}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verbose says to print each measurement as it is taken.
var verbose = os.Getenv("BENCH_VERBOSE") != ""

// starts maps each process on the machine to its start time (startOf).
func starts() map[int]string {
	out := map[int]string{}
	for pid := range pids() {
		out[pid] = startOf(pid)
	}
	return out
}

// startOf returns pid's start time in clock ticks since boot (field 22 of
// /proc/PID/stat), or "" when it is gone.
func startOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// pids lists the processes on the machine.
func pids() map[int]bool {
	out := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out[pid] = true
		}
	}
	return out
}

// killMarked KILLs every process of the run id, so nothing outlives bench.
func killMarked(id string) {
	for range 50 {
		m := marked(id)
		if len(m) == 0 {
			return
		}
		for _, pids := range m {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restartLatency kills job's process and times until a new one runs,
// polling the supervisor's children without sleeping.
func restartLatency(s subject, job string) (time.Duration, error) {
	id := s.runID()
	old := marked(id)[job]
	if len(old) != 1 {
		return 0, fmt.Errorf("job %s has %d processes", job, len(old))
	}
	// New processes are found by the last pid the kernel handed out
	// (/proc/loadavg), not by listing a parent's children: that read takes
	// the kernel's task list lock, which every exit and fork also need, so
	// the watch would slow what it measures.
	last := lastPid()
	// New pids not yet known to be ours or not, and when each was first
	// seen: the kernel hands out a pid before the process shows in /proc,
	// so one missing there may be still to come, not gone.
	pending := map[int]time.Time{}
	t0 := time.Now()
	if err := syscall.Kill(old[0], syscall.SIGKILL); err != nil {
		return 0, err
	}
	for deadline := t0.Add(10 * time.Second); time.Now().Before(deadline); {
		if l := lastPid(); l != last {
			now := time.Now()
			if l < last { // pids wrapped around
				for p := last + 1; p <= pidMax(); p++ {
					pending[p] = now
				}
				last = 1
			}
			for p := last + 1; p <= l; p++ {
				pending[p] = now
			}
			last = l
		}
		for pid, seen := range pending {
			j, err := jobOfPid(pid, id)
			switch {
			case j == job:
				return time.Since(t0), nil
			case errors.Is(err, fs.ErrNotExist) && time.Since(seen) < time.Second:
				// not in /proc yet, or gone: ask again for a while
			case err != nil || j != "": // gone, or another job's
				delete(pending, pid)
			} // else not exec'd yet, or no job: ask again
		}
		// Sub-millisecond, yet not a core spun away from the supervisor
		// and the processes it starts (two cores here).
		nap()
	}
	return 0, fmt.Errorf("job %s not restarted within 10s", job)
}

// pidMax returns the largest pid the kernel hands out.
func pidMax() int {
	b, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1 << 22
	}
	return n
}

// lastPid returns the pid the kernel handed out last.
func lastPid() int {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 5 {
		return 0
	}
	n, _ := strconv.Atoi(f[4])
	return n
}

// children lists pid's children, from every thread's children file.
func children(pid int) []int {
	var out []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func jobOf(pid int, id string) string {
	j, _ := jobOfPid(pid, id)
	return j
}

// jobOfPid returns the job of run id that pid runs, or "", and an error
// when pid's environment cannot be read (it is gone).
func jobOfPid(pid int, id string) (string, error) {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return "", err
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, jobEnv+"="+id+"/"); ok {
			return v, nil
		}
	}
	return "", nil
}

// threads sums the OS threads of pids.
func threads(pids []int) int {
	n := int64(0)
	for _, pid := range pids {
		n += statusSum(fmt.Sprintf("/proc/%d/status", pid), "Threads")
	}
	return int(n)
}

// statusSum adds up the named fields of a /proc status file.
func statusSum(path string, keys ...string) int64 {
	b, _ := os.ReadFile(path)
	var sum int64
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		if slices.Contains(keys, k) {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			sum += n
		}
	}
	return sum
}

// memory sums RSS and PSS (kB) over pids.
func memory(pids []int) (rss, pss int64) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Rss:":
				rss += n
			case "Pss:":
				pss += n
			}
		}
	}
	return rss, pss
}

// cpu sums user and system time over pids.
func cpu(pids []int) time.Duration {
	cpu, _ := usage(pids)
	return cpu
}

// usage returns the CPU time pids have used, to the nanosecond
// (/proc/PID/task/TID/schedstat; /proc/PID/stat counts in 10 ms ticks),
// and how often their threads have been switched to: each a wake-up.
func usage(pids []int) (cpu time.Duration, switches int64) {
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		for _, t := range tasks {
			if b, err := os.ReadFile(t + "/schedstat"); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					ns, _ := strconv.ParseInt(f[0], 10, 64)
					cpu += time.Duration(ns)
				}
			}
			switches += statusSum(t+"/status", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
		}
	}
	return cpu, switches
}

// floor times one fork+exec+wait of /bin/true from Go: no supervisor can
// restart a process faster.
func floor() time.Duration {
	var ds []time.Duration
	for range 20 {
		t0 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			return 0
		}
		ds = append(ds, time.Since(t0))
	}
	return quantile(ds, 0.5)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// runCmd runs a command and returns its error with its output.
func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

var errNoPeer = errors.New("unknown peer: bench knows s6, runit and supervisord")

// copyBinary copies the executable at src into dir and returns the
// copy's path. Every Go binary bench runs is a copy: one as the linker
// wrote it can start up to 0.6 ms slower than a copy of the same bytes
// (how the file sits in the page cache), which would make the client rows
// measure the build rather than the program.
func copyBinary(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dst := filepath.Join(dir, filepath.Base(src))
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return dst, out.Close()
}
