package jobs

import (
	"syscall"
	"time"
)

// InstanceEnv and JobEnv are set in the environment of every job and TEST
// process: the data dir of the daemon that started it, and the job's name.
// A new daemon finds by InstanceEnv what a dead one left (see Sweep); a job
// may read JobEnv to know its name.
const (
	InstanceEnv = "OVERSEER_INSTANCE"
	JobEnv      = "OVERSEER_JOB"
)

// Orphan is a process that a daemon which died left running, as its run
// recorded it.
type Orphan struct {
	Run   int64
	Pid   int
	Start string // its procStart when it was started; "" if unknown
}

// StopOrphans stops the process groups of the orphans that still run:
// TERM, then KILL after timeout. A process is signalled only while its pid
// and start both match the record, so a recycled pid, now a stranger's, is
// left alone. It returns the runs whose process it stopped. It is for
// daemon start, before any job starts, so that no job runs twice.
func StopOrphans(orphans []Orphan, timeout time.Duration) map[int64]bool {
	alive := func(o Orphan) bool {
		start, zombie, err := procStart(o.Pid)
		return err == nil && !zombie && start == o.Start
	}
	stopped := make(map[int64]bool)
	var live []Orphan
	for _, o := range orphans {
		if o.Start != "" && alive(o) {
			syscall.Kill(-o.Pid, syscall.SIGTERM)
			live = append(live, o)
			stopped[o.Run] = true
		}
	}
	wait := func(d time.Duration) {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); {
			n := 0
			for _, o := range live {
				if alive(o) {
					n++
				}
			}
			if n == 0 {
				return
			}
			time.Sleep(20 * time.Millisecond) // start-up only: never while idle
		}
	}
	wait(timeout)
	// KILL what is left of each group, the leader or what it left behind.
	for _, o := range live {
		syscall.Kill(-o.Pid, syscall.SIGKILL)
	}
	wait(2 * time.Second)
	return stopped
}
