package jobs

import (
	"fmt"
	"time"
)

// counters are what the restart policy remembers of a job's recent deaths.
type counters struct {
	// int32 each, side by side: a supervisor 8 bytes smaller (two billion
	// deaths take longer than any backoff lets pass).
	deaths       int32 // deaths inside StartSecs since the last run that lasted RestartReset
	failedStarts int32 // deaths in a row within StartSecs of their start
	// starts are the start times of the processes that ended, oldest
	// first, within StartLimitInterval of the newest: at most StartLimit+1
	// (nil without a StartLimit). next makes a new slice, never appends to it.
	starts []time.Time
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
// RESTART_RESET; START_RETRIES such deaths in a row give up. More than
// START_LIMIT starts within START_LIMIT_INTERVAL give up too, whatever the
// uptimes. A process ended for its memory (e.Reason ReasonMemory) is a
// failure to RESTART=on-failure and a crash to the backoff, whatever its
// uptime; it counts towards START_RETRIES only inside the grace. An exit
// nobody saw (e.Unknown: an adopted process, no child of the daemon) is a
// failure to RESTART=on-failure. A process
// overseer stopped for not getting ready within READY_TIMEOUT
// (ReasonNotReady) counts as a death inside the grace whatever its uptime,
// and RESTART=never makes that failed, not exited. It is pure.
func next(e Exit, uptime time.Duration, c counters, j *Job) decision {
	memory := e.Reason == ReasonMemory
	again := j.Restart == RestartAlways ||
		j.Restart == RestartOnFailure && (e.Code != 0 || e.Signal != "" || memory || e.Unknown)
	notReady := e.Reason == ReasonNotReady
	if notReady && j.Restart == RestartNever {
		return decision{then: GiveUp, why: e.Detail, counters: c}
	}
	if !again && !notReady {
		return decision{then: StayExited, counters: c}
	}
	c.starts = recentStarts(c.starts, e.At.Add(-uptime), j)
	if uptime >= j.RestartReset && !notReady {
		c.deaths = 0
	}
	young := uptime < j.StartSecs || notReady
	if young {
		c.failedStarts++
	} else {
		c.failedStarts = 0
	}
	if j.StartRetries > 0 && int(c.failedStarts) >= j.StartRetries {
		why := fmt.Sprintf("gave up: ended within %v of starting %d times in a row", j.StartSecs, c.failedStarts)
		if notReady {
			why = fmt.Sprintf("gave up: %s, %d failed starts in a row", e.Detail, c.failedStarts)
		}
		return decision{then: GiveUp, why: why, counters: c}
	}
	if j.StartLimit > 0 && len(c.starts) > j.StartLimit {
		why := fmt.Sprintf("gave up: started %d times within %v (START_LIMIT=%d)", len(c.starts), j.StartLimitInterval, j.StartLimit)
		return decision{then: GiveUp, why: why, counters: c}
	}
	if !young && !memory {
		return decision{then: RestartNow, counters: c}
	}
	c.deaths++
	d := backoffDelay(int(c.deaths), j)
	if d == 0 {
		return decision{then: RestartNow, counters: c}
	}
	return decision{then: BackOff, delay: d, counters: c}
}

// recentStarts returns starts with start added, less the starts more than
// StartLimitInterval older than it, and at most StartLimit+1 of them: what
// START_LIMIT needs to know. It makes a new slice.
func recentStarts(starts []time.Time, start time.Time, j *Job) []time.Time {
	if j.StartLimit <= 0 {
		return nil
	}
	out := make([]time.Time, 0, min(len(starts)+1, j.StartLimit+1))
	for _, t := range starts {
		if start.Sub(t) < j.StartLimitInterval {
			out = append(out, t)
		}
	}
	out = append(out, start)
	if len(out) > j.StartLimit+1 {
		out = out[len(out)-j.StartLimit-1:]
	}
	return out
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
