//go:build !linux

package jobs

import "github.com/shirou/gopsutil/v4/process"

// Elsewhere than Linux the sampler reads processes through gopsutil
// (procinfo_linux.go reads /proc itself).

func allPids() ([]int32, error) { return process.Pids() }

// procInfo is what the sampler reads of one process.
type procInfo struct {
	cpu     float64 // user and system CPU seconds
	threads int
}

func readProcInfo(pid int32) (procInfo, error) {
	p := &process.Process{Pid: pid} // NewProcess would only check that it exists
	t, err := p.Times()
	if err != nil {
		return procInfo{}, err
	}
	info := procInfo{cpu: t.User + t.System}
	if n, err := p.NumThreads(); err == nil {
		info.threads = int(n)
	}
	return info, nil
}

func residentBytes(pid int32) (int64, error) {
	m, err := (&process.Process{Pid: pid}).MemoryInfo()
	if err != nil {
		return 0, err
	}
	return int64(m.RSS), nil
}

func openFiles(pid int32) (int, error) {
	n, err := (&process.Process{Pid: pid}).NumFDs()
	return int(n), err
}
