//go:build !linux

package jobs

import "os/exec"

// forkFrom runs f, which starts cmd: in place (see forker_linux.go).
func forkFrom(cmd *exec.Cmd, f func(*exec.Cmd) (int, error)) (int, error) { return f(cmd) }
