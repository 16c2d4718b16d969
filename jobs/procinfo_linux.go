package jobs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// On Linux the sampler reads /proc itself rather than through gopsutil,
// whose packages' initialisers (reading /proc/stat among others) ran at
// the start of every overseer process, client and daemon alike: about a
// quarter of a millisecond of each `overseer status`. The figures are
// the ones gopsutil read, from the same files.

// userHZ is the unit of /proc's CPU times: USER_HZ, 100 on every Linux.
const userHZ = 100

// allPids lists every process's pid.
func allPids() ([]int32, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int32, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.ParseInt(n, 10, 32); err == nil {
			pids = append(pids, int32(pid))
		}
	}
	return pids, nil
}

// procInfo is what the sampler reads of one process.
type procInfo struct {
	cpu     float64 // user and system CPU seconds
	threads int
}

// readProcInfo reads /proc/PID/stat: utime, stime and num_threads.
func readProcInfo(pid int32) (procInfo, error) {
	// utime and stime are fields 14 and 15, num_threads 20: the 12th,
	// 13th and 18th after comm.
	f, err := statFields(int(pid), 18)
	if err != nil {
		return procInfo{}, err
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	threads, err3 := strconv.Atoi(string(f[17]))
	if err := errors.Join(err1, err2, err3); err != nil {
		return procInfo{}, err
	}
	return procInfo{cpu: float64(utime+stime) / userHZ, threads: threads}, nil
}

// residentBytes reads a process's resident memory from /proc/PID/statm.
func residentBytes(pid int32) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, errors.New("unreadable /proc statm")
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}

// openFiles counts a process's open descriptors.
func openFiles(pid int32) (int, error) {
	d, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	return len(names), err
}
