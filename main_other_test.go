//go:build !linux

package main

import "errors"

func mountTmpfs(dir, size string) error {
	return errors.New("a tmpfs needs Linux")
}

func unmount(dir string) {}
