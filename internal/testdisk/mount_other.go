//go:build !linux

package testdisk

import "errors"

// Mount fails: a tmpfs of a given size is Linux's.
func Mount(dir, size string) error { return errors.New("a tmpfs of a given size needs Linux") }

// Unmount does nothing.
func Unmount(dir string) {}
