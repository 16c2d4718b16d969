package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
)

// minimalSubject is a reference, not a peer: about the smallest supervisor
// Go allows (a goroutine per job that starts its process, waits for it and
// starts it again at once), run by bench itself. Its figures are what any
// Go supervisor pays on this machine: issue 6's "40-line Go supervisor".
type minimalSubject struct {
	id   string
	n    int
	argv []string
	proc *exec.Cmd
}

// errNoStatus is the status of a subject that has no status command.
var errNoStatus = errors.New("no status command")

func (m *minimalSubject) name() string { return "go-minimal" }
func (m *minimalSubject) version() string {
	return runtime.Version() + ", bench -minimal-supervisor (a reference)"
}
func (m *minimalSubject) runID() string { return m.id }
func (m *minimalSubject) status() error { return errNoStatus }

func (m *minimalSubject) prepare(dir, id string, n int, argv []string) error {
	m.id, m.n, m.argv = id, n, argv
	return nil
}

func (m *minimalSubject) launch() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"-minimal-supervisor", m.id, strconv.Itoa(m.n), "--"}, m.argv...)
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	m.proc = cmd
	return nil
}

func (m *minimalSubject) supervisorPids() []int {
	if m.proc == nil {
		return nil
	}
	return []int{m.proc.Process.Pid}
}

func (m *minimalSubject) stop() {
	if m.proc != nil {
		m.proc.Process.Kill()
		m.proc.Wait()
		m.proc = nil
	}
}

// minimalSupervisor is the reference supervisor: ID N -- COMMAND...
func minimalSupervisor(args []string) int {
	if len(args) < 4 || args[2] != "--" {
		fmt.Fprintln(os.Stderr, "usage: bench -minimal-supervisor ID N -- COMMAND...")
		return 2
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -minimal-supervisor:", err)
		return 2
	}
	for i := 1; i <= n; i++ {
		go func() {
			for {
				cmd := exec.Command(args[3], args[4:]...)
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s/j%d", jobEnv, args[0], i))
				if err := cmd.Start(); err != nil {
					return
				}
				cmd.Wait()
			}
		}()
	}
	select {}
}
