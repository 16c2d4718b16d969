package jobs

import (
	"slices"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	job := func(restart string) *Job {
		j := defaultJob("j") // START_SECS 1s, RESTART_DELAY 500ms, max 30s, reset 60s, 5 retries
		j.Restart = restart
		j.StartLimit = 0 // TestNextStartLimit has it
		return j
	}
	noRetries := job(RestartAlways)
	noRetries.StartRetries = 0
	noDelay := job(RestartAlways)
	noDelay.RestartDelay, noDelay.RestartMaxDelay = 0, 0
	ok := Exit{Code: 0}
	bad := Exit{Code: 3}
	killed := Exit{Code: -1, Signal: "KILL"}
	memory := Exit{Code: -1, Signal: "KILL", Reason: ReasonMemory}
	memoryExit0 := Exit{Code: 0, Reason: ReasonMemory}
	notReady := Exit{Code: -1, Signal: "TERM", Reason: ReasonNotReady, Detail: "not ready within 1m0s"}
	notReadyOK := Exit{Code: 0, Reason: ReasonNotReady, Detail: "not ready within 1m0s"}
	unknown := Exit{Code: 0, Unknown: true, Reason: ReasonExitUnknown} // an adopted process: its status unseen
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
		{"never: stays exited", bad, time.Minute, counters{2, 1, nil}, job(RestartNever), StayExited, 0, counters{2, 1, nil}, ""},
		{"on-failure, exit 0: stays exited", ok, time.Minute, counters{}, job(RestartOnFailure), StayExited, 0, counters{}, ""},
		{"on-failure, exit 3: restarts", bad, time.Minute, counters{}, job(RestartOnFailure), RestartNow, 0, counters{}, ""},
		{"on-failure, killed: restarts", killed, time.Minute, counters{}, job(RestartOnFailure), RestartNow, 0, counters{}, ""},
		{"on-failure, exit unknown: a failure, restarts", unknown, time.Minute, counters{}, job(RestartOnFailure), RestartNow, 0, counters{}, ""},
		{"never, exit unknown: stays exited", unknown, time.Minute, counters{}, job(RestartNever), StayExited, 0, counters{}, ""},
		{"always, exit 0: restarts", ok, 2 * time.Second, counters{}, job(RestartAlways), RestartNow, 0, counters{}, ""},
		{"past the grace: at once, failed starts reset", bad, 2 * time.Second, counters{3, 2, nil}, job(RestartAlways), RestartNow, 0, counters{3, 0, nil}, ""},
		{"past the reset: deaths forgotten", bad, time.Minute, counters{3, 2, nil}, job(RestartAlways), RestartNow, 0, counters{0, 0, nil}, ""},
		{"first crash: RESTART_DELAY", bad, 100 * time.Millisecond, counters{}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 1, nil}, ""},
		{"third crash: doubled twice", bad, 100 * time.Millisecond, counters{2, 2, nil}, job(RestartAlways), BackOff, 2 * time.Second, counters{3, 3, nil}, ""},
		{"many crashes: capped", bad, 100 * time.Millisecond, counters{20, 0, nil}, noRetries, BackOff, 30 * time.Second, counters{21, 1, nil}, ""},
		{"crash after a long run: deaths start over", bad, 100 * time.Millisecond, counters{0, 0, nil}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 1, nil}, ""},
		{"START_RETRIES in a row: gives up", bad, 100 * time.Millisecond, counters{4, 4, nil}, job(RestartAlways), GiveUp, 0, counters{4, 5, nil},
			"gave up: ended within 1s of starting 5 times in a row"},
		{"START_RETRIES=0: never gives up", bad, 100 * time.Millisecond, counters{99, 99, nil}, noRetries, BackOff, 30 * time.Second, counters{100, 100, nil}, ""},
		{"RESTART_DELAY=0: at once even in a crash loop", bad, 100 * time.Millisecond, counters{}, noDelay, RestartNow, 0, counters{1, 1, nil}, ""},
		{"memory, past the grace: a crash, backed off", memory, 2 * time.Second, counters{}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 0, nil}, ""},
		{"memory after a long run: backoff starts over", memory, time.Hour, counters{4, 0, nil}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 0, nil}, ""},
		{"memory, twice soon: doubled", memory, 2 * time.Second, counters{1, 0, nil}, job(RestartAlways), BackOff, time.Second, counters{2, 0, nil}, ""},
		{"memory, stopped by TERM, exit 0: on-failure restarts", memoryExit0, 2 * time.Second, counters{}, job(RestartOnFailure), BackOff, 500 * time.Millisecond, counters{1, 0, nil}, ""},
		{"memory: never stays exited", memory, 2 * time.Second, counters{}, job(RestartNever), StayExited, 0, counters{}, ""},
		{"memory inside the grace: counts towards START_RETRIES", memory, 100 * time.Millisecond, counters{4, 4, nil}, job(RestartAlways), GiveUp, 0, counters{4, 5, nil},
			"gave up: ended within 1s of starting 5 times in a row"},
		{"RESTART_DELAY=0, memory: at once", memory, 2 * time.Second, counters{}, noDelay, RestartNow, 0, counters{1, 0, nil}, ""},
		{"START_RETRIES=0: never gives up", bad, 100 * time.Millisecond, counters{99, 99, nil}, noRetries, BackOff, 30 * time.Second, counters{100, 100, nil}, ""},
		{"RESTART_DELAY=0: at once even in a crash loop", bad, 100 * time.Millisecond, counters{}, noDelay, RestartNow, 0, counters{1, 1, nil}, ""},
		{"not ready: a failed start whatever its uptime", notReady, 2 * time.Minute, counters{}, job(RestartAlways), BackOff, 500 * time.Millisecond, counters{1, 1, nil}, ""},
		{"not ready after a long run: deaths not forgotten", notReady, 2 * time.Minute, counters{2, 2, nil}, job(RestartAlways), BackOff, 2 * time.Second, counters{3, 3, nil}, ""},
		{"not ready, exit 0 on TERM, on-failure: restarts", notReadyOK, 2 * time.Minute, counters{}, job(RestartOnFailure), BackOff, 500 * time.Millisecond, counters{1, 1, nil}, ""},
		{"not ready, never: failed, not exited", notReady, 2 * time.Minute, counters{}, job(RestartNever), GiveUp, 0, counters{}, "not ready within 1m0s"},
		{"not ready START_RETRIES times: gives up", notReady, 2 * time.Minute, counters{4, 4, nil}, job(RestartAlways), GiveUp, 0, counters{4, 5, nil},
			"gave up: not ready within 1m0s, 5 failed starts in a row"},
	} {
		d := next(tc.e, tc.uptime, tc.c, tc.j)
		if d.then != tc.then || d.delay != tc.delay || !sameCounters(d.counters, tc.after) || d.why != tc.why {
			t.Errorf("%s: got %v %v %+v %q, want %v %v %+v %q", tc.name, d.then, d.delay, d.counters, d.why, tc.then, tc.delay, tc.after, tc.why)
		}
	}
}

