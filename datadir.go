package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
var dataFiles = []string{"logs", "overseer.db", "overseer.db-wal", "overseer.db-shm", "overseer.lock", "overseerd.log", "digest.key"}

// digestKey returns the secret of DATA-DIR/digest.key, made (32 random
// bytes, 0600) the first time: it keys the digests the definitions table
// keeps of each job file's values (jobs.SetDigestKey), so that the
// database alone cannot confirm a guess of a value.
func digestKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "digest.key")
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("digest key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return digestKey(dataDir) // another daemon's, a moment ago
		}
		if err != nil {
			return nil, fmt.Errorf("digest key: %w", err)
		}
		_, err = f.Write(key)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("digest key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("digest key: %w", err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("digest key: %s is %d bytes, not 32: remove it to make a new one", tilde(path), len(key))
	}
	return key, nil
}
