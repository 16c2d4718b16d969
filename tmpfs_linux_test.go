package main

import (
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"

	"overseer/internal/testdisk"
)

// fulltmpfs DIR: mounts a 1 MiB tmpfs of mode 0700 on DIR (created) and
// fills it with a file, until the end of the script. Root only, Linux.
func cmdFullTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: fulltmpfs DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(testdisk.Mount(dir, "1m"))
	ts.Defer(func() { testdisk.Unmount(dir) })
	ts.Check(testdisk.Fill(filepath.Join(dir, "fill")))
}
