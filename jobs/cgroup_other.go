//go:build !linux

package jobs

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// cgroupTree stands for the daemon's cgroup, which exists only on Linux.
type cgroupTree struct{}

// openCgroups says cgroups are Linux only: jobs' leftovers are found by
// session and marker.
func openCgroups(instance string) (*cgroupTree, int, error) {
	return nil, 0, errors.New("cgroups are Linux only")
}

func cgroupsOf(instance string, keep bool, spare []string) (*cgroupTree, int, error) {
	return openCgroups(instance)
}

func (t *cgroupTree) leaf(job string) string                           { return "" }
func (t *cgroupTree) open(job string) (int, error)                     { return -1, errors.ErrUnsupported }
func (t *cgroupTree) end(job string, wait time.Duration) (int, error)  { return 0, nil }
func (t *cgroupTree) kill(job string, wait time.Duration) (int, error) { return 0, nil }
func (t *cgroupTree) remove(job string) error                          { return nil }
func (t *cgroupTree) close() int                                       { return 0 }
func (t *cgroupTree) limitMemory(job string, max int64) (bool, error)  { return false, nil }
func (t *cgroupTree) oomKills(job string) (int, error)                 { return 0, nil }

func intoCgroup(attr *syscall.SysProcAttr, fd int) {}
func cgroupFD(cmd *exec.Cmd) int                   { return -1 }
func withoutCgroup(cmd *exec.Cmd) *exec.Cmd        { return cmd }
func moveToCgroup(fd, pid int) error               { return errors.ErrUnsupported }
