package jobs

import (
	"fmt"
	"time"
)

// counters are what the restart policy remembers of a job's recent deaths.
type counters struct {
	deaths       int // deaths inside StartSecs since the last run that lasted RestartReset
	failedStarts int // deaths in a row within StartSecs of their start
}

// Then is what to do after a process ended on its own.
type Then int

// The decisions of the restart policy.
const (
	StayExited Then = iota // RESTART says not to start it again
	RestartNow             // start it again at once
	BackOff                // start it again after decision.delay
	GiveUp                 // too many deaths at start-up: the job is failed
)

// decision is the restart policy's answer, with the counters to keep.
type decision struct {
	then     Then
	delay    time.Duration // BackOff: how long to wait
	why      string        // GiveUp: the failed state's reason
	counters counters
}

// next decides what follows the exit e of a process that ran uptime, given
// the counters and the job's keys: RESTART says whether to start it again;
// past the start-up grace (START_SECS) it was no crash loop and restarts at
// once, as runit and s6 do; inside it, it waits RESTART_DELAY, doubling with
// each such death up to RESTART_MAX_DELAY, until a process stays up
// RESTART_RESET; START_RETRIES such deaths in a row give up. A process
// overseer stopped for not getting ready within READY_TIMEOUT
// (ReasonNotReady) counts as such a death whatever its uptime, and
// RESTART=never makes that failed, not exited. It is pure.
func next(e Exit, uptime time.Duration, c counters, j *Job) decision {
	again := j.Restart == RestartAlways ||
		j.Restart == RestartOnFailure && (e.Code != 0 || e.Signal != "")
	notReady := e.Reason == ReasonNotReady
	if notReady && j.Restart == RestartNever {
		return decision{then: GiveUp, why: e.Detail, counters: c}
	}
	if !again && !notReady {
		return decision{then: StayExited, counters: c}
	}
	if uptime >= j.RestartReset && !notReady {
		c.deaths = 0
	}
	crashed := uptime < j.StartSecs || notReady
	if crashed {
		c.failedStarts++
	} else {
		c.failedStarts = 0
	}
	if j.StartRetries > 0 && c.failedStarts >= j.StartRetries {
		why := fmt.Sprintf("gave up: ended within %v of starting %d times in a row", j.StartSecs, c.failedStarts)
		if notReady {
			why = fmt.Sprintf("gave up: %s, %d failed starts in a row", e.Detail, c.failedStarts)
		}
		return decision{then: GiveUp, why: why, counters: c}
	}
	if !crashed {
		return decision{then: RestartNow, counters: c}
	}
	c.deaths++
	d := backoffDelay(c.deaths, j)
	if d == 0 {
		return decision{then: RestartNow, counters: c}
	}
	return decision{then: BackOff, delay: d, counters: c}
}

// backoffDelay returns the wait before a restart after the nth death inside
// the start-up grace since the job last stayed up RestartReset:
// RestartDelay, doubling up to RestartMaxDelay.
func backoffDelay(n int, j *Job) time.Duration {
	d := j.RestartDelay
	for i := 1; i < n && d < j.RestartMaxDelay; i++ {
		d *= 2
	}
	return min(d, j.RestartMaxDelay)
}
