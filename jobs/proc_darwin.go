package jobs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// procStart returns when process pid started, as "SECONDS.MICROSECONDS",
// and whether it is a zombie (dead, not yet reaped). A pid the system
// reuses gets another start, so pid and start together name one process.
func procStart(pid int) (start string, zombie bool, err error) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return "", false, err
	}
	if k.Proc.P_pid != int32(pid) {
		return "", false, fmt.Errorf("no process %d", pid)
	}
	t := k.Proc.P_starttime
	const zombieState = 5 // SZOMB in sys/proc.h
	return fmt.Sprintf("%d.%06d", t.Sec, t.Usec), k.Proc.P_stat == zombieState, nil
}

// sameChild says why pid is not the process handed over with start, or
// nil: its start time is start.
func sameChild(pid int, start string) error {
	got, _, err := procStart(pid)
	if err != nil {
		return err
	}
	if got != start {
		return fmt.Errorf("started %q, not %q", got, start)
	}
	return nil
}

// startMark is nothing here: childStart asks the system.
func startMark() int64 { return -1 }

// childStart returns procStart's start of pid, a child forked after
// startMark returned before.
func childStart(pid int, before int64) string {
	start, _, _ := procStart(pid)
	return start
}
