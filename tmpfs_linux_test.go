package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

// fulltmpfs DIR: mounts a 1 MiB tmpfs of mode 0700 on DIR (created) and
// fills it with a file, until the end of the script. Root only, Linux.
func cmdFullTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: fulltmpfs DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"))
	ts.Defer(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	f, err := os.Create(filepath.Join(dir, "fill"))
	ts.Check(err)
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				ts.Fatalf("fill %s: %v", dir, err)
			}
			return
		}
	}
}
