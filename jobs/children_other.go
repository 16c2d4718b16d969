//go:build !linux

package jobs

import "time"

// KillChildren does nothing where the daemon cannot be a subreaper (macOS):
// descendants that left a job's process group were reparented to launchd.
func KillChildren(wait time.Duration) int { return 0 }

// stopLeftovers does nothing where the daemon cannot be a subreaper
// (macOS): what left a job's process group was reparented to launchd, out
// of reach; process groups are stopped whole all the same.
func stopLeftovers(sid int, instance, job string, known func(pid int) bool, timeout time.Duration) int {
	return 0
}

// Sweep does nothing where other processes' environments cannot be read
// (macOS): StopOrphans, by pid and start time, is what stops leftovers there.
func Sweep(instance string, spare []string, timeout time.Duration) int { return 0 }
