//go:build !linux

package main

import (
	"errors"
	"os"
)

// handoverFile: an upgrade in place is Linux only (jobs.Manager.Busy says
// so first).
func handoverFile(b []byte) (*os.File, error) {
	return nil, errors.New("an upgrade in place needs Linux")
}
