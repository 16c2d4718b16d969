package jobs

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// program identifies the file a job runs: COMMAND's program, or with
// SHELL the shell, resolved on the job's PATH. A RELOAD reads it for
// every job, and a job whose program was replaced (go install, a package
// upgrade) is restarted unless RESTART_ON_BINARY_CHANGE=no.
type program struct {
	Path    string // resolved; "" when COMMAND's program could not be found
	Dev     uint64
	Ino     uint64
	Size    int64
	ModTime int64 // nanoseconds since 1970
}

// found reports whether the program was there when it was read.
func (p program) found() bool { return p.Path != "" }

// readProgram finds and stats the program j runs; cfg gives the
// environment and directory it would start with. A program that cannot
// be found gives a program with no Path.
func readProgram(j *Job, cfg *Config) program {
	name := j.Command[0]
	env := slices.Concat(cfg.Environ, j.Env)
	path, err := lookPath(name, env)
	if err != nil {
		return program{}
	}
	if !filepath.IsAbs(path) {
		dir := j.Dir
		if dir == "" {
			dir = cfg.Home
		}
		path = filepath.Join(dir, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return program{}
	}
	p := program{Path: path, Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		p.Dev, p.Ino = uint64(st.Dev), uint64(st.Ino)
	}
	return p
}
