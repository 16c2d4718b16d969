// Package testdisk gives tests a small disk to fill: a tmpfs mounted on a
// directory (Linux, as root), and a file that takes its last byte. Tests
// of what a full disk does (lost log lines, queued database writes) use
// it; nothing else does.
package testdisk

import (
	"errors"
	"os"
	"syscall"
)

// Fill writes zeros to a new file at path until the disk is full, down to
// its last byte (smaller and smaller writes), and keeps the file.
func Fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for chunk := 1 << 16; chunk > 0; chunk /= 2 {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					return err
				}
				break
			}
		}
	}
	return nil
}
