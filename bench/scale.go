package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// unfinishedError is a bring-up that did not finish in its time: the
// subject cannot run that many jobs here. bench says so in the cell and
// goes on, rather than ending the whole run.
type unfinishedError struct {
	running, n int
	limit      time.Duration
}

func (e *unfinishedError) Error() string {
	return fmt.Sprintf("%d of %d jobs running after %v", e.running, e.n, e.limit)
}

// cell is what the table shows for it.
func (e *unfinishedError) cell() string {
	return fmt.Sprintf("did not finish in %v (%d of %d)", e.limit, e.running, e.n)
}

// scaleFigures are the figures taken with the largest size's jobs up.
type scaleFigures struct {
	n        int           // the size they were taken at; 0: not taken
	status   time.Duration // STATUS of every job, median (overseer)
	reload   time.Duration // no-op RELOAD, median (overseer)
	relaunch time.Duration // SIGKILL of the daemon until every job runs again (overseer)
	die      time.Duration // stop every job and the supervisor, until all are gone
	dieNote  string        // the cell when the stop did not finish
}

// scaler is a subject with the requests the scale workload times that
// peers have no equivalent of (overseer).
type scaler interface {
	statusAll() error // a STATUS of every job, as a user would type it
	noopReload() error
	// relaunchAfterKill SIGKILLs the daemon and launches a new one, which
	// adopts what the old one left running (Linux, with the pipe holder)
	// or stops it and starts every job anew.
	relaunchAfterKill() error
}

func (o *overseerSubject) statusAll() error  { return o.cli("status") }
func (o *overseerSubject) noopReload() error { return o.cli("reload") }

func (o *overseerSubject) relaunchAfterKill() error {
	pid := o.daemonPid()
	if pid <= 0 {
		return fmt.Errorf("no daemon pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return err
	}
	// Its lock goes with its last thread, which may exit after the
	// leader shows as a zombie.
	for deadline := time.Now().Add(10 * time.Second); alive(pid) || tasks(pid) > 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon %d still alive 10s after SIGKILL", pid)
		}
	}
	// The client gives a daemon it launched 15 s to answer; one that
	// first stops thousands of jobs the dead one left may take longer,
	// and the next client then finds it (bench's time counts it all).
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if err = o.cli(); err == nil {
			return nil
		}
	}
	return err
}

// measureScale takes the scale figures at the largest size: for overseer
// STATUS of every job, a no-op RELOAD, a relaunch after SIGKILL; for every
// subject with an orderly stop, the time to stop everything (DIE).
func measureScale(s subject, o options, c *column, log io.Writer) error {
	n := o.sizes[len(o.sizes)-1]
	if _, ok := c.unfinished[n]; ok {
		fmt.Fprintf(log, "bench: %s: no scale figures: bring-up of %d did not finish\n", s.name(), n)
		return nil
	}
	if _, ok := s.(*minimalSubject); ok {
		return nil // it has no status, no reload, and its stop is a SIGKILL
	}
	samples := 10
	if o.quick {
		samples = 3
	}
	c.scale.n = n
	err := withJobs(s, n, sleeper, func(time.Duration) error {
		if sc, ok := s.(scaler); ok {
			var err error
			if c.scale.status, err = median(samples, sc.statusAll); err != nil {
				return fmt.Errorf("status of %d jobs: %w", n, err)
			}
			if c.scale.reload, err = median(samples, sc.noopReload); err != nil {
				return fmt.Errorf("no-op reload of %d jobs: %w", n, err)
			}
			t0 := time.Now()
			if err := sc.relaunchAfterKill(); err != nil {
				return fmt.Errorf("relaunch after SIGKILL: %w", err)
			}
			// Every job runs, under the new daemon: its survivors adopted
			// (the same processes) or started anew (new ones); the
			// relaunch's RELOAD has answered, so each is supervised.
			if err := waitRunning(s.runID(), n, 60*time.Second, map[int]string{}); err != nil {
				return fmt.Errorf("relaunch after SIGKILL: %w", err)
			}
			c.scale.relaunch = time.Since(t0)
			if verbose {
				fmt.Fprintf(os.Stderr, "bench: %s: relaunch after SIGKILL with %d jobs: %v\n", s.name(), n, c.scale.relaunch)
			}
		}
		// DIE: from the request until the supervisor and every job are gone.
		var left []int
		for _, ps := range marked(s.runID()) {
			left = append(left, ps...)
		}
		left = append(left, s.supervisorPids()...)
		t0 := time.Now()
		s.stop()
		for deadline := t0.Add(60 * time.Second); len(left) > 0; time.Sleep(time.Millisecond) {
			for i := 0; i < len(left); {
				if alive(left[i]) {
					i++
					continue
				}
				left[i] = left[len(left)-1]
				left = left[:len(left)-1]
			}
			if time.Now().After(deadline) {
				// A cell, not the end of the run; withJobs kills what is left.
				c.scale.dieNote = fmt.Sprintf("did not finish in 1m0s (%d of %d processes left)", len(left), n+len(s.supervisorPids()))
				fmt.Fprintf(log, "bench: %s: scale: stop of %d jobs: %d processes left after 60s\n", s.name(), n, len(left))
				return nil
			}
		}
		c.scale.die = time.Since(t0)
		return nil
	})
	if u := (*unfinishedError)(nil); errors.As(err, &u) {
		// Its cells stay empty; the run goes on.
		fmt.Fprintf(log, "bench: %s: scale: %v\n", s.name(), err)
		return nil
	}
	return err
}

// median runs f k times and returns the median of its durations.
func median(k int, f func() error) (time.Duration, error) {
	var ds []time.Duration
	for range k {
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	return quantile(ds, 0.5), nil
}

// tasks counts pid's threads still in /proc (a zombie leader is one).
func tasks(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(ents)
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}
