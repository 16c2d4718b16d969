//go:build !linux

package jobs

import (
	"errors"
	"os"
)

// The pipe holder (holder_linux.go) is Linux only: here a job that writes
// to stdout or stderr after a SIGKILL of the daemon gets SIGPIPE (or
// EPIPE) at its next write, as README says.

// HoldSocket is the name, in the data dir, of the pipe holder's socket
// (Linux).
const HoldSocket = "overseer.hold"

// HoldFlag is the daemon's argument that makes it the pipe holder (Linux).
const HoldFlag = "-hold"

// Holder is the daemon's side of its pipe holder: never made here.
type Holder struct{}

// StartHolder says the holder is Linux only.
func StartHolder(*Reaper, string, string, func(string, ...any)) (*Holder, error) {
	return nil, errors.New("pipe holder: Linux only")
}

func (h *Holder) hold(int, string, string) {}

// Handover has no holder to hand over here.
func (h *Holder) Handover() (fd, pid int, err error) { return 0, 0, nil }

// KeepPrivate does nothing.
func (h *Holder) KeepPrivate() {}

// AdoptHolder is never called here: no holder is ever handed over.
func AdoptHolder(*Reaper, int, int, string, string, func(string, ...any)) *Holder { return nil }

func (h *Holder) setRehold(func(func(int, string, string))) {}

// Close does nothing.
func (h *Holder) Close() {}

// HeldPipe is a pipe's read end that a holder kept (Linux).
type HeldPipe struct {
	Job    string
	Stream string
	File   *os.File
}

// Reclaim finds no holder here.
func Reclaim(string) ([]HeldPipe, error) { return nil, nil }

// DrainHeld has nothing to drain here.
func DrainHeld([]HeldPipe, string, int64, int) {}

// RunHolder says the holder is Linux only.
func RunHolder(string, int) error { return errors.New("the pipe holder is Linux only") }
