package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
)

// How a job's leftovers are found when its process is gone (see
// README.md, "Process groups"): the daemon's -cgroups flag chooses, and
// PING and STATUS NAME say which holds.
const (
	// CleanupCgroup: each job runs in a cgroup of its own; every process
	// in it is killed.
	CleanupCgroup = "cgroup"
	// CleanupMarker: the daemon's children (it is their subreaper) that
	// carry the job's marker in their environment, or stayed in its
	// session, are stopped.
	CleanupMarker = "marker"
)

// Cgroups values of Config.Cgroups, the daemon's -cgroups flag.
const (
	CgroupsAuto = "auto" // cgroups where the daemon may create them, else markers
	CgroupsOff  = "off"  // markers and sessions only
)

// cgroupName is the name of the daemon's own cgroup, under the one it was
// started in: one per data dir, so that a daemon started after one that
// died finds what it left.
func cgroupName(instance string) string {
	sum := sha256.Sum256([]byte(instance))
	return "overseer-" + hex.EncodeToString(sum[:8])
}

// leafName is the name of a job's cgroup. Every cgroup interface file
// has a '.' in its name (cgroup.procs, memory.max), as a job's name may:
// the prefix keeps the two apart.
func leafName(job string) string {
	return "job-" + job
}

// marked reports whether environ (NUL-separated, as in /proc/PID/environ)
// carries both of a job's marks: InstanceEnv=instance and JobEnv=job.
func marked(environ []byte, instance, job string) bool {
	env := append([]byte{0}, environ...)
	if len(env) > 1 && env[len(env)-1] != 0 {
		env = append(env, 0)
	}
	return bytes.Contains(env, []byte("\x00"+InstanceEnv+"="+instance+"\x00")) &&
		bytes.Contains(env, []byte("\x00"+JobEnv+"="+job+"\x00"))
}

// Cleanup says how the daemon finds its jobs' leftovers: CleanupCgroup or
// CleanupMarker.
func (m *Manager) Cleanup() string {
	if m.cfg.cgroups != nil {
		return CleanupCgroup
	}
	return CleanupMarker
}

// CleanupOf says, for STATUS NAME, how the named job's leftovers are
// found: "cgroup DIR" or "session and marker".
func (m *Manager) CleanupOf(name string) string {
	if cg := m.cfg.cgroups; cg != nil {
		return "cgroup " + cg.leaf(name)
	}
	return "session and marker"
}
