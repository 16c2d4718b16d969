package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sampler samples the running jobs that ask for it, all from one goroutine
// with one timer, armed only while such a job runs: an idle daemon without
// sampling has neither. Supervisors only add and remove their job (under
// a mutex, never waiting on the sampler), so sampling and its database
// writes never hold up supervision.
type sampler struct {
	rec SampleRecorder
	log *slog.Logger

	mu      sync.Mutex
	jobs    map[string]*watched // guarded by mu: the jobs to sample, by name
	started bool                // guarded by mu: run was started
	stopped bool                // guarded by mu: stop was called
	kick    chan struct{}       // buffered 1: jobs changed
	quit    chan struct{}
	done    chan struct{}
}

// watched is one job's process being sampled.
type watched struct {
	pid      int
	interval time.Duration // how often a sample is stored; 0: never
	lim      memLimit
	next     time.Time // guarded by sampler.mu: when its next measurement is due

	// owned by run
	record time.Time         // when its next sample is to be stored
	since  time.Time         // the previous sample, or the process's start
	cpu    map[int32]float64 // CPU seconds of each process at the previous sample
}

// memLimit is a MEMORY_MAX the sampler watches for: when the job's
// processes hold more than max bytes, it says so on over, without
// waiting (a word already pending is enough), and calls wake after.
type memLimit struct {
	max  int64 // 0: none
	over chan<- memOver
	wake func() // nil: none
}

// period is how often w is measured: every interval, or every
// memCheckInterval for a memory limit.
func (w *watched) period() time.Duration {
	if w.lim.max > 0 && (w.interval <= 0 || w.interval > memCheckInterval) {
		return memCheckInterval
	}
	return w.interval
}

func newSampler(rec SampleRecorder, log *slog.Logger) *sampler {
	return &sampler{
		rec:  rec,
		log:  log,
		jobs: make(map[string]*watched),
		kick: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// watch samples the job name, whose main process pid started at start,
// every interval (0: never) until unwatch, and watches its memory for lim
// (if any). The sampler's goroutine starts with the first job it watches.
func (sp *sampler) watch(name string, pid int, start time.Time, interval time.Duration, lim memLimit) {
	if sp.rec == nil {
		interval = 0
	}
	if interval <= 0 && lim.max <= 0 {
		return
	}
	sp.mu.Lock()
	if sp.stopped {
		sp.mu.Unlock()
		return
	}
	if !sp.started {
		sp.started = true
		go sp.run()
	}
	w := &watched{pid: pid, interval: interval, lim: lim, record: start.Add(interval), since: start}
	w.next = start.Add(w.period())
	sp.jobs[name] = w
	sp.mu.Unlock()
	sp.nudge()
}

// unwatch stops sampling the job name's process pid.
func (sp *sampler) unwatch(name string, pid int) {
	sp.mu.Lock()
	w := sp.jobs[name]
	if w != nil && w.pid == pid {
		delete(sp.jobs, name)
	}
	sp.mu.Unlock()
	if w != nil {
		sp.nudge()
	}
}

func (sp *sampler) nudge() {
	select {
	case sp.kick <- struct{}{}:
	default: // a kick is pending already
	}
}

// stop ends the sampler and waits for a sample in progress to be stored.
func (sp *sampler) stop() {
	sp.mu.Lock()
	started := sp.started
	sp.stopped = true
	sp.mu.Unlock()
	if started {
		close(sp.quit)
		<-sp.done
	}
}

func (sp *sampler) run() {
	defer close(sp.done)
	var timer *time.Timer
	defer stopTimer(&timer)
	for {
		// Sleep until the next sample is due; without jobs, until one comes.
		var wake time.Time
		sp.mu.Lock()
		for _, w := range sp.jobs {
			if wake.IsZero() || w.next.Before(wake) {
				wake = w.next
			}
		}
		sp.mu.Unlock()
		stopTimer(&timer)
		if !wake.IsZero() {
			timer = time.NewTimer(time.Until(wake))
		}
		select {
		case <-sp.quit:
			return
		case <-sp.kick:
		case <-timerC(timer):
			timer = nil
			sp.sampleDue()
		}
	}
}

// sampleDue samples every job whose sample is due and stores the samples.
func (sp *sampler) sampleDue() {
	now := time.Now()
	due := make(map[string]*watched)
	sp.mu.Lock()
	for name, w := range sp.jobs {
		if !w.next.After(now) {
			due[name] = w
			w.next = now.Add(w.period())
		}
	}
	sp.mu.Unlock()
	if len(due) == 0 {
		return
	}
	sids := make(map[int][]int32, len(due))
	for _, w := range due {
		sids[w.pid] = nil
	}
	sessions(sids)
	var samples []Sample
	for name, w := range due {
		var rss int64
		if w.interval > 0 && !w.record.After(now) {
			w.record = now.Add(w.interval)
			s, ok := w.measure(name, sids[w.pid], now)
			if !ok {
				continue
			}
			samples, rss = append(samples, s), s.RSS
		} else {
			rss = residentOf(sids[w.pid])
		}
		if w.lim.max > 0 && rss > w.lim.max {
			select {
			case w.lim.over <- memOver{pid: w.pid, rss: rss}:
				if w.lim.wake != nil {
					w.lim.wake()
				}
			default: // one is pending already
			}
		}
	}
	if len(samples) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sp.rec.RecordSamples(ctx, samples); err != nil {
		sp.log.Warn("record samples", "err", err)
	}
}

// sessions fills sids, whose keys are session ids, with the pids of the
// processes in each. Every job runs in a session of its own whose id is its
// main process's pid: the session holds the job's process group and the
// groups its descendants made with setpgid, but not a descendant that made
// a session of its own (setsid), which overseer does not supervise either.
// getsid needs no privilege and reads no file: one system call per process.
func sessions(sids map[int][]int32) {
	pids, err := allPids()
	if err != nil {
		return
	}
	for _, pid := range pids {
		sid, err := unix.Getsid(int(pid))
		if err != nil {
			continue // gone meanwhile
		}
		if members, ok := sids[sid]; ok {
			sids[sid] = append(members, pid)
		}
	}
}

// residentOf adds up the resident memory of pids, in bytes.
func residentOf(pids []int32) int64 {
	var n int64
	for _, pid := range pids {
		if rss, err := residentBytes(pid); err == nil {
			n += rss
		}
	}
	return n
}

// measure adds up the resources of pids, the processes of the watched job
// name, at now. It reports false when none of them could be read: the job
// ended meanwhile.
func (w *watched) measure(name string, pids []int32, now time.Time) (Sample, bool) {
	s := Sample{Job: name, Pid: w.pid, At: now}
	cpu := make(map[int32]float64, len(pids))
	var used float64 // CPU seconds since the previous sample
	for _, pid := range pids {
		info, err := readProcInfo(pid)
		if err != nil {
			continue // gone meanwhile
		}
		c := info.cpu
		cpu[pid] = c
		// A process new since the previous sample counts all of its CPU
		// time; one that ended meanwhile counts none of its last moments.
		used += max(0, c-w.cpu[pid])
		s.Procs++
		if rss, err := residentBytes(pid); err == nil {
			s.RSS += rss
		}
		s.Threads += info.threads
		if n, err := openFiles(pid); err == nil {
			s.Files += n
		}
	}
	if s.Procs == 0 {
		return s, false
	}
	if elapsed := now.Sub(w.since).Seconds(); elapsed > 0 {
		s.CPU = used / elapsed * 100
	}
	w.since, w.cpu = now, cpu
	return s, true
}

// timerC returns t's channel, or nil (never ready) when t is not armed.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}
