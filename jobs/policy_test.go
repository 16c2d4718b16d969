package jobs

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	job := func(restart string) *Job {
		j := defaultJob("j") // START_SECS 1s, RESTART_DELAY 500ms, max 30s, reset 60s, 5 retries
		j.Restart = restart
		return j
	}
	noRetries := job(RestartAlways)
	noRetries.StartRetries = 0
	noDelay := job(RestartAlways)
	noDelay.RestartDelay, noDelay.RestartMaxDelay = 0, 0
	ok := Exit{Code: 0}
	bad := Exit{Code: 3}
	killed := Exit{Code: -1, Signal: "KILL"}
	notReady := Exit{Code: -1, Signal: "TERM", Reason: ReasonNotReady, Detail: "not ready within 1m0s"}
	notReadyOK := Exit{Code: 0, Reason: ReasonNotReady, Detail: "not ready within 1m0s"}
	for _, tc := range []struct {
		name   string
		e      Exit
		uptime time.Duration
		c      counters
		j      *Job
		then   Then
		delay  time.Duration
		after  counters
		why    string
	}{
		{"never: stays exited", bad, time.Minute, counters{2, 1}, job(RestartNever), StayExited, 0, counters{2, 1}, ""},
		{"on-failure, exit 0: stays exited", ok, time.Minute, counters{}, job(RestartOnFailure), StayExited, 0, counters{}, ""},
		{"on-failure, exit 3: restarts", bad, time.Minute, counters{}, job(RestartOnFailure), RestartNow, 0, counters{}, ""},
		{"on-failure, killed: restarts", killed, time.Minute, counters{}, job(RestartOnFailure), RestartNow, 0, counters{}, ""},
		{"always, exit 0: restarts", ok, 2 * time.Second, counters{}, job(RestartAlways), RestartNow, 0, counters{}, ""},
		{"past the grace: at once, failed starts reset", bad, 2 * time.Second, counters{3, 2}, job(RestartAlways), RestartNow, 0, counters{3, 0}, ""},
		{"past the reset: deaths forgotten", bad, time.Minute, counters{3, 2}, job(RestartAlways), RestartNow, 0, counters{0, 0}, ""},
		{"first crash: RESTART_DELAY", bad, 100 * time.Millisecond, counters{}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 1}, ""},
		{"third crash: doubled twice", bad, 100 * time.Millisecond, counters{2, 2}, job(RestartAlways), BackOff, 2 * time.Second, counters{3, 3}, ""},
		{"many crashes: capped", bad, 100 * time.Millisecond, counters{20, 0}, noRetries, BackOff, 30 * time.Second, counters{21, 1}, ""},
		{"crash after a long run: deaths start over", bad, 100 * time.Millisecond, counters{0, 0}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 1}, ""},
		{"START_RETRIES in a row: gives up", bad, 100 * time.Millisecond, counters{4, 4}, job(RestartAlways), GiveUp, 0, counters{4, 5},
			"gave up: ended within 1s of starting 5 times in a row"},
		{"START_RETRIES=0: never gives up", bad, 100 * time.Millisecond, counters{99, 99}, noRetries, BackOff, 30 * time.Second, counters{100, 100}, ""},
		{"RESTART_DELAY=0: at once even in a crash loop", bad, 100 * time.Millisecond, counters{}, noDelay, RestartNow, 0, counters{1, 1}, ""},
		{"not ready: a failed start whatever its uptime", notReady, 2 * time.Minute, counters{}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 1}, ""},
		{"not ready after a long run: deaths not forgotten", notReady, 2 * time.Minute, counters{2, 2}, job(RestartAlways), BackOff, 2 * time.Second, counters{3, 3}, ""},
		{"not ready, exit 0 on TERM, on-failure: restarts", notReadyOK, 2 * time.Minute, counters{}, job(RestartOnFailure), BackOff, 500 * time.Millisecond, counters{1, 1}, ""},
		{"not ready, never: failed, not exited", notReady, 2 * time.Minute, counters{}, job(RestartNever), GiveUp, 0, counters{}, "not ready within 1m0s"},
		{"not ready START_RETRIES times: gives up", notReady, 2 * time.Minute, counters{4, 4}, job(RestartAlways), GiveUp, 0, counters{4, 5},
			"gave up: not ready within 1m0s, 5 failed starts in a row"},
	} {
		d := next(tc.e, tc.uptime, tc.c, tc.j)
		if d.then != tc.then || d.delay != tc.delay || d.counters != tc.after || d.why != tc.why {
			t.Errorf("%s: got %v %v %+v %q, want %v %v %+v %q", tc.name, d.then, d.delay, d.counters, d.why, tc.then, tc.delay, tc.after, tc.why)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	j := defaultJob("j")
	j.RestartDelay, j.RestartMaxDelay = 100*time.Millisecond, time.Second
	for n, want := range []time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 6: time.Second} {
		if n == 0 {
			continue
		}
		if got := backoffDelay(n, j); got != want {
			t.Errorf("death %d: %v, want %v", n, got, want)
		}
	}
}
