package jobs

import "golang.org/x/sys/unix"

// becomeSubreaper makes orphaned descendants of our jobs children of the
// daemon instead of init, so they are reaped here and no zombie is left.
func becomeSubreaper() {
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
