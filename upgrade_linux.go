package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// handoverFile returns a memory file holding b: the handover never touches
// a disk (it holds the jobs' environments, which may be secrets).
func handoverFile(b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("overseer-handover", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "handover")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
