package jobs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sameChild says why pid is not the process handed over with start (by
// Detach, in an earlier image of this process), or nil: it is still this
// process's child, not reaped (running, or a zombie). The kernel does not
// hand a child's pid to another process before its parent reaps it, so
// such a pid names the very process it named then; one waitid with
// WNOWAIT (which reaps nothing) tells, where reading its start time from
// /proc took 16 us a process (16 ms of an upgrade at 1000 jobs).
func sameChild(pid int, start string) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			return errors.New("no child of this process any more")
		}
		return err
	}
}

// procStart returns when process pid started, as "BOOT_ID/TICKS", and
// whether it is a zombie (dead, not yet reaped). A pid the system reuses
// gets another start, so pid and start together name one process.
func procStart(pid int) (start string, zombie bool, err error) {
	// starttime is field 22, the 20th after comm.
	f, err := statFields(pid, 20)
	if err != nil {
		return "", false, err
	}
	boot, err := bootID()
	if err != nil {
		return "", false, err
	}
	return boot + "/" + string(f[19]), string(f[0]) == "Z", nil
}

// statFields returns the fields of /proc/PID/stat after comm (state is
// the first, ppid the second, ...), at least n of them. comm may hold
// spaces and parentheses, so they are counted from the last ')'.
func statFields(pid, n int) ([][]byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("unreadable /proc stat")
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < n {
		return nil, errors.New("unreadable /proc stat")
	}
	return f, nil
}

// bootID names this boot of the system; read once, as it cannot change
// while we run.
var bootID = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b)), err
})

// startMark is the boot clock (CLOCK_BOOTTIME, ns), read just before a
// fork: childStart takes it to know the child's start without /proc.
func startMark() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return -1
	}
	return ts.Nano()
}

// tickNs is the length of one clock tick of /proc's starttime (USER_HZ
// 100 on Linux's usual architectures; startClock checks it).
const tickNs = 10_000_000

// startClock says whether childStart may compute a start rather than read
// it: 0 not known yet, 1 yes, -1 no (this system's starttime is not the
// boot clock in ticks of tickNs: /proc is read at every start).
var startClock atomic.Int32

// childStart returns procStart's start of pid, a child forked after
// startMark returned before. The kernel dates a child (its start_boottime,
// /proc's starttime in ticks) while forking it: when the boot clock read
// before and after the fork falls in one tick, that tick is its start,
// with no read of /proc (16-25 us a start, the larger part of a restart's
// own work after the fork). Otherwise, and until the first such
// computation has been checked against /proc, /proc is read.
func childStart(pid int, before int64) string {
	after := startMark()
	if before >= 0 && after >= 0 && before/tickNs == after/tickNs && startClock.Load() >= 0 {
		boot, err := bootID()
		if err == nil {
			computed := boot + "/" + strconv.FormatInt(before/tickNs, 10)
			if startClock.Load() == 1 {
				return computed
			}
			read, _, err := procStart(pid)
			if err == nil {
				if read == computed {
					startClock.Store(1)
				} else {
					startClock.Store(-1)
				}
				return read
			}
		}
	}
	start, _, _ := procStart(pid)
	return start
}
