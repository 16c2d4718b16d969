package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate refuses path if a user other than us could have written it,
// as ssh refuses such keys: whoever writes the data dir controls every job
// (its socket, its database's runs, the logs the daemon appends to). It must
// belong to the user running overseer (root's to root) and be writable by
// no one else. A missing path passes: we create it. dir says path is the
// data dir, which may be reached through a symbolic link; any other path
// must not be one.
func checkPrivate(path string, dir bool) error {
	stat := os.Lstat
	if dir {
		stat = os.Stat
	}
	fi, err := stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkInfo(path, fi)
}

// checkInfo is checkPrivate for a file already opened or stat'ed.
func checkInfo(path string, fi os.FileInfo) error {
	fix := "600"
	if fi.IsDir() {
		fix = "700"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return symlinkError(path)
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to uid %d that runs overseer: that user could control every job\nhint: chown %d %s, or use a data dir of your own", tilde(path), st.Uid, os.Geteuid(), os.Geteuid(), tilde(path))
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by other users (mode %04o): they could control every job\nhint: chmod %s %s", tilde(path), fi.Mode().Perm(), fix, tilde(path))
	}
	return nil
}

func symlinkError(path string) error {
	return fmt.Errorf("%s is a symbolic link, which overseer does not follow in its data dir\nhint: remove it", tilde(path))
}

// dataFiles are what the daemon keeps in its data dir, checked by
// checkPrivate before it uses any of them.
var dataFiles = []string{"logs", "overseer.db", "overseer.db-wal", "overseer.db-shm", "overseer.lock", "overseerd.log"}
