//go:build !linux

package jobs

// becomeSubreaper does nothing where there is no subreaper (macOS): orphans
// of jobs are reparented to launchd, which reaps them.
func becomeSubreaper() {}
