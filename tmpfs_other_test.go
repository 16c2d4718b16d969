//go:build !linux

package main

import "github.com/rogpeppe/go-internal/testscript"

// fulltmpfs DIR: Linux only.
func cmdFullTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	ts.Fatalf("fulltmpfs: tmpfs is Linux only: guard the script with [linux]")
}
