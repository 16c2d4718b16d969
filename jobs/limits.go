package jobs

import (
	"fmt"
	"time"
)

// ReasonMemory is the reason a run ends with when the job went over its
// MEMORY_MAX: the kernel killed it in its cgroup, or the sampler saw it.
const ReasonMemory = "memory"

// memCheckInterval is how often the sampler measures a job with a
// MEMORY_MAX the kernel does not enforce: often enough to catch a leak
// before it takes the machine, rarely enough to cost nothing noticeable.
const memCheckInterval = time.Second

// memOver is the sampler's word that the job's processes use more memory
// than its MEMORY_MAX.
type memOver struct {
	pid int   // the job's main process when it was measured
	rss int64 // resident memory of its processes, in bytes
}

// limitMemory prepares the kernel's enforcement of the job's MEMORY_MAX
// for its next process: it reports whether the job's cgroup has the
// memory controller and took the limit. Otherwise the sampler watches.
func (s *supervisor) limitMemory() bool {
	cg := s.cfg.cgroups
	if s.job.MemoryMax <= 0 || cg == nil {
		return false
	}
	ok, err := cg.limitMemory(s.job.Name, s.job.MemoryMax)
	if err != nil {
		s.log().Warn("set the job's memory.max; the sampler watches its memory instead", "err", err)
		return false
	}
	return ok
}

// memWatch is the limit the sampler is to watch for the live process:
// none when the kernel enforces it.
func (s *supervisor) memWatch() memLimit {
	if s.job.MemoryMax <= 0 || s.memKernel {
		return memLimit{}
	}
	if s.memOver == nil {
		s.memOver = make(chan memOver, 1) // made for a job with a MEMORY_MAX only
	}
	return memLimit{max: s.job.MemoryMax, over: s.memOver, wake: s.wake}
}

// onMemory stops the live process, which the sampler found over its
// MEMORY_MAX; onExit then restarts it as after a crash.
func (s *supervisor) onMemory(m memOver) {
	if !s.live || s.stopping || m.pid != s.st.Pid || s.job.MemoryMax <= 0 || s.memKernel {
		return // it ended, is being stopped, or the limit went meanwhile
	}
	s.log().Info("over MEMORY_MAX: stopping it", "rss", m.rss, "max", s.job.MemoryMax)
	s.stopProcess(ReasonMemory, fmt.Sprintf("over MEMORY_MAX of %s (%s resident)", FormatSize(s.job.MemoryMax), HumanSize(m.rss)))
}

// oomKilled reports whether the kernel killed a process of the job's
// cgroup for its memory.max: asked when the main process died by KILL,
// before the cgroup is removed.
func (s *supervisor) oomKilled(e Exit) bool {
	if !s.memKernel || e.Signal != "KILL" || s.cfg.cgroups == nil {
		return false
	}
	n, err := s.cfg.cgroups.oomKills(s.job.Name)
	if err != nil {
		s.log().Warn("read the job's memory.events", "err", err)
	}
	return n > 0
}

// HumanSize writes n bytes for a person: 700B, 12.5KiB, 64.0MiB, 1.2GiB.
func HumanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
