//go:build !linux

package main

// closeRangeOnExec: no close_range here; closeOnExec lists /dev/fd.
func closeRangeOnExec() bool { return false }