func sameCounters(a, b counters) bool {
	return a.deaths == b.deaths && a.failedStarts == b.failedStarts && slices.EqualFunc(a.starts, b.starts, time.Time.Equal)
}

// TestNextStartLimit: more than START_LIMIT starts within
// START_LIMIT_INTERVAL give up, whatever the uptimes.
func TestNextStartLimit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	limit := func(n int, interval time.Duration) *Job {
		j := defaultJob("j")
		j.StartLimit, j.StartLimitInterval = n, interval
		return j
	}
	oneRetry := limit(3, time.Minute)
	oneRetry.StartRetries = 1
	// A process started at start (seconds) that ended uptime later, exit 3.
	exit := func(start, uptime float64) (Exit, time.Duration) {
		u := time.Duration(uptime * float64(time.Second))
		return Exit{Code: 3, At: at(start).Add(u)}, u
	}
	for _, tc := range []struct {
		name          string
		start, uptime float64
		before        []time.Time
		j             *Job
		then          Then
		after         []time.Time
		why           string
	}{
		{"first start: remembered", 0, 1.5, nil, limit(3, time.Minute), RestartNow, []time.Time{at(0)}, ""},
		{"third start of 3: restarts", 3, 1.5, []time.Time{at(0), at(1.5)}, limit(3, time.Minute), RestartNow, []time.Time{at(0), at(1.5), at(3)}, ""},
		{"fourth start of 3 within the interval: gives up past the grace", 4.5, 1.5, []time.Time{at(0), at(1.5), at(3)}, limit(3, time.Minute), GiveUp,
			[]time.Time{at(0), at(1.5), at(3), at(4.5)}, "gave up: started 4 times within 1m0s (START_LIMIT=3)"},
		{"fourth start, the first out of the interval: restarts", 60, 1.5, []time.Time{at(0), at(1.5), at(3)}, limit(3, time.Minute), RestartNow,
			[]time.Time{at(1.5), at(3), at(60)}, ""},
		{"exactly the interval apart: out of it", 60, 1.5, []time.Time{at(0), at(30), at(40)}, limit(3, time.Minute), RestartNow,
			[]time.Time{at(30), at(40), at(60)}, ""},
		{"a long uptime does not save it", 40, 15, []time.Time{at(0), at(10), at(20)}, limit(3, time.Minute), GiveUp,
			[]time.Time{at(0), at(10), at(20), at(40)}, "gave up: started 4 times within 1m0s (START_LIMIT=3)"},
		{"default: the eleventh start in a minute gives up", 15, 1.1, []time.Time{at(0), at(1.5), at(3), at(4.5), at(6), at(7.5), at(9), at(10.5), at(12), at(13.5)},
			defaultJob("j"), GiveUp, []time.Time{at(0), at(1.5), at(3), at(4.5), at(6), at(7.5), at(9), at(10.5), at(12), at(13.5), at(15)},
			"gave up: started 11 times within 1m0s (START_LIMIT=10)"},
		{"kept to START_LIMIT+1", 10, 1.5, []time.Time{at(0), at(1), at(2), at(3), at(4)}, limit(3, time.Minute), GiveUp,
			[]time.Time{at(2), at(3), at(4), at(10)}, "gave up: started 4 times within 1m0s (START_LIMIT=3)"},
		{"START_LIMIT=0: never, nothing kept", 1, 1.5, []time.Time{at(0), at(0.5)}, limit(0, time.Minute), RestartNow, nil, ""},
		{"START_RETRIES is said first", 2, 0.1, []time.Time{at(0), at(1), at(1.5)}, oneRetry, GiveUp,
			[]time.Time{at(0), at(1), at(1.5), at(2)}, "gave up: ended within 1s of starting 1 times in a row"},
	} {
		e, uptime := exit(tc.start, tc.uptime)
		before := slices.Clone(tc.before)
		c := counters{starts: tc.before}
		d := next(e, uptime, c, tc.j)
		if d.then != tc.then || !slices.EqualFunc(d.counters.starts, tc.after, time.Time.Equal) || d.why != tc.why {
			t.Errorf("%s: got %v %v %q, want %v %v %q", tc.name, d.then, d.counters.starts, d.why, tc.then, tc.after, tc.why)
		}
		if !slices.EqualFunc(tc.before, before, time.Time.Equal) {
			t.Errorf("%s: next changed the counters it was given", tc.name)
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
